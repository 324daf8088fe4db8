package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	json "github.com/segmentio/encoding/json"
)

// ceConcurrency bounds the CloudEvents of one batch in flight at once.
const ceConcurrency = 16

// ceTransport posts each event as a binary-mode CloudEvent (README "Write API", shape 4): to a
// Knative broker, which takes one event per request, or to the write function. The event_id
// is the CloudEvent's id, so a redelivery is a duplicate.
type ceTransport struct {
	c   *Client
	url string
}

// check refuses events with fields a CloudEvent cannot carry (the contract maps only some
// fields to attributes and extensions): sending them would lose those fields silently.
func (t *ceTransport) check(in *audit.Input) error {
	var lost []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"version", in.Version != nil && *in.Version != audit.EnvelopeVersion},
		{"event_category", in.EventCategory != nil},
		{"event_action", in.EventAction != nil},
		{"actor_ip", in.ActorIP != nil},
		{"resource_name", in.ResourceName != nil},
		{"duration_ms", in.DurationMS != nil},
		{"error_code", in.ErrorCode != nil},
		{"error_message", in.ErrorMessage != nil},
		{"retention_days", in.RetentionDays != nil},
		{"is_sensitive", in.IsSensitive != nil},
		{"parent_event_date", in.ParentEventDate != nil},
		{"trace_id/span_id", (in.TraceID != nil) != (in.SpanID != nil) || (in.TraceID != nil && traceparent(*in.TraceID, *in.SpanID) == "")},
	} {
		if f.set {
			lost = append(lost, f.name)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("client: event %s has fields a CloudEvent cannot carry (%s); send it with the REST transport",
			deref(in.EventID), strings.Join(lost, ", "))
	}
	return nil
}

func (t *ceTransport) deliver(ctx context.Context, batch []pending) delivery {
	d := newDelivery(len(batch), retry)
	var mu sync.Mutex
	sem := make(chan struct{}, ceConcurrency)
	var wg sync.WaitGroup
	for i := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, problems, code, detail, wait, err := t.send(ctx, batch[i])
			mu.Lock()
			defer mu.Unlock()
			d.status[i], d.problems[i] = st, problems
			if st == refused {
				d.httpStatus, d.detail = code, detail
			}
			if st == retry {
				d.err = cmpErr(d.err, err)
				d.retryAfter = max(d.retryAfter, wait)
			}
		}()
	}
	wg.Wait()
	return d
}

// send posts one event.
func (t *ceTransport) send(ctx context.Context, p pending) (st status, problems []Problem, code int, detail string, wait time.Duration, err error) {
	ev, err := t.event(p)
	if err != nil {
		return refused, []Problem{{EventID: p.id, Field: "body", Message: err.Error()}}, 0, err.Error(), 0, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, nil)
	if err != nil {
		return refused, nil, 0, err.Error(), 0, nil
	}
	if err := cehttp.WriteRequest(ctx, binding.ToMessage(ev), req); err != nil {
		return refused, []Problem{{EventID: p.id, Field: "body", Message: err.Error()}}, 0, err.Error(), 0, nil
	}
	code, header, answer, err := t.c.do(req)
	switch {
	case err != nil:
		return retry, nil, 0, "", 0, err
	case code/100 == 2:
		return delivered, nil, code, "", 0, nil
	case retryable(code):
		return retry, nil, code, "", retryAfter(header), fmt.Errorf("the store answered %d %s", code, http.StatusText(code))
	}
	var pb problemBody
	_ = json.Unmarshal(answer, &pb) // a broker's answer may be no problem body
	for _, e := range pb.Errors {
		problems = append(problems, Problem{EventID: p.id, Field: e.Field, Message: e.Message})
	}
	return refused, problems, code, pb.Detail, 0, nil
}

// event maps an encoded event to its CloudEvent, as the write function maps it back.
func (t *ceTransport) event(p pending) (*event.Event, error) {
	var in audit.Input
	if err := json.Unmarshal(p.raw, &in); err != nil {
		return nil, err
	}
	if err := t.check(&in); err != nil {
		return nil, err // an event spooled by a REST emitter, replayed by this one
	}
	ev := event.New()
	ev.SetID(deref(in.EventID))
	ev.SetType(deref(in.EventType))
	source := t.c.cfg.Source
	if source == "" {
		source = deref(in.ActorID)
	}
	if source == "" {
		source = "auditstore-client"
	}
	ev.SetSource(source)
	if in.EventTimestamp != nil {
		ts, err := time.Parse(time.RFC3339Nano, *in.EventTimestamp)
		if err != nil {
			return nil, fmt.Errorf("event_timestamp %q is not an RFC 3339 timestamp", *in.EventTimestamp)
		}
		ev.SetTime(ts)
	}
	if in.ResourceID != nil {
		ev.SetSubject(*in.ResourceID)
	}
	ext := func(name string, v *string) {
		if v != nil {
			ev.SetExtension(name, *v)
		}
	}
	ext("correlationid", in.CorrelationID)
	ext("outcome", in.EventOutcome)
	ext("actortype", in.ActorType)
	ext("actorid", in.ActorID)
	ext("resourcetype", in.ResourceType)
	ext("severity", in.Severity)
	ext("namespace", in.Namespace)
	ext("clusterid", in.ClusterID)
	ext("parenteventid", in.ParentEventID)
	if in.TraceID != nil && in.SpanID != nil {
		ev.SetExtension("traceparent", traceparent(*in.TraceID, *in.SpanID))
	}
	if len(in.EventData) > 0 {
		if err := ev.SetData(event.ApplicationJSON, []byte(in.EventData)); err != nil {
			return nil, err
		}
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return &ev, nil
}

// traceparent is the W3C traceparent of a trace and span, or "" when they are not a trace id
// (32 hex digits) and a span id (16).
func traceparent(traceID, spanID string) string {
	if len(traceID) != 32 || len(spanID) != 16 || !isLowerHex(traceID) || !isLowerHex(spanID) {
		return ""
	}
	return "00-" + traceID + "-" + spanID + "-01"
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
