package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/google/uuid"
)

// The events of a run are those of the store benchmark: event n belongs to correlation n/25
// and resource n%997 and carries audittest.Payload's ~800-byte event_data. The ceiling writes
// them as prepared events, the scenarios send them over HTTP, so both store the same rows.
const (
	eventsPerCorrelation = 25
	resources            = 997
	// correlationWidth is the number of digits of a correlation id, fixed so that every body
	// of a template has the same length and payload (Payload depends on the id's length).
	correlationWidth = 10
)

// Placeholders in a template, overwritten for every request: a UUID-shaped event id and a
// correlation id of the final width. Neither can occur in the rest of a body.
const (
	idPlaceholder          = "ffffffff-ffff-7fff-bfff-ffffffffffff"
	correlationPlaceholder = "rr-##########"
)

func correlationID(n int) string {
	return fmt.Sprintf("rr-%0*d", correlationWidth, n/eventsPerCorrelation)
}

// input is the client event n, as a client would send it (no event_timestamp: the server
// stamps it).
func input(n int, eventID, correlation string) *audit.Input {
	s := func(v string) *string { return &v }
	return &audit.Input{
		EventID:       s(eventID),
		EventType:     s("gateway.signal.received"),
		EventOutcome:  s("success"),
		CorrelationID: s(correlation),
		ActorType:     s("service"),
		ActorID:       s("gateway"),
		ResourceType:  s("Signal"),
		ResourceID:    s("fp-" + strconv.Itoa(n%resources)),
		Namespace:     s("production"),
		Severity:      s("info"),
		EventData:     audittest.Payload(correlation),
	}
}

// ceilingEvents prepares events 0..n-1 as the write function would store them, received now
// from the principal the function gives every caller.
func ceilingEvents(n int) ([]audit.Event, error) {
	now := time.Now()
	d := audit.Defaults{Now: now, Principal: "anonymous", RetentionClasses: audit.DefaultRetentionClasses}
	events := make([]audit.Event, n)
	for i := range events {
		e, errs := input(i, uuid.Must(uuid.NewV7()).String(), correlationID(i)).Prepare(d, audit.DefaultLimits)
		if len(errs) > 0 {
			return nil, fmt.Errorf("generated event %d is invalid: %v", i, errs)
		}
		e.ReceivedAt = now.UTC().Truncate(time.Microsecond)
		events[i] = e
	}
	return events, nil
}

// slot is where one event's id or correlation goes in a body.
type slot struct {
	offset int
	event  int // index of the event in the body (a batch holds several)
}

// template is a request body (and, for CloudEvents, headers) with placeholders. Every request
// made from it gets fresh event ids and the correlation ids of its event numbers.
type template struct {
	body         []byte
	events       int
	ids          []slot
	correlations []slot
	// ceHead holds the CloudEvents binary-mode header lines; ce-id and ce-correlationid are
	// added per request.
	ceHead []byte
}

func newTemplate(body []byte, events int) (*template, error) {
	t := &template{body: body, events: events}
	t.ids = find(body, idPlaceholder)
	t.correlations = find(body, correlationPlaceholder)
	// Each event's slots appear in order, id first; attribute them to events by position.
	if len(t.ids) != events {
		return nil, fmt.Errorf("template holds %d event ids, want %d", len(t.ids), events)
	}
	for i := range t.ids {
		t.ids[i].event = i
	}
	for i := range t.correlations {
		e := 0
		for e+1 < len(t.ids) && t.ids[e+1].offset < t.correlations[i].offset {
			e++
		}
		t.correlations[i].event = e
	}
	return t, nil
}

func find(body []byte, placeholder string) []slot {
	var slots []slot
	for off := 0; ; {
		i := bytes.Index(body[off:], []byte(placeholder))
		if i < 0 {
			return slots
		}
		slots = append(slots, slot{offset: off + i})
		off += i + len(placeholder)
	}
}

// jsonTemplates returns count templates of JSON bodies of size events each: one event object
// when size is 0, else an array of size events.
func jsonTemplates(count, size int) ([]*template, error) {
	out := make([]*template, count)
	for k := range out {
		var v any
		n := max(size, 1)
		inputs := make([]*audit.Input, n)
		for j := range inputs {
			inputs[j] = input(k*n+j, idPlaceholder, correlationPlaceholder)
		}
		v = inputs
		if size == 0 {
			v = inputs[0]
		}
		body, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if out[k], err = newTemplate(body, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ceTemplates returns count CloudEvents binary-mode templates: the event in ce-* headers, the
// body its event_data.
func ceTemplates(count int) ([]*template, error) {
	out := make([]*template, count)
	for k := range out {
		in := input(k, idPlaceholder, correlationPlaceholder)
		var data bytes.Buffer
		if err := json.Compact(&data, in.EventData); err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Type", *in.EventType)
		h.Set("Ce-Source", *in.ActorID)
		h.Set("Ce-Subject", *in.ResourceID)
		h.Set("Ce-Outcome", *in.EventOutcome)
		h.Set("Ce-Resourcetype", *in.ResourceType)
		h.Set("Ce-Namespace", *in.Namespace)
		h.Set("Ce-Severity", *in.Severity)
		var head bytes.Buffer
		if err := h.Write(&head); err != nil {
			return nil, err
		}
		// The body holds no id: account for the one in the ce-id header.
		t := &template{body: data.Bytes(), events: 1, ids: []slot{{offset: -1}}, ceHead: head.Bytes()}
		t.correlations = find(t.body, correlationPlaceholder)
		out[k] = t
	}
	return out, nil
}

// appendRequest appends to b a whole HTTP/1.1 request of t for the events first..
// (first+t.events-1) to path on host: a copy of its body with fresh UUIDv7 ids and the
// correlation ids of those events, and for CloudEvents the ce-* headers.
func (t *template) appendRequest(b []byte, host, path string, first int) []byte {
	var ids [][36]byte
	if t.events <= 8 {
		var small [8][36]byte
		ids = small[:t.events]
	} else {
		ids = make([][36]byte, t.events)
	}
	for i := range ids {
		audit.AppendUUID(ids[i][:0], uuid.Must(uuid.NewV7()))
	}
	b = append(b, "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	if t.ceHead != nil {
		b = append(b, t.ceHead...)
		b = append(b, "Ce-Id: "...)
		b = append(b, ids[0][:]...)
		b = append(b, "\r\nCe-Correlationid: "...)
		c := len(b)
		b = append(b, correlationPlaceholder...)
		putCorrelation(b[c:], first)
		b = append(b, "\r\n"...)
	} else {
		b = append(b, "Content-Type: application/json\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(t.body)), 10)
	b = append(b, "\r\n\r\n"...)
	at := len(b)
	b = append(b, t.body...)
	body := b[at:]
	for _, s := range t.ids {
		if s.offset >= 0 {
			copy(body[s.offset:], ids[s.event][:])
		}
	}
	for _, s := range t.correlations {
		putCorrelation(body[s.offset:s.offset+len(correlationPlaceholder)], first+s.event)
	}
	return b
}

// putCorrelation writes correlationID(n) into dst, which is as long as the placeholder.
func putCorrelation(dst []byte, n int) {
	c := n / eventsPerCorrelation
	for i := len(dst) - 1; i >= 3; i-- {
		dst[i] = byte('0' + c%10)
		c /= 10
	}
}
