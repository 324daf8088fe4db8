// Package audittest makes valid audit events for tests, so a test states only what it is
// about.
package audittest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
)

// EventOpts override the defaults of Input and Event; zero fields keep them.
type EventOpts struct {
	EventID        string
	EventType      string
	EventOutcome   string
	CorrelationID  string
	ActorID        string
	ResourceType   string
	ResourceID     string
	EventTimestamp time.Time
	RetentionDays  int64
	// EventData replaces the default payload (about 800 bytes, like a real service's).
	EventData json.RawMessage
	// Principal is the submitter (default "test-writer").
	Principal string
	// Now is the receive time (default time.Now()).
	Now time.Time
}

// Input returns a valid client event.
func Input(tb testing.TB, opts *EventOpts) *audit.Input {
	tb.Helper()
	if opts == nil {
		opts = &EventOpts{}
	}
	s := func(v, def string) *string {
		if v == "" {
			v = def
		}
		return &v
	}
	in := &audit.Input{
		EventID:       s(opts.EventID, uuid.Must(uuid.NewV7()).String()),
		EventType:     s(opts.EventType, "gateway.signal.received"),
		EventOutcome:  s(opts.EventOutcome, "success"),
		CorrelationID: s(opts.CorrelationID, "rr-"+uuid.NewString()[:8]),
		ActorType:     s("", "service"),
		ActorID:       s(opts.ActorID, "gateway"),
		ResourceType:  s(opts.ResourceType, "Signal"),
		ResourceID:    s(opts.ResourceID, "fp-"+uuid.NewString()[:12]),
		Namespace:     s("", "production"),
		Severity:      s("", "info"),
		EventData:     opts.EventData,
	}
	if !opts.EventTimestamp.IsZero() {
		ts := opts.EventTimestamp.UTC().Format(time.RFC3339Nano)
		in.EventTimestamp = &ts
	}
	if opts.RetentionDays != 0 {
		in.RetentionDays = &opts.RetentionDays
	}
	if in.EventData == nil {
		in.EventData = Payload(*in.CorrelationID)
	}
	return in
}

// Event returns a prepared event, ready for the store. The receive time is opts.Now or now;
// an EventTimestamp outside the write window is kept as it is (tests of old partitions).
func Event(tb testing.TB, opts *EventOpts) audit.Event {
	tb.Helper()
	if opts == nil {
		opts = &EventOpts{}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !opts.EventTimestamp.IsZero() {
		now = opts.EventTimestamp // keep any timestamp inside the window
	}
	e, errs := Input(tb, opts).Prepare(audit.Defaults{
		Now:              now,
		Principal:        cmpOr(opts.Principal, "test-writer"),
		RetentionClasses: audit.DefaultRetentionClasses,
	}, audit.DefaultLimits)
	if len(errs) > 0 {
		tb.Fatalf("audittest: invalid event: %v", errs)
	}
	if !opts.Now.IsZero() {
		e.ReceivedAt = opts.Now.UTC().Truncate(time.Microsecond)
	} else {
		e.ReceivedAt = time.Now().UTC().Truncate(time.Microsecond)
	}
	return e
}

// Payload returns a realistic event_data of about 800 bytes in the common envelope.
func Payload(correlationID string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success",
"payload":{"signal_type":"prometheus","alert_name":"KubePodCrashLooping","fingerprint":"%s",
"severity":"critical","namespace":"production","labels":{"app":"checkout","team":"payments","pod":"checkout-7d9f8b6c5-x2k4q",
"container":"api","cluster":"prod-eu-west-1"},"annotations":{"summary":"Pod is crash looping",
"description":"Pod production/checkout-7d9f8b6c5-x2k4q (api) is restarting 2.5 times / 10 minutes.",
"runbook_url":"https://runbooks.example.com/KubePodCrashLooping"},"starts_at":"2026-11-25T10:00:00Z",
"deduplicated":false,"storm_detected":false,"risk_score":%d,"retries":%d,"remediation_request":"rr-%s",
"filler":"%s"}}`, correlationID, len(correlationID)*7%100, len(correlationID)%5, correlationID, strings.Repeat("x", 120)))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
