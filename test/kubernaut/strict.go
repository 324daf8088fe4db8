// Package kubernaut is a client of auditstore's audit API shaped as kubernaut's generated one
// (ogen, from its Data Storage OpenAPI document) and its buffered audit store behave, as
// strictly, so tests show that a kubernaut deployment pointed at auditstore keeps every event
// and every read (README "kubernaut compatibility"):
//   - an event's actor_type, actor_id, actor_ip, resource_type and resource_id are optional but
//     never null, and event_category and event_outcome are enums: anything else fails the
//     whole answer, as it fails theirs;
//   - a problem's field_errors is an object of strings;
//   - every 4xx but 401 and 403 is permanent: the buffered store drops the batch (429 included),
//     and retries only 5xx, 401, 403 and network errors.
package kubernaut

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Categories are the event_category values the client decodes: kubernaut's enum and the
// services whose payload schemas auditstore registers. auditstore's own category is not one.
var Categories = []string{"gateway", "notification", "analysis", "aianalysis", "aiagent",
	"signalprocessing", "workflow", "workflowexecution", "orchestration", "remediationorchestrator",
	"remediation", "approval", "effectiveness", "actiontype", "apifrontend", "webhook",
	"execution", "contextapi", "datastorage"}

// Outcomes are kubernaut's event_outcome enum.
var Outcomes = []string{"success", "failure", "pending"}

// nonNullable are the optional members kubernaut's client refuses null for.
var nonNullable = []string{"actor_type", "actor_id", "actor_ip", "resource_type", "resource_id"}

// required are the members of kubernaut's AuditEventRequest that every event has.
var required = []string{"version", "event_type", "event_timestamp", "event_category", "event_action",
	"event_outcome", "correlation_id", "event_data"}

// Event is an event as kubernaut's services send it (AuditEventRequest). retention_days is
// what their services add to it.
type Event struct {
	Version        string          `json:"version"`
	EventType      string          `json:"event_type"`
	EventTimestamp time.Time       `json:"event_timestamp"`
	EventCategory  string          `json:"event_category"`
	EventAction    string          `json:"event_action"`
	EventOutcome   string          `json:"event_outcome"`
	ActorType      string          `json:"actor_type,omitempty"`
	ActorID        string          `json:"actor_id,omitempty"`
	ActorIP        string          `json:"actor_ip,omitempty"`
	ResourceType   string          `json:"resource_type,omitempty"`
	ResourceID     string          `json:"resource_id,omitempty"`
	CorrelationID  string          `json:"correlation_id"`
	ParentEventID  *string         `json:"parent_event_id,omitempty"`
	Namespace      *string         `json:"namespace,omitempty"`
	Severity       *string         `json:"severity,omitempty"`
	DurationMS     *int64          `json:"duration_ms,omitempty"`
	RetentionDays  *int64          `json:"retention_days,omitempty"`
	EventData      json.RawMessage `json:"event_data"`
}

// AuditEvent is an event as kubernaut's client reads it back (its allOf: the request's members,
// event_id and the optional integrity members). Members it does not know are skipped, as
// ogen's decoder skips them; Raw keeps them all for a test to look at.
type AuditEvent struct {
	Event
	EventID   uuid.UUID                  `json:"event_id"`
	EventDate *string                    `json:"event_date"`
	EventHash *string                    `json:"event_hash"`
	LegalHold *bool                      `json:"legal_hold"`
	Raw       map[string]json.RawMessage `json:"-"`
}

// DecodeEvent decodes one event as strictly as kubernaut's client: a null in a non-nullable
// member, a missing required member, an unknown category or outcome, or event_data that is no
// object fails it.
func DecodeEvent(raw []byte) (AuditEvent, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return AuditEvent{}, fmt.Errorf("decode AuditEvent: %w", err)
	}
	for _, name := range nonNullable {
		if v, ok := members[name]; ok && isNull(v) {
			return AuditEvent{}, fmt.Errorf("decode field %q: unexpected byte 110 'n'", name)
		}
	}
	for _, name := range append(required, "event_id") {
		if v, ok := members[name]; !ok || isNull(v) {
			return AuditEvent{}, fmt.Errorf("decode AuditEvent: field %q is required", name)
		}
	}
	var e AuditEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		return AuditEvent{}, fmt.Errorf("decode AuditEvent: %w", err)
	}
	switch {
	case !slices.Contains(Categories, e.EventCategory):
		return AuditEvent{}, fmt.Errorf("decode field %q: invalid value: %q", "event_category", e.EventCategory)
	case !slices.Contains(Outcomes, e.EventOutcome):
		return AuditEvent{}, fmt.Errorf("decode field %q: invalid value: %q", "event_outcome", e.EventOutcome)
	case !bytes.HasPrefix(bytes.TrimSpace(e.EventData), []byte("{")):
		return AuditEvent{}, fmt.Errorf("decode field %q: not an object", "event_data")
	}
	e.Raw = members
	return e, nil
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// QueryResponse is kubernaut's AuditEventsQueryResponse.
type QueryResponse struct {
	Data       []AuditEvent
	Pagination struct {
		Limit   int  `json:"limit"`
		Offset  int  `json:"offset"`
		Total   *int `json:"total"`
		HasMore bool `json:"has_more"`
	}
}

// Problem is kubernaut's RFC 7807 problem: field_errors maps each field to its message.
type Problem struct {
	Type        string            `json:"type"`
	Title       string            `json:"title"`
	Status      int               `json:"status"`
	Detail      string            `json:"detail"`
	FieldErrors map[string]string `json:"field_errors"`
}

// StatusError is a request the server refused.
type StatusError struct {
	Status int
	// Problem is the decoded problem+json body (nil when the body was none).
	Problem *Problem
}

func (e *StatusError) Error() string {
	if e.Problem != nil {
		return fmt.Sprintf("%d %s: %s %v", e.Status, e.Problem.Title, e.Problem.Detail, e.Problem.FieldErrors)
	}
	return fmt.Sprintf("status %d", e.Status)
}

// Permanent reports whether kubernaut's client gives up on the request: every 4xx but 401 and
// 403 (a 429 too). 5xx, 401 and 403 are retried.
func (e *StatusError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusUnauthorized && e.Status != http.StatusForbidden
}

// Client calls auditstore's audit API with a bearer token.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
}

func (c *Client) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode >= 400 {
		se := &StatusError{Status: resp.StatusCode}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			var p Problem
			if err := json.Unmarshal(b, &p); err != nil {
				return resp.StatusCode, b, fmt.Errorf("decode problem: %w", err)
			}
			se.Problem = &p
		}
		return resp.StatusCode, b, se
	}
	return resp.StatusCode, b, nil
}

// StoreBatch posts events as one batch and returns the stored event ids.
func (c *Client) StoreBatch(ctx context.Context, events []Event) ([]uuid.UUID, error) {
	_, b, err := c.do(ctx, http.MethodPost, "/api/v1/audit/events/batch", events)
	if err != nil {
		return nil, err
	}
	var reply struct {
		EventIDs []uuid.UUID `json:"event_ids"`
		Message  string      `json:"message"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return nil, fmt.Errorf("decode BatchAuditEventResponse: %w", err)
	}
	if len(reply.EventIDs) != len(events) {
		return nil, fmt.Errorf("BatchAuditEventResponse has %d event_ids for %d events", len(reply.EventIDs), len(events))
	}
	return reply.EventIDs, nil
}

// Query runs GET /api/v1/audit/events and decodes every event strictly.
func (c *Client) Query(ctx context.Context, params url.Values) (QueryResponse, error) {
	_, b, err := c.do(ctx, http.MethodGet, "/api/v1/audit/events?"+params.Encode(), nil)
	if err != nil {
		return QueryResponse{}, err
	}
	var body struct {
		Data       []json.RawMessage `json:"data"`
		Pagination json.RawMessage   `json:"pagination"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return QueryResponse{}, fmt.Errorf("decode AuditEventsQueryResponse: %w", err)
	}
	var out QueryResponse
	if err := json.Unmarshal(body.Pagination, &out.Pagination); err != nil {
		return QueryResponse{}, fmt.Errorf("decode field %q: %w", "pagination", err)
	}
	for i, raw := range body.Data {
		e, err := DecodeEvent(raw)
		if err != nil {
			return QueryResponse{}, fmt.Errorf("decode field \"data\": element %d: %w", i, err)
		}
		out.Data = append(out.Data, e)
	}
	return out, nil
}

// Get reads one event by id, decoded strictly.
func (c *Client) Get(ctx context.Context, id uuid.UUID) (AuditEvent, error) {
	_, b, err := c.do(ctx, http.MethodGet, "/api/v1/audit/events/"+id.String(), nil)
	if err != nil {
		return AuditEvent{}, err
	}
	return DecodeEvent(b)
}

// BufferedStore sends queued events as kubernaut's buffered audit store does with its
// recommended settings: batches of up to BatchSize (1,000) one after another, each sent when
// the previous one was answered; a batch refused permanently is dropped, a retryable failure
// is retried up to MaxRetries (3) times.
type BufferedStore struct {
	Client     *Client
	BatchSize  int
	MaxRetries int
	// Backoff is the pause before a retry (default 100ms, doubling).
	Backoff time.Duration

	// Stored and Dropped count events; Errors are the reasons batches were dropped.
	Stored, Dropped int
	Errors          []error
	// Latencies are the times of every batch request that was answered.
	Latencies []time.Duration
}

// Flush sends events and returns when every batch was stored or dropped.
func (b *BufferedStore) Flush(ctx context.Context, events []Event) {
	size := b.BatchSize
	if size <= 0 {
		size = 1000
	}
	for len(events) > 0 {
		n := min(size, len(events))
		b.send(ctx, events[:n])
		events = events[n:]
	}
}

func (b *BufferedStore) send(ctx context.Context, batch []Event) {
	retries := b.MaxRetries
	if retries == 0 {
		retries = 3
	}
	backoff := b.Backoff
	if backoff == 0 {
		backoff = 100 * time.Millisecond
	}
	var err error
	for attempt := 0; attempt <= retries; attempt++ {
		start := time.Now()
		_, err = b.Client.StoreBatch(ctx, batch)
		var se *StatusError
		if err == nil || errors.As(err, &se) {
			b.Latencies = append(b.Latencies, time.Since(start))
		}
		if err == nil {
			b.Stored += len(batch)
			return
		}
		if errors.As(err, &se) && se.Permanent() {
			break
		}
		time.Sleep(backoff << attempt)
	}
	b.Dropped += len(batch)
	b.Errors = append(b.Errors, err)
}
