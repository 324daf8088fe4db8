// Package write is the write function: it takes audit events in every shape of README
// "Write API" (a JSON event, a JSON batch, the header form, CloudEvents in binary, structured and
// batch mode), validates every event before storing any, stores them idempotently through a
// group committer, and answers only after the transaction holding them has committed.
package write

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/ijson"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxBodyBytes is the largest request body accepted (5 MiB); a larger one is a 413.
const MaxBodyBytes = 5 << 20

// MaxBatch is the largest number of events in one batch.
const MaxBatch = 1000

// Config is the write function's configuration, read from the environment.
type Config struct {
	// MaxClockSkew is how far in the future an event_timestamp may lie.
	MaxClockSkew time.Duration `envconfig:"MAX_CLOCK_SKEW" default:"5m"`
	// MaxEventAge, when set, is how far in the past an event_timestamp may lie. Unset, an event
	// is refused only when its own retention has already passed (a client replaying what it
	// buffered through an outage loses nothing).
	MaxEventAge time.Duration `envconfig:"MAX_EVENT_AGE"`
	// RetentionClasses are the stored retention periods in days, ascending, ending with 2557.
	RetentionClasses string `envconfig:"RETENTION_CLASSES" default:"90,180,365,730,1095,1825,2557"`
	// Committers is how many transactions the group committer runs at once.
	Committers int `envconfig:"WRITE_COMMITTERS" default:"2"`
	// GroupMaxEvents bounds the events of one group-commit transaction.
	GroupMaxEvents int `envconfig:"WRITE_GROUP_MAX_EVENTS" default:"1000"`
	// GroupWait is how long a committer waits for more requests before committing; 0 commits
	// what is queued at once (batches still grow under load, while committers are busy).
	GroupWait time.Duration `envconfig:"WRITE_GROUP_WAIT" default:"2ms"`
	// Timeout bounds one commit; past it the request gets a 503 and nothing is acknowledged.
	Timeout time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s"`
	// BrokerDeliveries is how the broker's deliveries at POST / (the Triggers' subscriber) are
	// authenticated: "verified" (sender identity: a token is checked as on every route) or
	// "unauthenticated" (Knative's defaults, no sender identity: a delivery without an
	// Authorization header is taken as knative-broker:unauthenticated; one with a token is
	// checked). Every other route checks tokens either way; the dead-letter sink never refuses.
	BrokerDeliveries string `envconfig:"AUTH_BROKER_DELIVERIES" default:"verified"`
	// DeadLetterURL is where the dead-letter sink keeps what the broker gave up on (a
	// gocloud.dev/blob URL: file://, s3://, gs://, azblob://), outside the database so a
	// delivery is kept while PostgreSQL is away. Unset: in the database (audit_deadletters).
	DeadLetterURL string `envconfig:"DEADLETTER_URL"`
	// EventHash computes each event's integrity hash as it is written. Off, the sealer hashes
	// the stored row instead: less CPU here, and a row changed before its seal goes unnoticed.
	EventHash bool `envconfig:"WRITE_EVENT_HASH" default:"true"`
	// HashVersion is the encoding of the hash of new events: 2 commits to each member on its
	// own (salted), so a member can be erased later and the event still verifies; 1 is the
	// encoding of events written before it (erasure refuses such events).
	HashVersion int `envconfig:"WRITE_HASH_VERSION" default:"2"`
}

// defaultHashVersion is HashVersion when a Config leaves it 0: version 2
// (integrity.HashVersionMembers), as WRITE_HASH_VERSION's default.
const defaultHashVersion = 2

// Store is what the write function needs of the store.
type Store interface {
	InsertEvents(ctx context.Context, p store.InsertParams) ([]store.InsertResult, bool, error)
}

// Limiter bounds the events a principal may write; auth.RateLimiter is one.
type Limiter interface {
	// Wait holds the request until the principal's budget admits n events (held says how
	// long). When it would not within the limiter's bound it takes nothing and says how long
	// until the request would fit (retryAfter > 0); a request whose context ends while held
	// gets ctx's error.
	Wait(ctx context.Context, principal string, n int) (held, retryAfter time.Duration, err error)
}

// Option changes a Handler.
type Option func(*Handler)

// WithAuthorizer guards every route: only principals allowed to write get through (to the
// dead-letter API, administrators), but for the broker's deliveries as Config.BrokerDeliveries
// says and the dead-letter sink, which never refuses.
func WithAuthorizer(az auth.Authorizer, m *auth.Metrics) Option {
	return func(h *Handler) { h.az, h.authMetrics = az, m }
}

// WithRateLimiter limits the events each principal writes: over it a request is held for a
// bounded time, and beyond that gets 429 and nothing of it is stored.
func WithRateLimiter(l Limiter) Option {
	return func(h *Handler) { h.limiter = l }
}

// Handler serves the write API.
type Handler struct {
	az          auth.Authorizer
	authMetrics *auth.Metrics
	guard       func(http.Handler) http.Handler
	// brokerGuard guards POST /, where the broker's Triggers deliver.
	brokerGuard func(http.Handler) http.Handler
	limiter     Limiter
	policies    *policies
	limits      audit.Limits
	hash        bool
	hashVer     int // WRITE_HASH_VERSION
	classes     []int
	now         func() time.Time
	committer   *committer
	metrics     *metrics

	// adminGuard lets only administrators through (the dead-letter API).
	adminGuard func(http.Handler) http.Handler
	// sinkGuard guards the dead-letter sink: it names a verified sender and refuses no one.
	sinkGuard   func(http.Handler) http.Handler
	deadLetters DeadLetterStore

	// events reads stored events back, when the store can (the answer to a notification
	// record sent again).
	events eventReader
}

// New checks cfg and returns a Handler over s, registering its metrics with reg (nil: none).
// Close it to finish in-flight commits.
func New(s Store, cfg Config, reg prometheus.Registerer, opts ...Option) (*Handler, error) {
	classes, err := audit.ParseRetentionClasses(cfg.RetentionClasses)
	if err != nil {
		return nil, fmt.Errorf("RETENTION_CLASSES: %w", err)
	}
	switch {
	case cfg.MaxClockSkew < 0:
		return nil, errors.New("MAX_CLOCK_SKEW must not be negative")
	case cfg.MaxEventAge < 0:
		return nil, errors.New("MAX_EVENT_AGE must not be negative (unset: any age the event's retention covers)")
	case cfg.Committers < 1 || cfg.Committers > 64:
		return nil, errors.New("WRITE_COMMITTERS must be between 1 and 64")
	case cfg.GroupMaxEvents < MaxBatch || cfg.GroupMaxEvents > 10000:
		return nil, fmt.Errorf("WRITE_GROUP_MAX_EVENTS must be between %d and 10000", MaxBatch)
	case cfg.GroupWait < 0 || cfg.GroupWait > 50*time.Millisecond:
		return nil, errors.New("WRITE_GROUP_WAIT must be between 0 and 50ms")
	case cfg.Timeout <= 0:
		return nil, errors.New("WRITE_TIMEOUT must be positive")
	case cfg.BrokerDeliveries != "" && cfg.BrokerDeliveries != "verified" && cfg.BrokerDeliveries != "unauthenticated":
		return nil, fmt.Errorf("AUTH_BROKER_DELIVERIES %q is not one of verified, unauthenticated", cfg.BrokerDeliveries)
	case cfg.HashVersion != 0 && cfg.HashVersion != 1 && cfg.HashVersion != 2:
		return nil, fmt.Errorf("WRITE_HASH_VERSION %d is not one of 1, 2", cfg.HashVersion)
	}
	m := newMetrics(reg)
	h := &Handler{
		az:        auth.None{},
		limits:    audit.Limits{MaxClockSkew: cfg.MaxClockSkew, MaxEventAge: cfg.MaxEventAge},
		hash:      cfg.EventHash,
		hashVer:   cmp.Or(cfg.HashVersion, defaultHashVersion),
		classes:   classes,
		now:       time.Now,
		metrics:   m,
		committer: newCommitter(s, cfg.Committers, cfg.GroupMaxEvents, cfg.GroupWait, cfg.Timeout, func(n int) { m.batchSize.Observe(float64(n)) }),
	}
	h.events, _ = s.(eventReader)
	for _, o := range opts {
		o(h)
	}
	broker := auth.Principal{Name: auth.BrokerUnauthenticated}
	h.guard = auth.Middleware(h.az, auth.Write, h.authMetrics)
	h.adminGuard = auth.Middleware(h.az, auth.Admin, h.authMetrics)
	h.brokerGuard = h.guard
	if cfg.BrokerDeliveries == "unauthenticated" {
		h.brokerGuard = auth.WithoutToken(h.az, auth.Write, h.authMetrics, broker)
	}
	h.sinkGuard = auth.Unrefused(h.az, auth.Write, h.authMetrics, broker)
	return h, nil
}

// Close waits for queued commits to finish. Call it after the HTTP server has shut down.
func (h *Handler) Close() {
	h.committer.close()
	if c, ok := h.deadLetters.(io.Closer); ok {
		_ = c.Close()
	}
}

// Routes registers the write API on mux: every shape at /api/v1/audit/events, JSON batches
// also at /api/v1/audit/events/batch, CloudEvents at / for Knative triggers, kubernaut's
// notification records at /api/v1/audit/notifications, and with
// WithDeadLetters the dead-letter sink and API.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/audit/events", h.guard(web.Handle(h.post)))
	mux.Handle("POST /api/v1/audit/events/batch", h.guard(web.Handle(h.postBatch)))
	mux.Handle("POST /{$}", h.brokerGuard(web.Handle(h.postCloudEvents)))
	mux.Handle("POST /api/v1/audit/notifications", h.guard(web.Handle(h.postNotification)))
	h.deadLetterRoutes(mux)
}

// principal is the caller the guard authorized: submitted_by, whatever the request says.
func principal(r *http.Request) string {
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		return p.Name
	}
	return "anonymous"
}

// shape is how a request carries its events.
type shape string

const (
	shapeJSON      shape = "json"
	shapeBatch     shape = "json_batch"
	shapeHeaders   shape = "headers"
	shapeCE        shape = "cloudevents"
	shapeUndecided shape = ""
)

// shapeOf tells the shapes apart by Content-Type and headers (README "Write API").
func shapeOf(r *http.Request) (shape, error) {
	ct := r.Header.Get("Content-Type")
	mt, err := mediaType(ct)
	switch {
	case err == nil && (mt == "application/cloudevents+json" || mt == "application/cloudevents-batch+json"):
		return shapeCE, nil
	case r.Header.Get("Ce-Specversion") != "":
		return shapeCE, nil
	case err == nil && mt == "application/json" && r.Header.Get("X-Event-Type") != "":
		return shapeHeaders, nil
	case err == nil && mt == "application/json":
		return shapeUndecided, nil // an object or an array: the body tells
	}
	return "", web.Error(http.StatusUnsupportedMediaType, fmt.Sprintf(
		"Content-Type %q is not supported; send application/json, application/cloudevents+json or application/cloudevents-batch+json", ct), err)
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request) error {
	sh, err := shapeOf(r)
	if err != nil {
		h.metrics.rejected.WithLabelValues("unsupported_media_type").Inc()
		return err
	}
	return h.serve(w, r, sh)
}

// postBatch takes batches only: a JSON array of events or a CloudEvents batch.
func (h *Handler) postBatch(w http.ResponseWriter, r *http.Request) error {
	sh, err := shapeOf(r)
	if err == nil && sh != shapeUndecided && !isCEBatch(r.Header) {
		err = web.Error(http.StatusUnsupportedMediaType, "only batches are accepted here: a JSON array of events (application/json) or application/cloudevents-batch+json", nil)
	}
	if err != nil {
		h.metrics.rejected.WithLabelValues("unsupported_media_type").Inc()
		return err
	}
	if sh == shapeUndecided {
		sh = shapeBatch // an object is refused as "not an array" by the batch decoder
	}
	return h.serve(w, r, sh)
}

func isCEBatch(header http.Header) bool {
	mt, err := mediaType(header.Get("Content-Type"))
	return err == nil && mt == "application/cloudevents-batch+json"
}

// mediaType is the media type of a Content-Type, lower case. The common plain values are
// taken as they are; anything else (parameters, other case) goes through mime.ParseMediaType,
// which allocates a map each call.
func mediaType(ct string) (string, error) {
	switch ct {
	case "application/json", "application/cloudevents+json", "application/cloudevents-batch+json":
		return ct, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	return mt, err
}

func (h *Handler) postCloudEvents(w http.ResponseWriter, r *http.Request) error {
	sh, err := shapeOf(r)
	if err == nil && sh != shapeCE {
		err = web.Error(http.StatusUnsupportedMediaType, "only CloudEvents are accepted at /; send JSON events to /api/v1/audit/events", nil)
	}
	if err != nil {
		h.metrics.rejected.WithLabelValues("unsupported_media_type").Inc()
		return err
	}
	return h.serve(w, r, sh)
}

// serve is the HTTP side of every write route: it reads the body, hands it to ingest, and
// answers with reply.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, sh shape) error {
	start := time.Now()
	body, err := readBody(w, r)
	if err != nil {
		var he *web.HTTPError
		if errors.As(err, &he) && he.Status == http.StatusRequestEntityTooLarge {
			h.metrics.rejected.WithLabelValues("too_large").Inc()
		} else {
			h.metrics.rejected.WithLabelValues("invalid").Inc()
		}
		return err
	}
	if sh == shapeUndecided {
		sh = shapeJSON
		if firstByte(body) == '[' {
			sh = shapeBatch
		}
	}
	res, err := h.ingest(r.Context(), principal(r), r.Header, sh, body)
	if err == nil {
		err = h.reply(w, r, sh, res)
	}
	if err != nil {
		h.metrics.rejected.WithLabelValues(rejectReason(err)).Inc()
	}
	h.metrics.observeDuration(sh, time.Since(start).Seconds())
	return err
}

func rejectReason(err error) string {
	var he *web.HTTPError
	if errors.As(err, &he) {
		switch he.Status {
		case http.StatusBadRequest:
			return "invalid"
		case http.StatusConflict:
			return "conflict"
		case http.StatusServiceUnavailable:
			return "unavailable"
		case http.StatusTooManyRequests:
			return "rate_limited"
		}
	}
	return "internal"
}

// readBody reads at most MaxBodyBytes (413 beyond, reading no further; web.ReadBody).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return web.ReadBody(w, r, MaxBodyBytes)
}

// checkJSON checks a body before any decoder reads it (ijson): I-JSON, and nested no deeper
// than event_data may be plus the levels the shape puts above event_data, in time linear in
// its size. The decoders after it are costlier the deeper the input; bounded here, a body
// nested 40,000 levels deep costs one scan instead of time quadratic in its depth. Every
// violation is named, as its sender knows the field.
func checkJSON(header http.Header, sh shape, body []byte) error {
	above := 1 // a JSON event, a structured CloudEvent
	switch {
	case sh == shapeCE && !isStructuredCE(header) && header.Get("Content-Type") != "" && !isJSONMedia(header.Get("Content-Type")):
		return nil // binary data that does not claim to be JSON: refused as such when mapped
	case sh == shapeHeaders || sh == shapeCE && !isStructuredCE(header):
		above = 0 // the body is event_data
	case sh == shapeBatch:
		above = 2
	case sh == shapeCE && isCEBatch(header):
		above = 2
	}
	errs := ijson.Check(body, ijson.Limits{MaxDepth: audit.MaxDataDepth + above})
	if len(errs) == 0 {
		return nil
	}
	out := make([]audit.FieldError, 0, len(errs))
	for _, e := range errs {
		fe := audit.FieldError{Field: "event_data", Message: e.Message}
		path := e.Path
		if above == 2 && len(path) > 0 && path[0].Index >= 0 {
			fe.Index = &path[0].Index
			path = path[1:]
		}
		if above > 0 {
			fe.Field = "body"
			if len(path) > 0 && path[0].Index < 0 {
				fe.Field, path = path[0].Name, path[1:]
			}
		}
		switch {
		case e.Kind == ijson.Syntax:
			fe.Field, fe.Index = "body", nil
			fe.Message = fmt.Sprintf("%s (at byte %d)", e.Message, e.Offset)
		case e.Kind == ijson.Depth:
			fe.Message = fmt.Sprintf("nests objects and arrays deeper than %d levels", audit.MaxDataDepth)
		case len(path) > 0:
			fe.Message = "at " + clipPath(ijson.FormatPath(path)) + ": " + e.Message
		}
		out = append(out, fe)
	}
	switch sh {
	case shapeCE:
		out = ceErrors(out)
	case shapeHeaders:
		out = renameFields(out, headerFieldNames)
	}
	return web.Invalid("the request body is not an acceptable JSON text; nothing was stored", toWebErrors(out))
}

// clipPath keeps a reply short when the path into event_data is long.
func clipPath(p string) string {
	if len(p) > 120 {
		return p[:117] + "..."
	}
	return p
}

// isJSONMedia reports whether a Content-Type is JSON: application/json or a +json type.
func isJSONMedia(ct string) bool {
	mt, err := mediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

func isStructuredCE(header http.Header) bool {
	mt, err := mediaType(header.Get("Content-Type"))
	return err == nil && (mt == "application/cloudevents+json" || mt == "application/cloudevents-batch+json")
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// ingested is what ingest stored of one request.
type ingested struct {
	events  []audit.Event
	results []store.InsertResult
	// batch: the request was a batch (stored atomically, answered as one).
	batch bool
	// inserted counts the events newly stored (the others were duplicates).
	inserted int
}

// ingest is the one write path, whoever carries the events: every HTTP route and shape, the
// broker's deliveries, and a dead letter replayed. It checks body (ijson), decodes the
// events of shape sh from it with header, validates them, holds them for principal's rate
// limit, and commits them; it returns what was stored, or the error the sender is to see
// (400 naming every problem, 409, 429, 503). It writes nothing back: each caller replies in
// its own terms (reply, or the replay's answer).
func (h *Handler) ingest(ctx context.Context, principal string, header http.Header, sh shape, body []byte) (ingested, error) {
	events, services, batch, err := h.prepareEvents(ctx, principal, header, sh, body)
	if err != nil {
		return ingested{}, err
	}
	if h.limiter != nil {
		// Last, after every check that can refuse the request for good (401/403, 413/415,
		// 400): only a request that would be stored waits, and it holds no connection yet.
		held, retry, err := h.limiter.Wait(ctx, principal, len(events))
		switch {
		case err != nil:
			return ingested{}, storeError(err)
		case retry > 0:
			return ingested{}, &web.HTTPError{Status: http.StatusTooManyRequests, RetryAfter: max(retry, time.Second),
				Detail: fmt.Sprintf("%s is over its rate limit of events; nothing was stored, retry after %s", principal, max(retry, time.Second).Round(time.Second))}
		case held > 0:
			h.metrics.held.Observe(held.Seconds())
		}
	}
	results, err := h.committer.submit(ctx, events, batch)
	if err != nil {
		return ingested{}, storeError(err)
	}
	res := ingested{events: events, results: results, batch: batch}
	var conflicts []web.FieldError
	for i, r := range results {
		switch r.Status {
		case store.Conflict:
			fe := web.FieldError{Field: "event_id", Message: fmt.Sprintf("%s is already stored with other content", r.EventID)}
			if batch {
				fe.Index = &i
			}
			conflicts = append(conflicts, fe)
		case store.Inserted:
			res.inserted++
		}
	}
	if len(conflicts) > 0 {
		return ingested{}, conflictError(sh, batch, results, conflicts)
	}
	for i, r := range results {
		if r.Status == store.Inserted {
			h.metrics.stored(services[i], events[i].EventType, events[i].EventOutcome)
		}
	}
	return res, nil
}

// conflictError is the refusal of a request whose events are stored with other content, in
// its shape's terms.
func conflictError(sh shape, batch bool, results []store.InsertResult, conflicts []web.FieldError) error {
	switch {
	case sh == shapeCE:
		// A 400, not a 409: Knative retries 409, and a retry cannot help.
		for i := range conflicts {
			conflicts[i].Field = "id"
		}
		return &web.HTTPError{Status: http.StatusBadRequest, Errors: conflicts,
			Detail: "a CloudEvent with this source and id is already stored with other content; nothing was stored"}
	case sh == shapeNotification:
		return &web.HTTPError{Status: http.StatusConflict, Detail: "a notification record with this notification_id is already stored with other content",
			Errors: []web.FieldError{{Field: "notification_id", Message: "is already stored with other content"}}}
	case batch:
		return &web.HTTPError{Status: http.StatusConflict, Detail: "the batch conflicts with stored events; nothing was stored", Errors: conflicts}
	}
	return &web.HTTPError{Status: http.StatusConflict, Detail: fmt.Sprintf("event_id %s is already stored with other content", results[0].EventID), Errors: conflicts}
}

// reply answers a stored request of shape sh over HTTP.
func (h *Handler) reply(w http.ResponseWriter, r *http.Request, sh shape, res ingested) error {
	switch {
	case sh == shapeCE:
		// No body: a 2xx body that parses as a CloudEvent would be routed on as a reply.
		w.WriteHeader(http.StatusAccepted)
		return nil
	case sh == shapeNotification:
		return h.notificationReply(w, r, res.events[0], res.results[0])
	case !res.batch:
		// Room for the whole reply: appending to nil grew it four times.
		b := make([]byte, 0, 192)
		if res.results[0].Status == store.Duplicate {
			return writeReply(w, http.StatusOK, appendEventReply(b, res.results[0], true, "event already stored; nothing new was stored"))
		}
		return writeReply(w, http.StatusCreated, appendEventReply(b, res.results[0], false, "event stored"))
	}
	status := http.StatusCreated
	if res.inserted == 0 {
		status = http.StatusOK
	}
	return writeReply(w, status, appendBatchReply(nil, res.results, res.inserted))
}

// The replies are written by hand: encoding/json's reflection and its buffer were a visible
// share of a single event's CPU. TestReplies_AsEncodingJSON holds them to encoding/json's
// output of eventReply and batchReply.

// jsonContentType is the Content-Type of every reply: assigned as this slice, which net/http
// only reads, instead of Header.Set allocating one per request.
var jsonContentType = []string{"application/json"}

func writeReply(w http.ResponseWriter, status int, body []byte) error {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// appendEventReply appends the JSON of eventReply, newline-terminated as json.Encoder's.
// message must need no escaping.
func appendEventReply(b []byte, res store.InsertResult, duplicate bool, message string) []byte {
	b = append(b, `{"event_id":"`...)
	b = audit.AppendUUID(b, res.EventID)
	b = append(b, `","event_timestamp":"`...)
	b = res.EventTimestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","duplicate":`...)
	b = strconv.AppendBool(b, duplicate)
	b = append(b, `,"message":"`...)
	b = append(b, message...)
	return append(b, "\"}\n"...)
}

// appendBatchReply appends the JSON of batchReply, newline-terminated as json.Encoder's.
func appendBatchReply(b []byte, results []store.InsertResult, inserted int) []byte {
	b = slices.Grow(b, 40*len(results)+100)
	b = append(b, `{"event_ids":[`...)
	for i, res := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = audit.AppendUUID(b, res.EventID)
		b = append(b, '"')
	}
	dups := len(results) - inserted
	b = append(b, `],"accepted":`...)
	b = strconv.AppendInt(b, int64(inserted), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(dups), 10)
	b = append(b, `,"message":"`...)
	b = strconv.AppendInt(b, int64(inserted), 10)
	b = append(b, " events stored, "...)
	b = strconv.AppendInt(b, int64(dups), 10)
	return append(b, " duplicates\"}\n"...)
}

// prepareEvents checks (checkJSON), decodes and validates a request of one shape: its events
// ready to store (hashed when configured), each one's envelope service (the metrics' label),
// whether they form a batch, or a 400 naming every problem. A plain JSON event or batch, and
// a binary-mode CloudEvent whose data is a JSON object, are read in one pass (fastInput,
// fastBatch, fastData), which checks what checkJSON would; anything else is checked first,
// then decoded.
func (h *Handler) prepareEvents(ctx context.Context, principal string, header http.Header, sh shape, body []byte) ([]audit.Event, []string, bool, error) {
	// The hash covers what is stored; Prepare takes it once every field is final, from the same
	// scan of event_data that checked it.
	d := audit.Defaults{Now: h.now(), Principal: principal, RetentionClasses: h.classes, Hash: h.hash, HashVersion: h.hashVer}
	if h.policies != nil {
		d.CategoryRetention = h.policies.lookup
	}
	var inputs []*audit.Input
	var traces []traceIDs
	var errs []audit.FieldError
	fast := false
	switch sh {
	case shapeJSON:
		if in, ok := fastInput(body); ok {
			inputs, fast = []*audit.Input{in}, true
		}
	case shapeBatch:
		inputs, fast = fastBatch(body)
	case shapeCE:
		if in, tr, ceErrs, ok := binaryCloudEvent(header, body); ok && len(body) > 0 && fastData(in, body) {
			inputs, traces, errs, fast = []*audit.Input{in}, []traceIDs{tr}, ceErrs, true
		}
	}
	if !fast {
		if err := checkJSON(header, sh, body); err != nil {
			return nil, nil, false, err
		}
		switch sh {
		case shapeCE:
			inputs, traces, errs = decodeCloudEvents(ctx, header, body)
		case shapeHeaders:
			in, herrs := headerInput(header, body)
			inputs, errs = []*audit.Input{in}, herrs
		case shapeJSON:
			in, jerrs := strictInput(body)
			inputs, errs = []*audit.Input{in}, jerrs
		case shapeBatch:
			inputs, errs = strictBatch(body)
		case shapeNotification:
			in, nerrs := decodeNotification(body)
			inputs, errs = []*audit.Input{in}, nerrs
		}
	}
	// A traceparent header is the request's trace context; a CloudEvent's own traceparent
	// extension, when it has one, wins.
	if tid, sid, ok := audit.ParseTraceparent(header.Get("Traceparent")); ok {
		if traces == nil {
			traces = make([]traceIDs, len(inputs))
		}
		for i := range traces {
			if traces[i].traceID == "" {
				traces[i] = traceIDs{tid, sid}
			}
		}
	}
	// Validate every event that decoded, also when others did not, so one reply names every
	// problem; a field that failed to decode is not reported twice.
	indexed := len(inputs) > 1 || sh == shapeBatch
	events := make([]audit.Event, len(inputs))
	services := make([]string, len(inputs))
	for i, in := range inputs {
		if in == nil {
			continue
		}
		di := d
		if traces != nil {
			di.TraceID, di.SpanID = traces[i].traceID, traces[i].spanID
		}
		var evErrs []audit.FieldError
		events[i], evErrs = in.Prepare(di, h.limits)
		services[i] = in.Service()
		for _, e := range evErrs {
			if indexed {
				e.Index = &i
			}
			if !hasError(errs, e.Index, e.Field) {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) > 0 {
		switch sh {
		case shapeCE:
			errs = ceErrors(errs)
		case shapeHeaders:
			errs = renameFields(errs, headerFieldNames)
		}
		slices.SortStableFunc(errs, func(a, b audit.FieldError) int { return cmp.Compare(index(a), index(b)) })
		detail := "the event is invalid; nothing was stored"
		if indexed {
			detail = "the batch has invalid events; nothing was stored"
		}
		return nil, nil, false, web.Invalid(detail, toWebErrors(errs))
	}
	return events, services, indexed, nil
}

func hasError(errs []audit.FieldError, idx *int, field string) bool {
	for _, e := range errs {
		if e.Field == field && (e.Index == nil) == (idx == nil) && (idx == nil || *e.Index == *idx) {
			return true
		}
	}
	return false
}

func index(e audit.FieldError) int {
	if e.Index == nil {
		return -1
	}
	return *e.Index
}

// decodeBatch decodes a JSON array of 1..MaxBatch event objects, naming every bad one. A valid
// batch is decoded in one pass; only an invalid one is taken apart event by event.
func decodeBatch(body []byte) ([]*audit.Input, []audit.FieldError) {
	if inputs, ok := fastBatch(body); ok {
		return inputs, nil
	}
	return strictBatch(body)
}

// strictBatch is decodeBatch of a body fastBatch did not take.
func strictBatch(body []byte) ([]*audit.Input, []audit.FieldError) {
	var all []audit.Input
	if strictParse(body, &all) && len(all) > 0 && len(all) <= MaxBatch {
		inputs := make([]*audit.Input, len(all))
		for i := range all {
			inputs[i] = &all[i]
		}
		return inputs, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, []audit.FieldError{{Field: "body", Message: "must be a JSON array of 1 to 1000 event objects"}}
	}
	if len(raws) == 0 || len(raws) > MaxBatch {
		return nil, []audit.FieldError{{Field: "body", Message: fmt.Sprintf("holds %d events; 1 to %d are accepted", len(raws), MaxBatch)}}
	}
	inputs := make([]*audit.Input, len(raws))
	var errs []audit.FieldError
	for i, raw := range raws {
		in, evErrs := decodeInput(raw)
		inputs[i] = in
		for _, e := range evErrs {
			e.Index = &i
			errs = append(errs, e)
		}
	}
	return inputs, errs
}

// eventReply is the body of a stored single event.
type eventReply struct {
	EventID        string    `json:"event_id"`
	EventTimestamp time.Time `json:"event_timestamp"`
	Duplicate      bool      `json:"duplicate"`
	Message        string    `json:"message"`
}

// batchReply is the body of a stored batch.
type batchReply struct {
	EventIDs   []string `json:"event_ids"`
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Message    string   `json:"message"`
}

func toWebErrors(errs []audit.FieldError) []web.FieldError {
	out := make([]web.FieldError, len(errs))
	for i, e := range errs {
		out[i] = web.FieldError{Index: e.Index, Field: e.Field, Message: e.Message}
	}
	return out
}

func renameFields(errs []audit.FieldError, names map[string]string) []audit.FieldError {
	for i := range errs {
		if n, ok := names[errs[i].Field]; ok {
			errs[i].Field = n
		}
	}
	return errs
}

// storeError is web.StoreError in the write function's words: nothing was stored.
func storeError(err error, said ...web.Said) error {
	return web.StoreError(err, append(said,
		web.Said{Status: http.StatusServiceUnavailable, Detail: "the database is unavailable; nothing was stored, retry later"},
		web.Said{Status: http.StatusBadRequest, Detail: "the database refused an event as invalid; nothing was stored"})...)
}
