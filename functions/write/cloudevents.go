package write

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/uuid"
)

// ceIDNamespace is the RFC 9562 URL namespace: a non-UUID CloudEvents id becomes the UUIDv5 of
// "<source> <id>" in it, so a broker's redelivery maps to the same event_id.
var ceIDNamespace = uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8")

// ceFieldNames names, in a CloudEvent's own terms, the event fields a CloudEvent maps to, so
// errors point at what its sender can change.
var ceFieldNames = map[string]string{
	"event_id": "id", "event_type": "type", "event_timestamp": "time", "resource_id": "subject",
	"event_data": "data", "actor_id": "source", "actor_type": "actortype",
	"correlation_id": "correlationid", "event_outcome": "outcome", "resource_type": "resourcetype",
	"severity": "severity", "namespace": "namespace", "cluster_id": "clusterid",
	"parent_event_id": "parenteventid",
}

// decodeCloudEvents reads the CloudEvents in body: one in binary or structured mode, or a
// batch. It returns each event's Input and traceparent, or field errors.
func decodeCloudEvents(ctx context.Context, header http.Header, body []byte) ([]*audit.Input, []traceIDs, []audit.FieldError) {
	if in, tr, errs, ok := binaryCloudEvent(header, body); ok {
		return []*audit.Input{in}, []traceIDs{tr}, errs
	}
	return sdkCloudEvents(ctx, header, body)
}

// sdkCloudEvents is decodeCloudEvents through the CloudEvents SDK: every mode, version and
// attribute, and the SDK's word on what is wrong.
func sdkCloudEvents(ctx context.Context, header http.Header, body []byte) ([]*audit.Input, []traceIDs, []audit.FieldError) {
	msg := cehttp.NewMessage(header, io.NopCloser(bytes.NewReader(body)))
	defer msg.Finish(nil) //nolint:errcheck // nothing to release for an in-memory body
	var events []event.Event
	switch msg.ReadEncoding() {
	case binding.EncodingBatch:
		var err error
		if events, err = binding.ToEvents(ctx, msg, bytes.NewReader(body)); err != nil {
			return nil, nil, []audit.FieldError{{Field: "body", Message: "is not a JSON array of CloudEvents: " + err.Error()}}
		}
		if len(events) == 0 || len(events) > MaxBatch {
			return nil, nil, []audit.FieldError{{Field: "body", Message: fmt.Sprintf("holds %d CloudEvents; 1 to %d are accepted", len(events), MaxBatch)}}
		}
	case binding.EncodingBinary, binding.EncodingStructured:
		ev, err := binding.ToEvent(ctx, msg)
		if err != nil {
			return nil, nil, []audit.FieldError{{Field: "body", Message: "is not a CloudEvent: " + err.Error()}}
		}
		events = []event.Event{*ev}
	default:
		return nil, nil, []audit.FieldError{{Field: "body", Message: "is not a CloudEvent"}}
	}
	inputs := make([]*audit.Input, len(events))
	traces := make([]traceIDs, len(events))
	var errs []audit.FieldError
	for i := range events {
		in, tr, evErrs := inputFromCloudEvent(&events[i])
		inputs[i], traces[i] = in, tr
		for _, e := range evErrs {
			if len(events) > 1 {
				e.Index = &i
			}
			errs = append(errs, e)
		}
	}
	return inputs, traces, errs
}

// traceIDs are a request's W3C trace context, a default for trace_id and span_id.
type traceIDs struct{ traceID, spanID string }

// inputFromCloudEvent maps a CloudEvent to an Input (README "Write API", shape 4).
func inputFromCloudEvent(ev *event.Event) (*audit.Input, traceIDs, []audit.FieldError) {
	var errs []audit.FieldError
	if err := ev.Validate(); err != nil {
		var verr event.ValidationError
		if errors.As(err, &verr) {
			for _, attr := range slices.Sorted(mapKeys(verr)) {
				errs = append(errs, audit.FieldError{Field: attr, Message: verr[attr].Error()})
			}
		} else {
			errs = append(errs, audit.FieldError{Field: "body", Message: err.Error()})
		}
		return nil, traceIDs{}, errs
	}
	ext := ev.Extensions()
	str := func(name string) *string {
		v, ok := ext[name]
		if !ok {
			return nil
		}
		s, err := types.ToString(v)
		if err != nil {
			s = fmt.Sprint(v)
		}
		return &s
	}
	s := func(v string) *string { return &v }

	in := &audit.Input{
		EventType:     s(ev.Type()),
		CorrelationID: str("correlationid"),
		EventOutcome:  str("outcome"),
		ActorType:     str("actortype"),
		ActorID:       str("actorid"),
		ResourceType:  str("resourcetype"),
		Severity:      str("severity"),
		Namespace:     str("namespace"),
		ClusterID:     str("clusterid"),
		ParentEventID: str("parenteventid"),
	}
	if sub := ev.Subject(); sub != "" {
		in.ResourceID = &sub
	}
	if t := ev.Time(); !t.IsZero() {
		in.EventTimestamp = s(t.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"))
	}
	errs = completeCloudEvent(in, ev.Source(), ev.ID())
	if ct := ev.DataContentType(); ct != "" && !isJSONMediaType(ct) {
		errs = append(errs, audit.FieldError{Field: "datacontenttype", Message: fmt.Sprintf("%q is not JSON; data must be a JSON object (application/json)", ct)})
	} else if ev.DataBase64 {
		errs = append(errs, audit.FieldError{Field: "data_base64", Message: "is not accepted; send data as a JSON object"})
	} else if len(ev.Data()) > 0 {
		in.EventData = ev.Data()
	}
	tr, errs := ceTrace(str("traceparent"), errs)
	return in, tr, errs
}

// completeCloudEvent fills in what every decoding of a CloudEvent maps alike: the defaults
// of outcome, actor and actor type, and the event id (README "Write API", shape 4). It
// returns the error of a missing correlationid.
func completeCloudEvent(in *audit.Input, source, id string) []audit.FieldError {
	var errs []audit.FieldError
	s := func(v string) *string { return &v }
	if in.EventOutcome == nil {
		in.EventOutcome = s("success")
	}
	if in.ActorID == nil {
		in.ActorID = &source
	}
	if in.ActorType == nil {
		in.ActorType = s("service")
	}
	if in.CorrelationID == nil {
		errs = append(errs, audit.FieldError{Field: "correlationid", Message: "is required (a CloudEvents extension attribute tying the events of one request together)"})
	}
	if _, err := uuid.Parse(id); err == nil && len(id) == 36 {
		in.EventID = s(strings.ToLower(id))
	} else {
		in.EventID = s(uuid.NewSHA1(ceIDNamespace, []byte(source+" "+id)).String())
	}
	return errs
}

// ceTrace reads a CloudEvent's traceparent extension (nil: none), adding its error to errs.
func ceTrace(tp *string, errs []audit.FieldError) (traceIDs, []audit.FieldError) {
	if tp == nil {
		return traceIDs{}, errs
	}
	t, sp, ok := audit.ParseTraceparent(*tp)
	if !ok {
		return traceIDs{}, append(errs, audit.FieldError{Field: "traceparent", Message: "is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"})
	}
	return traceIDs{t, sp}, errs
}

func isJSONMediaType(ct string) bool {
	mt, err := mediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/json")
}

// ceErrors renames Input fields to the CloudEvents attributes they came from.
func ceErrors(errs []audit.FieldError) []audit.FieldError { return renameFields(errs, ceFieldNames) }

// headerInput reads the header form of the original design: the event's fields in X-
// headers, the body its event_data.
func headerInput(h http.Header, body []byte) (*audit.Input, []audit.FieldError) {
	get := func(name string) *string {
		if v := h.Values(name); len(v) > 0 {
			return &v[0]
		}
		return nil
	}
	in := &audit.Input{
		EventType:      get("X-Event-Type"),
		CorrelationID:  get("X-Correlation-ID"),
		EventOutcome:   get("X-Outcome"),
		ResourceType:   get("X-Resource-Type"),
		ResourceID:     get("X-Resource-ID"),
		EventID:        get("X-Event-ID"),
		EventTimestamp: get("X-Event-Timestamp"),
		Severity:       get("X-Severity"),
		EventData:      body,
	}
	var errs []audit.FieldError
	if svc := get("X-Service"); svc != nil {
		actorType := "service"
		in.ActorType, in.ActorID = &actorType, svc
	} else {
		errs = append(errs, audit.FieldError{Field: "X-Service", Message: "is required in the header form"})
	}
	for _, req := range []string{"X-Correlation-ID", "X-Outcome"} {
		if get(req) == nil {
			errs = append(errs, audit.FieldError{Field: req, Message: "is required in the header form"})
		}
	}
	return in, errs
}

// headerFieldNames names, in the header form's terms, the fields its headers map to.
var headerFieldNames = map[string]string{
	"event_type": "X-Event-Type", "correlation_id": "X-Correlation-ID", "event_outcome": "X-Outcome",
	"resource_type": "X-Resource-Type", "resource_id": "X-Resource-ID", "event_id": "X-Event-ID",
	"event_timestamp": "X-Event-Timestamp", "severity": "X-Severity", "actor_id": "X-Service",
	"event_data": "body",
}
