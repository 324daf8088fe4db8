// Package client is the Go SDK services use to send audit events to auditstore: a Client that
// sends events synchronously, and an Emitter for hot paths that buffers, batches, retries and,
// with a spool directory, keeps events on disk while the store cannot take them.
//
// Events are audit.Input values, best made with the builders of package audit
// (audit.NewGatewayEvent(...).Build()), which check them. Every event gets its event_id
// (a UUIDv7) and event_timestamp on the client before it is first sent, so a retry is the same
// event and the store counts it once, and an event delivered late keeps the time it happened.
//
// Two transports: REST (JSON batches to the write function, the default) and CloudEvents over
// HTTP (one binary-mode CloudEvent per event, to a Knative broker or the write function).
package client

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	json "github.com/segmentio/encoding/json"
)

// Transport is how a Client carries events.
type Transport string

const (
	// REST posts JSON batches to <URL>/api/v1/audit/events (README "Write API", shape 2).
	REST Transport = "rest"
	// CloudEvents posts each event as a binary-mode CloudEvent to URL: a Knative broker's
	// address, or the write function itself (README "Write API", shape 4).
	CloudEvents Transport = "cloudevents"
)

// MaxBatch is the most events the store takes in one request.
const MaxBatch = 1000

// maxBatchBytes bounds a request body below the store's 5 MiB limit.
const maxBatchBytes = 4 << 20

// Config configures a Client. Zero fields take their defaults.
type Config struct {
	// URL is where events go: the write function's base URL for REST (events are posted to
	// <URL>/api/v1/audit/events), the broker's URL for CloudEvents. Required.
	URL string
	// Transport is REST (the default) or CloudEvents.
	Transport Transport
	// Source is the CloudEvents source attribute; default: each event's actor_id.
	Source string
	// Token is a bearer token sent with every request.
	Token string
	// TokenFile is a file holding the bearer token, read again for every request, so a
	// rotated Kubernetes service-account token is picked up. Wins over Token.
	TokenFile string
	// HTTPClient sends the requests (default: a client with a 30 s timeout).
	HTTPClient *http.Client
	// MinBackoff is the first wait before a retry (default 100 ms); each further retry waits
	// up to twice as long, with jitter, up to MaxBackoff (default 30 s). A Retry-After of the
	// store is honoured when longer.
	MinBackoff, MaxBackoff time.Duration
	// UserAgent is sent with every request (default auditstore-client-go).
	UserAgent string
}

// Client sends audit events to auditstore. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	tr   transport
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("client: URL is required")
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("client: URL %q must start with http:// or https://", cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	cfg.Transport = cmp.Or(cfg.Transport, REST)
	cfg.MinBackoff = cmp.Or(cfg.MinBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 30*time.Second)
	cfg.UserAgent = cmp.Or(cfg.UserAgent, "auditstore-client-go")
	switch {
	case cfg.MinBackoff < 0 || cfg.MaxBackoff < cfg.MinBackoff:
		return nil, errors.New("client: MinBackoff must be positive and at most MaxBackoff")
	}
	c := &Client{cfg: cfg, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	switch cfg.Transport {
	case REST:
		c.tr = &restTransport{c: c, url: cfg.URL + "/api/v1/audit/events"}
	case CloudEvents:
		c.tr = &ceTransport{c: c, url: cfg.URL}
	default:
		return nil, fmt.Errorf("client: Transport %q is not one of rest, cloudevents", cfg.Transport)
	}
	return c, nil
}

// pending is one event on its way: its id and its JSON.
type pending struct {
	id  string
	raw []byte
	seq uint64    // the Emitter's order; 0 for events read back from the spool
	at  time.Time // when it was emitted
}

// encode gives in an event_id and event_timestamp when it has none (so every retry sends the
// same event), checks that the transport can carry it, and encodes it.
func (c *Client) encode(in *audit.Input, now time.Time) (pending, error) {
	if in == nil {
		return pending{}, errors.New("client: nil event")
	}
	if in.EventID == nil {
		id, err := uuid.NewV7()
		if err != nil {
			return pending{}, err
		}
		s := id.String()
		in.EventID = &s
	}
	if in.EventTimestamp == nil {
		ts := now.UTC().Format(time.RFC3339Nano)
		in.EventTimestamp = &ts
	}
	if err := c.tr.check(in); err != nil {
		return pending{}, err
	}
	// No HTML escaping (the store does not need it), into a buffer sized for the event at once.
	raw, err := json.Append(make([]byte, 0, len(in.EventData)+512), in, 0)
	if err != nil {
		return pending{}, fmt.Errorf("client: event %s cannot be encoded: %w", *in.EventID, err)
	}
	return pending{id: *in.EventID, raw: raw, at: now}, nil
}

// Send sends events and returns when the store has acknowledged every one (stored, or already
// stored: a duplicate), or refused some, or ctx ends. It fills in the event_id and
// event_timestamp of events that have none, so the caller can refer to them and a retry is a
// duplicate. Network errors, 429 and 5xx are retried with backoff until ctx ends; give it a
// deadline. Events the store refused are reported in a *DeliveryError (several are joined);
// the others are still sent.
func (c *Client) Send(ctx context.Context, events ...*audit.Input) error {
	now := time.Now()
	all := make([]pending, len(events))
	for i, in := range events {
		p, err := c.encode(in, now)
		if err != nil {
			return err
		}
		all[i] = p
	}
	var errs []error
	for len(all) > 0 {
		n := batchLen(all, MaxBatch)
		rest := c.deliver(ctx, all[:n], loopHooks{rejected: func(e *DeliveryError) { errs = append(errs, e) }})
		if len(rest) > 0 {
			left := len(rest) + len(all) - n
			errs = append(errs, fmt.Errorf("client: %d events not acknowledged: %w", left, context.Cause(ctx)))
			break
		}
		all = all[n:]
	}
	return errors.Join(errs...)
}

// batchLen is how many of the first events make one request: at most limit, and under
// maxBatchBytes (at least one).
func batchLen(events []pending, limit int) int {
	size := 0
	for i, p := range events {
		size += len(p.raw) + 1
		if i == limit || (i > 0 && size > maxBatchBytes) {
			return i
		}
	}
	return len(events)
}

// loopHooks let the caller of deliver count and steer.
type loopHooks struct {
	// delivered is called with the events the store acknowledged.
	delivered func(n int)
	// rejected is called with events the store refused: they are not retried.
	rejected func(*DeliveryError)
	// retrying is called before waiting to send n events again after err.
	retrying func(n int, err error)
	// stop, when it returns true after a failed attempt (begun at started), ends the retries:
	// deliver returns what is left.
	stop func(started time.Time) bool
	// interrupt, when closed, cuts the current wait short: the next attempt is made at once.
	interrupt <-chan struct{}
}

// deliver sends batch until every event is acknowledged or refused, retrying the rest with
// exponential backoff and jitter (honouring Retry-After), until ctx ends or hooks.stop says
// so. It returns the events left undelivered.
func (c *Client) deliver(ctx context.Context, batch []pending, h loopHooks) []pending {
	for attempt := 0; len(batch) > 0; {
		started := time.Now()
		d := c.tr.deliver(ctx, batch)
		var again []pending
		var rejected *DeliveryError
		for i, st := range d.status {
			switch st {
			case delivered:
				if h.delivered != nil {
					h.delivered(1)
				}
			case refused:
				if rejected == nil {
					rejected = &DeliveryError{Status: d.httpStatus, Detail: d.detail}
				}
				rejected.EventIDs = append(rejected.EventIDs, batch[i].id)
				rejected.Problems = append(rejected.Problems, d.problems[i]...)
			case retry:
				again = append(again, batch[i])
			}
		}
		if rejected != nil && h.rejected != nil {
			h.rejected(rejected)
		}
		batch = again
		if len(batch) == 0 {
			return nil
		}
		if errors.Is(d.err, errResend) {
			continue // not stored only because others of the batch were refused: no wait
		}
		if ctx.Err() != nil {
			return batch // given up, not failed: no retry to count
		}
		attempt++
		if h.retrying != nil {
			h.retrying(len(batch), d.err)
		}
		if h.stop != nil && h.stop(started) {
			return batch
		}
		t := time.NewTimer(c.backoff(attempt, d.retryAfter))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return batch
		case <-h.interrupt:
			// Try again now: stop is asked only after this attempt fails.
			t.Stop()
			h.interrupt = nil // once: a closed channel would end every later wait at once
		}
	}
	return nil
}

// backoff is the wait before retry number attempt (from 1): exponential from MinBackoff to
// MaxBackoff with equal jitter (half fixed, half random, so clients that failed together do
// not retry together), or the store's Retry-After when that is longer.
func (c *Client) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := c.cfg.MaxBackoff
	if attempt < 32 {
		d = min(c.cfg.MaxBackoff, c.cfg.MinBackoff<<(attempt-1))
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, min(retryAfter, 10*time.Minute))
}

// DeliveryError reports events the store refused, or that could not be delivered and will
// not be retried. The Emitter passes it to its OnError callback; Send returns it.
type DeliveryError struct {
	// EventIDs are the events concerned.
	EventIDs []string
	// Status is the HTTP status of the store's answer (0: no answer).
	Status int
	// Detail is the store's explanation, or why the events were given up.
	Detail string
	// Problems are the store's field errors for these events.
	Problems []Problem
}

// Problem is one field error the store gave for an event.
type Problem struct {
	EventID string `json:"event_id"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audit events not delivered (%d)", len(e.EventIDs))
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for i, p := range e.Problems {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		fmt.Fprintf(&b, "; event %s: %s %s", p.EventID, p.Field, p.Message)
	}
	return b.String()
}

// status is what became of one event of a delivery.
type status uint8

const (
	delivered status = iota
	refused          // the store refused it: not retried
	retry            // send it again
)

// delivery is the result of one attempt at a batch.
type delivery struct {
	status     []status
	problems   [][]Problem // field errors of refused events, by index
	httpStatus int
	detail     string
	err        error         // why the retries failed; errResend: they may go again at once
	retryAfter time.Duration // the store's Retry-After
}

// errResend marks events that were not stored only because others in their batch were refused
// (a batch is stored whole or not at all): they go again at once, without them.
var errResend = errors.New("resend without the refused events")

func newDelivery(n int, st status) delivery {
	d := delivery{status: make([]status, n), problems: make([][]Problem, n)}
	for i := range d.status {
		d.status[i] = st
	}
	return d
}

// transport carries events.
type transport interface {
	// check refuses an event the transport cannot carry whole.
	check(in *audit.Input) error
	// deliver makes one attempt at sending batch.
	deliver(ctx context.Context, batch []pending) delivery
}

// post sends a request and returns the status, headers and (a bounded amount of) body.
func (c *Client) post(ctx context.Context, url string, body []byte, header http.Header) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return c.do(req)
}

// do adds the user agent and the bearer token to req and sends it.
func (c *Client) do(req *http.Request) (int, http.Header, []byte, error) {
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	token := c.cfg.Token
	if c.cfg.TokenFile != "" {
		b, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("read token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, resp.Body) // drained so the connection is reused
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// retryable tells whether an answer with this status may succeed when sent again: 429 and
// 5xx (the store or a proxy in front of it is overloaded or restarting). Every other 4xx is
// the request's own fault.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}

// problemBody is the part of an RFC 9457 problem the client reads.
type problemBody struct {
	Detail string `json:"detail"`
	Errors []struct {
		Index   *int   `json:"index"`
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}
