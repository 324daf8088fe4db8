package kubernaut

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

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

// Client calls auditstore's audit API with a bearer token, as kubernaut's services do, and
// decodes every answer with Decode.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
	// Answered, when set, is told the status of every answer (before it is decoded).
	Answered func(status int)
}

// request is one call: what is sent, and the status kubernaut's client expects back.
type request struct {
	method, path string
	body         any
	header       http.Header
	want         int
}

// do sends r and returns the answer's body when its status is r.want (any 2xx when r.want is
// 0); a 4xx or 5xx is a *StatusError, another status an error.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	var body io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.URL+r.path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if c.Answered != nil {
		c.Answered(resp.StatusCode)
	}
	switch {
	case resp.StatusCode >= 400:
		se := &StatusError{Status: resp.StatusCode}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			var p Problem
			if err := json.Unmarshal(b, &p); err != nil {
				return b, fmt.Errorf("decode problem: %w", err)
			}
			se.Problem = &p
		}
		return b, se
	case r.want != 0 && resp.StatusCode != r.want, resp.StatusCode/100 != 2:
		return b, fmt.Errorf("unexpected status %d", resp.StatusCode)
	}
	return b, nil
}

// call does r and decodes its answer into v with Decode.
func (c *Client) call(ctx context.Context, r request, v any) error {
	b, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	return Decode(b, v)
}

// StoreEvent posts one event (201).
func (c *Client) StoreEvent(ctx context.Context, e Event) (EventResponse, error) {
	var out EventResponse
	err := c.call(ctx, request{method: http.MethodPost, path: "/api/v1/audit/events", body: e, want: http.StatusCreated}, &out)
	return out, err
}

// StoreBatch posts events as one batch (201) and returns the stored event ids.
func (c *Client) StoreBatch(ctx context.Context, events []Event) ([]uuid.UUID, error) {
	var out BatchResponse
	if err := c.call(ctx, request{method: http.MethodPost, path: "/api/v1/audit/events/batch", body: events, want: http.StatusCreated}, &out); err != nil {
		return nil, err
	}
	if len(out.EventIDs) != len(events) {
		return nil, fmt.Errorf("BatchAuditEventResponse has %d event_ids for %d events", len(out.EventIDs), len(events))
	}
	return out.EventIDs, nil
}

// Query runs GET /api/v1/audit/events.
func (c *Client) Query(ctx context.Context, params url.Values) (QueryResponse, error) {
	var out QueryResponse
	err := c.call(ctx, request{method: http.MethodGet, path: "/api/v1/audit/events?" + params.Encode()}, &out)
	return out, err
}

// Get reads one event by id.
func (c *Client) Get(ctx context.Context, id uuid.UUID) (AuditEvent, error) {
	var out AuditEvent
	err := c.call(ctx, request{method: http.MethodGet, path: "/api/v1/audit/events/" + id.String()}, &out)
	return out, err
}

// VerifyChain asks whether a correlation's events are unchanged (200 also when they are not).
func (c *Client) VerifyChain(ctx context.Context, correlationID string) (ChainVerification, error) {
	var out ChainVerification
	err := c.call(ctx, request{method: http.MethodPost, path: "/api/v1/audit/verify-chain",
		body: map[string]string{"correlation_id": correlationID}, want: http.StatusOK}, &out)
	return out, err
}

// PlaceLegalHold holds a correlation's events. kubernaut names its user in X-User-ID.
func (c *Client) PlaceLegalHold(ctx context.Context, correlationID, reason, user string) (LegalHold, error) {
	var out LegalHold
	err := c.call(ctx, request{method: http.MethodPost, path: "/api/v1/audit/legal-hold", header: http.Header{"X-User-Id": {user}},
		body: map[string]string{"correlation_id": correlationID, "reason": reason}, want: http.StatusOK}, &out)
	return out, err
}

// ListLegalHolds lists the active legal holds.
func (c *Client) ListLegalHolds(ctx context.Context) (LegalHoldList, error) {
	var out LegalHoldList
	err := c.call(ctx, request{method: http.MethodGet, path: "/api/v1/audit/legal-hold", want: http.StatusOK}, &out)
	return out, err
}

// ReleaseLegalHold releases a correlation's legal hold.
func (c *Client) ReleaseLegalHold(ctx context.Context, correlationID, reason, user string) (LegalHoldRelease, error) {
	var out LegalHoldRelease
	err := c.call(ctx, request{method: http.MethodDelete, path: "/api/v1/audit/legal-hold/" + url.PathEscape(correlationID),
		header: http.Header{"X-User-Id": {user}}, body: map[string]string{"release_reason": reason}, want: http.StatusOK}, &out)
	return out, err
}

// Export asks for the JSON export (Accept: application/json, format=json) and returns it with
// the body it was decoded from, which a detached signature covers.
func (c *Client) Export(ctx context.Context, params url.Values) (Export, []byte, error) {
	params = cloneValues(params)
	params.Set("format", "json")
	b, err := c.do(ctx, request{method: http.MethodGet, path: "/api/v1/audit/export?" + params.Encode(),
		header: http.Header{"Accept": {"application/json"}}, want: http.StatusOK})
	if err != nil {
		return Export{}, b, err
	}
	var out Export
	return out, b, Decode(b, &out)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// StoreNotification posts a notification record (201).
func (c *Client) StoreNotification(ctx context.Context, n Notification) (NotificationResponse, error) {
	var out NotificationResponse
	err := c.call(ctx, request{method: http.MethodPost, path: "/api/v1/audit/notifications", body: n, want: http.StatusCreated}, &out)
	return out, err
}

// Health asks a probe path (/healthz, /readyz) and wants 200 {"status":"healthy"}.
func (c *Client) Health(ctx context.Context, path string) error {
	var out struct {
		Status string `json:"status" kn:"required"`
	}
	if err := c.call(ctx, request{method: http.MethodGet, path: path, want: http.StatusOK}, &out); err != nil {
		return err
	}
	if out.Status != "healthy" {
		return fmt.Errorf("status %q, not healthy", out.Status)
	}
	return nil
}

// VerifyExport checks a JSON export's detached signature as an outside verifier does: the
// signed bytes are the body without the text `"detached_signature":"<value>",` after its
// opening brace; the value is base64 of an Ed25519 signature by key.
func VerifyExport(body []byte, key ed25519.PublicKey) error {
	var head struct {
		DetachedSignature string `json:"detached_signature"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return err
	}
	member := []byte(`{"detached_signature":"` + head.DetachedSignature + `",`)
	if !bytes.HasPrefix(body, member) {
		return errors.New("detached_signature is not the first member")
	}
	sig, err := base64.StdEncoding.DecodeString(head.DetachedSignature)
	if err != nil {
		return err
	}
	if !ed25519.Verify(key, append([]byte{'{'}, body[len(member):]...), sig) {
		return errors.New("the signature does not verify")
	}
	return nil
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
