// Package query is the query function: filtered, paged reads of audit events and single-event
// lookups (README "Query API").
package query

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/auditstore/auditstore/functions/query/ui"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/ijson"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the query function's configuration, read from the environment.
type Config struct {
	// CursorSecret signs pagination cursors so a modified or foreign cursor is refused. Every
	// instance must share it; when empty a random one is made at start (cursors then work
	// only against the instance that issued them).
	CursorSecret string `envconfig:"QUERY_CURSOR_SECRET"`
	// Timeout bounds every query (statement_timeout of the query pool); past it the client is
	// told which filter would narrow the query.
	Timeout time.Duration `envconfig:"QUERY_TIMEOUT" default:"10s"`
	// ExportTimeout bounds one export (0: no bound).
	ExportTimeout time.Duration `envconfig:"EXPORT_TIMEOUT" default:"30m"`
	// RandomPageCost is the planner's random_page_cost for queries: 1.1 suits SSD and
	// network storage, where a random read costs little more than a sequential one.
	RandomPageCost float64 `envconfig:"QUERY_RANDOM_PAGE_COST" default:"1.1"`
	// AuditReads records every query, get and export as an auditstore.query.executed event
	// (with WithReadAuditTo).
	AuditReads bool `envconfig:"QUERY_AUDIT_READS" default:"true"`
	// IntegrityPublicKeys are the checkpoint keys published at
	// /api/v1/audit/integrity/public-key (base64 of 32 bytes, comma-separated).
	IntegrityPublicKeys []string `envconfig:"INTEGRITY_PUBLIC_KEYS"`
	// DatabaseURL names a streaming replica of DATABASE_URL for the query function to read
	// from; unset (or DATABASE_URL itself), it reads from the primary alone.
	DatabaseURL string `envconfig:"QUERY_DATABASE_URL"`
	// MaxReplicaLag is how far behind the primary the replica may be and still answer a query;
	// beyond it queries go to the primary.
	MaxReplicaLag time.Duration `envconfig:"QUERY_MAX_REPLICA_LAG" default:"5s"`
	// ReplicaWait is how long a read that must see every acknowledged write (a get by id the
	// replica does not have, a correlation timeline, a window of the last minute) waits for the
	// replica to replay the primary's position before it goes to the primary.
	ReplicaWait time.Duration `envconfig:"QUERY_REPLICA_WAIT" default:"50ms"`
	// SigningKey is the checkpoint signing key (Ed25519, PEM PKCS #8 or base64 of its seed),
	// with which JSON exports are signed so the published public key verifies them; without it
	// an export asking for a detached signature is refused.
	SigningKey string `envconfig:"INTEGRITY_SIGNING_KEY"`
}

// PoolOptions are the options of the query pool: its own size, QUERY_TIMEOUT as every
// statement's timeout, the planner's page cost, and connections warmed for timelines.
func (c Config) PoolOptions(maxConns int32) store.PoolOptions {
	return store.PoolOptions{MaxConns: maxConns, StatementTimeout: c.Timeout, RandomPageCost: c.RandomPageCost, WarmTimelines: true}
}

// Store is what the query function needs of the store.
type Store interface {
	QueryEvents(ctx context.Context, p store.QueryParams) (store.Page, error)
	CountEvents(ctx context.Context, f store.Filter) (int64, error)
	GetEvent(ctx context.Context, id uuid.UUID) (audit.Event, error)
	StreamEvents(ctx context.Context, p store.StreamParams, fn func(*audit.Event) error) (int64, error)
}

// Option changes a Handler.
type Option func(*Handler)

// WithAuthorizer guards every route: only principals allowed to read get through, each with
// its scope (the namespaces and sensitive events it may read).
func WithAuthorizer(az auth.Authorizer, m *auth.Metrics) Option {
	return func(h *Handler) { h.guard = auth.ReadMiddleware(az, m) }
}

// WithReadAudit records every query, get and export as an auditstore.query.executed event
// through rec, off the query path.
func WithReadAudit(rec *ReadRecorder) Option {
	return func(h *Handler) { h.reads = rec }
}

// WithReadAuditTo records reads through ins when Config.AuditReads is set; Close stops it.
func WithReadAuditTo(ins Inserter) Option {
	return func(h *Handler) { h.readsTo = ins }
}

// Handler serves the query API.
type Handler struct {
	readsTo Inserter
	guard   func(http.Handler) http.Handler
	reads   *ReadRecorder
	store   Store
	secret  []byte
	now     func() time.Time
	cfg     Config
	metrics *metrics

	// log is the integrity log (WithIntegrity); nil serves no integrity routes.
	log  *store.Store
	keys []integrity.PublicKey
	// signer signs JSON exports (Config.SigningKey); nil signs none.
	signer *integrity.Signer
	// replica is the streaming replica reads prefer (WithReplica); nil reads from store alone.
	replica *replicaDB
}

// New returns a Handler over s, registering its metrics with reg (nil: none).
func New(s Store, cfg Config, reg prometheus.Registerer, opts ...Option) (*Handler, error) {
	if cfg.Timeout <= 0 || cfg.ExportTimeout < 0 {
		return nil, errors.New("QUERY_TIMEOUT must be positive and EXPORT_TIMEOUT not negative")
	}
	if cfg.RandomPageCost < 0 || cfg.RandomPageCost > 100 {
		return nil, errors.New("QUERY_RANDOM_PAGE_COST must be between 0 (the server's own) and 100")
	}
	if cfg.MaxReplicaLag < 0 || cfg.ReplicaWait < 0 || cfg.ReplicaWait > time.Second {
		return nil, errors.New("QUERY_MAX_REPLICA_LAG must not be negative, and QUERY_REPLICA_WAIT from 0 to 1s")
	}
	secret := []byte(cfg.CursorSecret)
	if len(secret) == 0 {
		slog.Warn("QUERY_CURSOR_SECRET is not set: cursors are signed with a random key and work only on this instance")
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
	}
	signer, _, err := ledger.ParseKeys(cfg.SigningKey, nil)
	if err != nil {
		return nil, err
	}
	h := &Handler{signer: signer, guard: auth.Middleware(auth.None{}, auth.Read, nil), store: s, secret: secret, now: time.Now, cfg: cfg, metrics: newMetrics(reg)}
	for _, o := range opts {
		o(h)
	}
	if h.replica != nil {
		h.replica.start(cfg, reg)
	}
	if h.reads == nil && h.readsTo != nil && cfg.AuditReads {
		h.reads = NewReadRecorder(h.readsTo, "auditstore-query", reg)
	}
	return h, nil
}

// Close writes the read records still buffered. Call it after the HTTP server has shut down.
func (h *Handler) Close() {
	if h.replica != nil {
		h.replica.close()
	}
	if h.reads != nil && h.readsTo != nil {
		h.reads.Close()
	}
}

// Routes registers the query API and the timeline viewer (at /ui/) on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/audit/events", h.guard(web.Handle(h.list)))
	mux.Handle("GET /api/v1/audit/events/{event_id}", h.guard(web.Handle(h.get)))
	mux.Handle("GET /api/v1/audit/export", h.guard(web.Handle(h.export)))
	if h.log != nil {
		h.integrityRoutes(mux)
	}
	ui.Routes(mux)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) error {
	raw := r.PathValue("event_id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return web.Invalid("event_id is not a UUID", []web.FieldError{{Field: "event_id", Message: fmt.Sprintf("%q is not a UUID", raw)}})
	}
	e, err := h.visibleEvent(w, r, id)
	if err != nil {
		return err
	}
	sens := newSensitiveReads(auth.ScopeFrom(r.Context()))
	sens.reveal(&e)
	h.reads.record(r, "get", 1, sens)
	return writeBody(w, append(e.AppendJSON(nil), '\n'))
}

// visibleEvent reads the event id when the reader may read it; one outside its namespaces is a
// 404 like one not stored, so a reader learns nothing of other namespaces' events.
func (h *Handler) visibleEvent(w http.ResponseWriter, r *http.Request, id uuid.UUID) (audit.Event, error) {
	var e audit.Event
	err := h.read(r.Context(), w, false, func(st Store, replica bool) (err error) {
		e, err = st.GetEvent(r.Context(), id)
		if replica && errors.Is(err, store.ErrNotFound) {
			return errNotReplayed
		}
		return err
	})
	if err != nil {
		return e, storeError(err, notFound(id))
	}
	ok, err := visible(r.Context(), auth.ScopeFrom(r.Context()), &e)
	if err != nil {
		return e, web.Unavailable("authorization is unavailable; retry later", 5*time.Second, err)
	}
	if !ok {
		return audit.Event{}, web.Error(http.StatusNotFound, notFound(id).Detail, nil)
	}
	return e, nil
}

// listReply is the body of a query.
type listReply struct {
	Data       []audit.Event `json:"data"`
	Pagination pagination    `json:"pagination"`
}

type pagination struct {
	Limit      int     `json:"limit"`
	Offset     int     `json:"offset"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
	Total      *int64  `json:"total,omitempty"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	values, err := web.Query(r)
	if err != nil {
		return err
	}
	scope := auth.ScopeFrom(r.Context())
	q, err := h.parse(values, false, scope)
	if err != nil {
		return err
	}
	start := time.Now()
	var page store.Page
	var total int64
	err = h.read(r.Context(), w, h.fresh(&q.params.Filter), func(st Store, _ bool) (err error) {
		if page, err = st.QueryEvents(r.Context(), q.params); err != nil || !q.includeTotal {
			return err
		}
		total, err = st.CountEvents(r.Context(), q.params.Filter)
		return err
	})
	if err != nil {
		return storeError(err)
	}
	h.metrics.observe(kindOf(&q.params.Filter), start, len(page.Events))
	sens := newSensitiveReads(scope)
	for i := range page.Events {
		sens.reveal(&page.Events[i])
	}
	h.reads.record(r, kindOf(&q.params.Filter), len(page.Events), sens)
	reply := listReply{Data: page.Events, Pagination: pagination{Limit: q.params.Limit, Offset: q.params.Offset, HasMore: page.HasMore}}
	if reply.Data == nil {
		reply.Data = []audit.Event{}
	}
	if page.HasMore {
		last := page.Events[len(page.Events)-1]
		c := h.signCursor(q.filterKey, q.params.Order, store.Cursor{EventTimestamp: last.EventTimestamp, EventID: last.EventID})
		reply.Pagination.NextCursor = &c
	}
	if q.includeTotal {
		reply.Pagination.Total = &total
	}
	return writeList(w, reply)
}

// writeList writes reply as web.WriteJSON would, byte for byte, with each event appended by
// hand (Event.AppendJSON): encoding/json spent 0.6 ms on a page of 100 events.
func writeList(w http.ResponseWriter, reply listReply) error {
	pagination, err := json.Marshal(reply.Pagination)
	if err != nil {
		return err
	}
	buf := bodies.Get().(*[]byte)
	defer putBody(buf)
	b := append((*buf)[:0], `{"data":[`...)
	for i := range reply.Data {
		if i > 0 {
			b = append(b, ',')
		}
		b = reply.Data[i].AppendJSON(b)
	}
	b = append(b, `],"pagination":`...)
	b = append(b, pagination...)
	*buf = append(b, "}\n"...)
	return writeBody(w, *buf)
}

// bodies recycles the buffers pages are encoded into (150 kB for 100 events), which were
// most of the query function's garbage.
var bodies = sync.Pool{New: func() any { return new([]byte) }}

// putBody returns a buffer to bodies, unless one huge page made it too big to keep around.
func putBody(buf *[]byte) {
	if cap(*buf) <= 4<<20 {
		bodies.Put(buf)
	}
}

// writeBody sends a JSON body of 200 OK, its length told (not chunked).
func writeBody(w http.ResponseWriter, body []byte) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

type parsed struct {
	params       store.QueryParams
	includeTotal bool
	filterKey    []byte // what a cursor is bound to: the filter and order it was made for
	format       string // of an export: ndjson or csv
}

var listParams = map[string]func(f *store.Filter) *[]string{
	"correlation_id": func(f *store.Filter) *[]string { return &f.CorrelationIDs },
	"event_category": func(f *store.Filter) *[]string { return &f.EventCategories },
	"event_action":   func(f *store.Filter) *[]string { return &f.EventActions },
	"event_outcome":  func(f *store.Filter) *[]string { return &f.EventOutcomes },
	"severity":       func(f *store.Filter) *[]string { return &f.Severities },
	"actor_type":     func(f *store.Filter) *[]string { return &f.ActorTypes },
	"actor_id":       func(f *store.Filter) *[]string { return &f.ActorIDs },
	"resource_type":  func(f *store.Filter) *[]string { return &f.ResourceTypes },
	"resource_id":    func(f *store.Filter) *[]string { return &f.ResourceIDs },
	"namespace":      func(f *store.Filter) *[]string { return &f.Namespaces },
	"cluster_id":     func(f *store.Filter) *[]string { return &f.ClusterIDs },
	"submitted_by":   func(f *store.Filter) *[]string { return &f.SubmittedBy },
}

var otherParams = []string{"event_type", "parent_event_id", "since", "until", "data", "data_path",
	"detail_key", "detail_value", "order", "limit", "offset", "cursor", "include_total"}

// pagingParams page a list; an export returns every match.
var pagingParams = []string{"limit", "offset", "cursor", "include_total"}

// exportParams are taken by an export only.
var exportParams = []string{"format"}

var eventTypeParam = regexp.MustCompile(`^[a-z0-9_.-]{1,100}$`)

// detailKeyParam is kubernaut's pattern for detail_key: a top-level event_data member name.
var detailKeyParam = regexp.MustCompile(`^[a-zA-Z0-9_]{1,255}$`)

// MaxOffset bounds offset: far beyond any page a client walks to (kubernaut's spec has no
// maximum), while QUERY_TIMEOUT bounds what reading that deep costs.
const MaxOffset = 1_000_000

// parse reads and checks every parameter, naming each bad one and what is accepted. An export
// takes the filters and order, not the paging parameters. The reader's scope becomes part of
// the filter, and of what a cursor is bound to: a cursor made for a wider scope is refused.
func (h *Handler) parse(v url.Values, export bool, scope auth.Scope) (parsed, error) {
	var p parsed
	var errs []web.FieldError
	bad := func(param, format string, args ...any) {
		errs = append(errs, web.FieldError{Field: param, Message: fmt.Sprintf(format, args...)})
	}
	f := &p.params.Filter
	for name, vals := range v {
		if _, ok := listParams[name]; !ok && !slices.Contains(otherParams, name) && !(export && slices.Contains(exportParams, name)) ||
			export && slices.Contains(pagingParams, name) {
			accepted := append(slices.Sorted(mapsKeys(listParams)), otherParams...)
			if export {
				accepted = slices.DeleteFunc(accepted, func(p string) bool { return slices.Contains(pagingParams, p) })
				accepted = append(accepted, exportParams...)
			}
			bad(name, "is not a parameter of this request; accepted: %s", strings.Join(accepted, ", "))
			continue
		}
		if dst, ok := listParams[name]; ok {
			for _, s := range vals {
				if n := utf8.RuneCountInString(s); n == 0 || n > 255 {
					bad(name, "must be 1 to 255 characters")
				}
			}
			*dst(f) = vals
		}
	}
	for _, s := range v["event_type"] {
		if prefix, ok := strings.CutSuffix(s, "*"); ok && eventTypeParam.MatchString(prefix) {
			f.EventTypePrefixes = append(f.EventTypePrefixes, prefix)
		} else if eventTypeParam.MatchString(s) {
			f.EventTypes = append(f.EventTypes, s)
		} else {
			bad("event_type", "%q is not an event type or a prefix ending in * (e.g. gateway.*)", s)
		}
	}
	for _, s := range v["parent_event_id"] {
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			bad("parent_event_id", "%q is not a UUID", s)
			continue
		}
		f.ParentEventIDs = append(f.ParentEventIDs, id)
	}
	now := h.now()
	single := func(name string) (string, bool) {
		vals := v[name]
		if len(vals) > 1 {
			bad(name, "may be given once")
		}
		if len(vals) == 0 {
			return "", false
		}
		return vals[0], true
	}
	if s, ok := single("since"); ok {
		if t, err := parseTime(s, now); err != nil {
			bad("since", "%s", err)
		} else {
			f.Since = &t
		}
	}
	if s, ok := single("until"); ok {
		if t, err := parseTime(s, now); err != nil {
			bad("until", "%s", err)
		} else {
			f.Until = &t
		}
	}
	if s, ok := single("data"); ok {
		// Checked in one linear scan first: the decoder behind CanonicalJSON costs time
		// quadratic in the depth of what it is given.
		if errs := ijson.Check([]byte(s), ijson.Limits{MaxDepth: audit.MaxDataDepth}); len(errs) > 0 {
			bad("data", "%s", errs[0])
		} else if data, err := audit.CanonicalJSON([]byte(s)); err != nil {
			bad("data", "%s", err)
		} else {
			f.Data = json.RawMessage(data)
		}
	}
	if err := detailFilter(f, v); err != nil {
		errs = append(errs, *err)
	}
	if s, ok := single("data_path"); ok {
		if n := utf8.RuneCountInString(s); n == 0 || n > 1000 {
			bad("data_path", "must be an SQL/JSON path predicate of 1 to 1000 characters, e.g. $.payload.retries > 3")
		}
		f.DataPath = s
	}
	p.params.Order = store.Descending
	if len(f.CorrelationIDs) > 0 {
		p.params.Order = store.Ascending // a timeline
	}
	if s, ok := single("order"); ok {
		switch s {
		case "asc":
			p.params.Order = store.Ascending
		case "desc":
			p.params.Order = store.Descending
		default:
			bad("order", "%q is not asc or desc", s)
		}
	}
	p.params.Limit = 100
	if s, ok := single("limit"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			bad("limit", "%q is not a whole number from 1 to 1000", s)
		}
		p.params.Limit = n
	}
	if s, ok := single("offset"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxOffset {
			bad("offset", "%q is not a whole number from 0 to %d", s, MaxOffset)
		}
		p.params.Offset = n
	}
	if s, ok := single("include_total"); ok {
		b, err := strconv.ParseBool(s)
		if err != nil {
			bad("include_total", "%q is not true or false", s)
		}
		p.includeTotal = b
	}
	if s, ok := single("format"); ok && export {
		if s != "ndjson" && s != "csv" {
			bad("format", "%q is not ndjson or csv", s)
		}
		p.format = s
	}
	for i, s := range f.Severities {
		f.Severities[i] = strings.ToLower(s) // stored lower-case, sent in any case
	}
	if !asksForOwn(f) {
		f.ExceptCategories = []string{audit.OwnCategory}
	}
	limitTo(scope, f)
	p.filterKey = filterKey(v, f)
	if s, ok := single("cursor"); ok {
		if _, hasOffset := v["offset"]; hasOffset {
			bad("cursor", "cannot be combined with offset")
		} else if c, err := h.openCursor(s, p.filterKey, p.params.Order); err != nil {
			bad("cursor", "is not a cursor this query issued (it was modified, or belongs to other filters)")
		} else {
			p.params.After = &c
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b web.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return p, web.Invalid("the query has invalid parameters", errs)
	}
	return p, nil
}

// asksForOwn reports whether f asks for auditstore's own events, by their category or an
// event_type of theirs (auditstore.query.executed, auditstore.*). Other queries leave them out:
// a kubernaut client decodes every returned event_data as one of its services' payloads, and
// one event of ours failed its whole answer.
func asksForOwn(f *store.Filter) bool {
	if slices.Contains(f.EventCategories, audit.OwnCategory) {
		return true
	}
	own := func(t string) bool { return strings.HasPrefix(t, audit.OwnCategory+".") }
	return slices.ContainsFunc(f.EventTypes, own) ||
		slices.ContainsFunc(f.EventTypePrefixes, func(p string) bool { return strings.HasPrefix(p, audit.OwnCategory) })
}

// detailFilter adds kubernaut's detail_key/detail_value filter to f: the top-level event_data
// member detail_key equal to the string detail_value, the same as
// data={"<detail_key>":"<detail_value>"} (with data too, both must hold).
func detailFilter(f *store.Filter, v url.Values) *web.FieldError {
	keys, values := v["detail_key"], v["detail_value"]
	bad := func(field, format string, args ...any) *web.FieldError {
		return &web.FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case len(keys) == 0 && len(values) == 0:
		return nil
	case len(keys) != 1 || len(values) != 1:
		if len(keys) == 0 || len(values) == 0 {
			return bad("detail_key", "and detail_value are given together, once each")
		}
		return bad("detail_key", "and detail_value may be given once each")
	case !detailKeyParam.MatchString(keys[0]):
		return bad("detail_key", "%q must be 1 to 255 letters, digits and _ (an event_data member name)", keys[0])
	case utf8.RuneCountInString(values[0]) > 1000:
		return bad("detail_value", "must be at most 1000 characters")
	}
	data := map[string]any{}
	if len(f.Data) > 0 {
		dec := json.NewDecoder(bytes.NewReader(f.Data))
		dec.UseNumber() // numbers as sent, not rounded to doubles
		if err := dec.Decode(&data); err != nil {
			return nil // data itself is reported invalid
		}
		if prev, ok := data[keys[0]]; ok && prev != values[0] {
			return bad("detail_value", "asks event_data.%s to be %q, and data asks it to be something else", keys[0], values[0])
		}
	}
	data[keys[0]] = values[0]
	b, err := audit.CanonicalJSON(mustMarshal(data))
	if err != nil {
		return bad("detail_value", "%s", err)
	}
	f.Data = json.RawMessage(b)
	return nil
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // a map of strings and decoded JSON always encodes
		panic(err)
	}
	return b
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// parseTime reads RFC 3339, a UTC date (its midnight), or a duration back from now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 && days <= 36500 {
			return now.AddDate(0, 0, -days), nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time, a date (2026-11-25) or a duration back from now (90s, 15m, 24h, 7d)", s)
}

// filterKey is a digest of every parameter but the paging ones, and of the reader's scope in
// f, so a cursor only continues the query it was issued for, in the scope it was issued in (a
// cursor from an offset page continues without the offset).
func filterKey(v url.Values, f *store.Filter) []byte {
	h := sha256.New()
	if f.Scoped {
		fmt.Fprintf(h, "scope=%q;", f.InNamespaces)
	}
	for _, k := range slices.Sorted(mapsKeys(v)) {
		if k == "cursor" || k == "limit" || k == "include_total" || k == "offset" {
			continue
		}
		vals := slices.Clone(v[k])
		slices.Sort(vals)
		fmt.Fprintf(h, "%q=%q;", k, vals)
	}
	return h.Sum(nil)
}

// signCursor encodes the keyset position and the order, bound to the filter by an HMAC.
func (h *Handler) signCursor(filterKey []byte, order store.Order, c store.Cursor) string {
	buf := make([]byte, 0, 1+8+16+32)
	buf = append(buf, byte(order))
	buf = binary.BigEndian.AppendUint64(buf, uint64(c.EventTimestamp.UnixMicro()))
	buf = append(buf, c.EventID[:]...)
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(filterKey)
	mac.Write(buf)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(buf))
}

func (h *Handler) openCursor(s string, filterKey []byte, order store.Order) (store.Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 1+8+16+32 {
		return store.Cursor{}, errors.New("malformed cursor")
	}
	body, sum := raw[:25], raw[25:]
	mac := hmac.New(sha256.New, h.secret)
	mac.Write(filterKey)
	mac.Write(body)
	if !hmac.Equal(sum, mac.Sum(nil)) || store.Order(body[0]) != order {
		return store.Cursor{}, errors.New("cursor signature does not match")
	}
	var c store.Cursor
	c.EventTimestamp = time.UnixMicro(int64(binary.BigEndian.Uint64(body[1:9]))).UTC()
	copy(c.EventID[:], body[9:25])
	return c, nil
}

// storeError is web.StoreError in the query function's words: how to narrow a query.
func storeError(err error, said ...web.Said) error {
	return web.StoreError(err, append(said,
		web.Said{Status: http.StatusGatewayTimeout, Detail: "the query took longer than QUERY_TIMEOUT; narrow it with correlation_id, since/until or event_type"},
		web.Said{Status: http.StatusBadRequest, Detail: "the query was refused by the database as invalid",
			Errors: []web.FieldError{{Field: "data_path", Message: "is not a valid SQL/JSON path predicate, e.g. $.payload.retries > 3"}}},
		web.Said{Status: http.StatusServiceUnavailable, Detail: "the database is unavailable or the query took too long; narrow it with since/until or correlation_id"})...)
}

// notFound is what a read of event id says when no such event is stored (or it is outside the
// reader's namespaces, which must look the same).
func notFound(id uuid.UUID) web.Said {
	return web.Said{Status: http.StatusNotFound, Detail: fmt.Sprintf("no event %s is stored", id)}
}
