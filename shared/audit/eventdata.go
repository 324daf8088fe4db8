package audit

import (
	"encoding/json"
	"fmt"
	"strings"
)

// EnvelopeVersion is the version of the event_data envelope this package writes.
const EnvelopeVersion = "1.0"

// EventData is the common envelope of event_data (README "Write API"): which service did which
// operation with what status, the service's payload, and optionally the retry it was and the
// original signal it came from. The store validates an event_data holding both version and
// service as an envelope, and its payload against the service's schema when one is registered
// (see Services).
type EventData struct {
	Version   string `json:"version"`
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Status    string `json:"status"`
	// Attempt is the retry attempt that produced the event (1 is the first); 0 leaves it out.
	Attempt int `json:"attempt,omitempty"`
	// RetryReason says why the operation was retried.
	RetryReason string `json:"retry_reason,omitempty"`
	// Payload is the service's own data, a JSON object.
	Payload json.RawMessage `json:"payload,omitempty"`
	// SourcePayload is the original signal, kept as it came (any JSON).
	SourcePayload json.RawMessage `json:"source_payload,omitempty"`

	err error // of a With method, reported by ToJSON and Validate
}

// NewEventData returns an envelope of the current version for one operation of a service.
func NewEventData(service, operation, status string) *EventData {
	return &EventData{Version: EnvelopeVersion, Service: service, Operation: operation, Status: status}
}

// WithPayload sets the service's payload: a JSON object, or a value that encodes as one (a
// struct such as GatewayPayload, or a map).
func (d *EventData) WithPayload(v any) *EventData {
	d.Payload = d.encode("payload", v)
	return d
}

// WithSourcePayload keeps the original signal the event is about (a Prometheus alert, a
// Kubernetes event), as any JSON value.
func (d *EventData) WithSourcePayload(v any) *EventData {
	d.SourcePayload = d.encode("source_payload", v)
	return d
}

// WithRetry records that the event comes from retry attempt number attempt (1 is the first
// try), and why the operation was retried.
func (d *EventData) WithRetry(attempt int, reason string) *EventData {
	d.Attempt, d.RetryReason = attempt, reason
	return d
}

func (d *EventData) encode(member string, v any) json.RawMessage {
	if raw, ok := v.(json.RawMessage); ok {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil && d.err == nil {
		d.err = &ValidationError{Errors: []FieldError{{Field: "event_data." + member, Message: "cannot be encoded as JSON: " + err.Error()}}}
	}
	return b
}

// ToJSON returns the envelope as event_data, after checking it as the store will (Validate):
// nothing invalid is encoded.
func (d *EventData) ToJSON() ([]byte, error) {
	b, err := d.marshal()
	if err != nil {
		return nil, err
	}
	if err := validateData(b, false); err != nil {
		return nil, err
	}
	return b, nil
}

func (d *EventData) marshal() ([]byte, error) {
	if d.err != nil {
		return nil, d.err
	}
	if d.Attempt < 0 {
		// omitempty keeps 0 out, but a negative attempt must not vanish unnoticed
		return nil, &ValidationError{Errors: []FieldError{{Field: "event_data.attempt", Message: "must be an integer of 1 or more"}}}
	}
	return json.Marshal(d)
}

// Validate checks the envelope as the store does: version, service, operation and status
// present, attempt at least 1, and the payload valid against the service's schema when one is
// registered. Its error is a *ValidationError naming every problem.
func (d *EventData) Validate() error {
	b, err := d.marshal()
	if err != nil {
		return err
	}
	return validateData(b, false)
}

// FromJSON decodes event_data as an envelope and checks it (Validate). Data that is not an
// envelope (it lacks version or service) is an error.
func FromJSON(data []byte) (*EventData, error) {
	var d EventData
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("event_data is not an envelope: %w", err)
	}
	if d.Version == "" || d.Service == "" {
		return nil, &ValidationError{Errors: []FieldError{{Field: "event_data", Message: "is not an envelope: version and service are required"}}}
	}
	if err := validateData(data, false); err != nil {
		return nil, err
	}
	return &d, nil
}

// validateData checks event_data as Prepare does, strict or not (see validatePayload).
func validateData(data []byte, strict bool) error {
	d, err := parseData(data)
	if err != nil {
		return &ValidationError{Errors: []FieldError{{Field: "event_data", Message: err.Error()}}}
	}
	if _, errs := checkData(d, data, strict); len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	return nil
}

// ValidationError names every invalid field of an event or of its event_data.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid audit event: " + strings.Join(parts, "; ")
}

// Fields returns the names of the invalid fields, in order.
func (e *ValidationError) Fields() []string {
	out := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		out[i] = fe.Field
	}
	return out
}

// EnvelopeService is the service an event_data envelope names: data's service member when
// data holds both version and service as strings (an envelope, as the store validates it);
// "" for any other object. data is event_data decoded.
func EnvelopeService(data map[string]any) string {
	if _, ok := data["version"].(string); !ok {
		return ""
	}
	s, _ := data["service"].(string)
	return s
}
