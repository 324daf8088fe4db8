package write

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/ijson"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/uuid"
)

// MaxDeadLetterBytes is how much of a dead-lettered delivery is kept. It is larger than
// MaxBodyBytes because a delivery refused as too large must be kept too; beyond it the first
// MaxDeadLetterBytes are kept and the dead letter says it was cut.
const MaxDeadLetterBytes = 16 << 20

// maxDeadLetterDepth is the deepest nesting a dead letter is kept with as JSON; a deeper one
// is kept as it came, as bytes.
const maxDeadLetterDepth = 256

// knativeExtensions are the attributes Knative adds to a dead-lettered event; a replay removes
// them, so the replayed event is the one the producer sent.
var knativeExtensions = []string{"knativeerrorcode", "knativeerrordest", "knativeerrordata"}

// DeadLetterStore is what the dead-letter sink and API need of the store.
type DeadLetterStore interface {
	InsertDeadLetter(ctx context.Context, d store.DeadLetter) (store.DeadLetter, error)
	ListDeadLetters(ctx context.Context, p store.DeadLetterParams) ([]store.DeadLetter, error)
	GetDeadLetter(ctx context.Context, id uuid.UUID) (store.DeadLetter, error)
	MarkDeadLetterReplayed(ctx context.Context, id uuid.UUID, by string) (store.DeadLetter, error)
}

// WithDeadLetters serves the broker's dead-letter sink (POST /api/v1/deadletter, which refuses
// no one: a verified sender is named, any other delivery is kept as
// knative-broker:unauthenticated) and the dead-letter API (list, get, replay, for
// administrators) over s: the database's table, or a bucket (shared/deadletter). Close closes
// s when it is an io.Closer.
func WithDeadLetters(s DeadLetterStore) Option {
	return func(h *Handler) { h.deadLetters = s }
}

func (h *Handler) deadLetterRoutes(mux *http.ServeMux) {
	if h.deadLetters == nil {
		return
	}
	mux.Handle("POST /api/v1/deadletter", h.sinkGuard(web.Handle(h.postDeadLetter)))
	mux.Handle("GET /api/v1/deadletters", h.adminGuard(web.Handle(h.listDeadLetters)))
	mux.Handle("GET /api/v1/deadletters/{id}", h.adminGuard(web.Handle(h.getDeadLetter)))
	mux.Handle("POST /api/v1/deadletters/{id}/replay", h.adminGuard(web.Handle(h.replayDeadLetter)))
}

// postDeadLetter stores whatever the broker dead-lettered: every CloudEvent it can read, valid
// as an audit event or not, and anything else as it came. Only a database that cannot store it
// makes it fail (503, so the sender retries); the reply is 202 with no body.
func (h *Handler) postDeadLetter(w http.ResponseWriter, r *http.Request) error {
	body, readErr := io.ReadAll(io.LimitReader(r.Body, MaxDeadLetterBytes+1))
	truncated := len(body) > MaxDeadLetterBytes
	if truncated {
		body = body[:MaxDeadLetterBytes]
	}
	who := principal(r)
	var letters []store.DeadLetter
	switch {
	case readErr != nil:
		letters = []store.DeadLetter{rawDeadLetter(r.Header, body, "the body could not be read whole: "+readErr.Error())}
	case truncated:
		letters = []store.DeadLetter{rawDeadLetter(r.Header, body, fmt.Sprintf("the body is larger than %d bytes: only its beginning is kept", MaxDeadLetterBytes))}
	default:
		letters = deadLettersOf(r.Context(), r.Header, body)
	}
	for _, d := range letters {
		d.SubmittedBy = who
		stored, err := h.deadLetters.InsertDeadLetter(r.Context(), d)
		if errors.Is(err, store.ErrInvalid) && d.Event != nil {
			// The database refused the event as JSON (a \u0000 in a string, say): keep the
			// delivery as it came instead.
			raw := rawDeadLetter(r.Header, body, "the CloudEvent could not be stored as JSON: "+err.Error())
			raw.SubmittedBy = who
			stored, err = h.deadLetters.InsertDeadLetter(r.Context(), raw)
		}
		if err != nil {
			return storeError(err)
		}
		code := "none"
		if stored.ErrorCode != nil && *stored.ErrorCode >= 100 && *stored.ErrorCode <= 599 {
			code = strconv.Itoa(*stored.ErrorCode)
		}
		h.metrics.deadLetters.WithLabelValues(code).Inc()
		slog.WarnContext(r.Context(), "dead letter stored", "deadletter_id", stored.DeadLetterID, "ce_type", deref(stored.CEType),
			"ce_source", deref(stored.CESource), "ce_id", deref(stored.CEID), "error_code", code, "error_dest", deref(stored.ErrorDest))
	}
	w.WriteHeader(http.StatusAccepted) // no body: a 2xx body that parses as a CloudEvent would be routed on
	return nil
}

// deadLettersOf reads the CloudEvents of a delivery (one, or a batch), or keeps it raw.
func deadLettersOf(ctx context.Context, header http.Header, body []byte) []store.DeadLetter {
	msg := cehttp.NewMessage(header, io.NopCloser(bytes.NewReader(body)))
	defer msg.Finish(nil) //nolint:errcheck // nothing to release for an in-memory body
	var events []event.Event
	var err error
	switch msg.ReadEncoding() {
	case binding.EncodingBatch:
		events, err = binding.ToEvents(ctx, msg, bytes.NewReader(body))
	case binding.EncodingBinary, binding.EncodingStructured:
		var ev *event.Event
		if ev, err = binding.ToEvent(ctx, msg); err == nil {
			events = []event.Event{*ev}
		}
	default:
		err = errors.New("no CloudEvent: neither Ce-Specversion nor a CloudEvents Content-Type")
	}
	if err == nil && len(events) == 0 {
		err = errors.New("an empty CloudEvents batch")
	}
	if err != nil {
		return []store.DeadLetter{rawDeadLetter(header, body, err.Error())}
	}
	out := make([]store.DeadLetter, 0, len(events))
	for i := range events {
		d, err := deadLetterOf(&events[i])
		if err != nil {
			return []store.DeadLetter{rawDeadLetter(header, body, err.Error())}
		}
		out = append(out, d)
	}
	return out
}

// deadLetterOf keeps one CloudEvent whole, with its attributes and Knative's error extensions
// in columns of their own.
func deadLetterOf(ev *event.Event) (store.DeadLetter, error) {
	whole, err := json.Marshal(ev)
	if err != nil || !json.Valid(whole) {
		return store.DeadLetter{}, fmt.Errorf("the CloudEvent cannot be written as JSON (its data does not match its datacontenttype): %v", err)
	}
	// Kept as it came when the database could not take it as JSON, or when listing it would
	// cost a reader more than it is worth to read: anything nested deeper than this.
	if errs := ijson.Check(whole, ijson.Limits{MaxDepth: maxDeadLetterDepth}); ijson.FirstFatal(errs) != nil {
		return store.DeadLetter{}, fmt.Errorf("the CloudEvent is not kept as JSON: %v", ijson.FirstFatal(errs))
	}
	str := func(v string) *string {
		if v == "" {
			return nil
		}
		v = cleanText(v)
		return &v
	}
	d := store.DeadLetter{CEID: str(ev.ID()), CESource: str(ev.Source()), CEType: str(ev.Type()), Event: whole}
	ext := ev.Extensions()
	extString := func(name string) string {
		v, ok := ext[name]
		if !ok {
			return ""
		}
		s, err := types.ToString(v)
		if err != nil {
			s = fmt.Sprint(v)
		}
		return s
	}
	if code, err := strconv.Atoi(strings.TrimSpace(extString("knativeerrorcode"))); err == nil {
		d.ErrorCode = &code
	}
	d.ErrorDest = str(extString("knativeerrordest"))
	if data := extString("knativeerrordata"); data != "" {
		// Knative sends the failed response's body base64-encoded; keep it readable when it is
		// text, as sent otherwise.
		if dec, err := base64.StdEncoding.DecodeString(data); err == nil && utf8.Valid(dec) {
			data = string(dec)
		}
		d.ErrorData = str(data)
	}
	return d, nil
}

// rawDeadLetter keeps a delivery that could not be read as a CloudEvent as it came.
func rawDeadLetter(header http.Header, body []byte, why string) store.DeadLetter {
	headers := map[string]string{}
	for name, values := range header {
		if strings.HasPrefix(strings.ToLower(name), "ce-") || strings.EqualFold(name, "Content-Type") {
			headers[name] = cleanText(strings.Join(values, ", "))
		}
	}
	why = cleanText(why)
	d := store.DeadLetter{Headers: headers, Body: body, ParseError: &why}
	// A binary-mode delivery still says in its headers why it was dead-lettered.
	if code, err := strconv.Atoi(strings.TrimSpace(header.Get("Ce-Knativeerrorcode"))); err == nil {
		d.ErrorCode = &code
	}
	if dest := cleanText(header.Get("Ce-Knativeerrordest")); dest != "" {
		d.ErrorDest = &dest
	}
	if ct := header.Get("Content-Type"); ct != "" {
		ct = cleanText(ct)
		d.ContentType = &ct
	}
	if body == nil {
		d.Body = []byte{}
	}
	return d
}

// cleanText makes s storable as PostgreSQL text: valid UTF-8 without NUL.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// deadLetterPage is the body of GET /api/v1/deadletters.
type deadLetterPage struct {
	Data       []store.DeadLetter `json:"data"`
	Pagination struct {
		Limit      int     `json:"limit"`
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

// listDeadLetters lists dead letters, oldest first: pending=true for those not replayed,
// type, since and until (RFC 3339) on the time received, limit 1..1000 and cursor.
func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	q, err := web.Query(r)
	if err != nil {
		return err
	}
	p := store.DeadLetterParams{Limit: 100}
	var errs []web.FieldError
	bad := func(field, msg string) { errs = append(errs, web.FieldError{Field: field, Message: msg}) }
	for name, values := range q {
		if len(values) != 1 {
			bad(name, "may be given once")
			continue
		}
		v := values[0]
		switch name {
		case "pending":
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(name, "must be true or false")
			}
			p.Pending = b
		case "type":
			p.CEType = v
		case "since", "until":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad(name, "must be an RFC 3339 time, e.g. 2026-11-25T10:00:00Z")
			} else if name == "since" {
				p.Since = &t
			} else {
				p.Until = &t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				bad(name, "must be an integer from 1 to 1000")
			}
			p.Limit = n
		case "cursor":
			id, err := uuid.Parse(v)
			if err != nil {
				bad(name, "must be the next_cursor of an earlier page")
			}
			p.After = &id
		default:
			bad(name, "is not a parameter of this list; use pending, type, since, until, limit, cursor")
		}
	}
	if len(errs) > 0 {
		return web.Invalid("the dead-letter query is invalid", errs)
	}
	limit := p.Limit
	p.Limit++ // one more tells whether there is a next page
	letters, err := h.deadLetters.ListDeadLetters(r.Context(), p)
	if err != nil {
		return storeError(err)
	}
	var page deadLetterPage
	page.Pagination.Limit = limit
	if len(letters) > limit {
		letters = letters[:limit]
		page.Pagination.HasMore = true
		next := letters[limit-1].DeadLetterID.String()
		page.Pagination.NextCursor = &next
	}
	page.Data = letters
	if page.Data == nil {
		page.Data = []store.DeadLetter{}
	}
	return web.WriteJSON(w, http.StatusOK, page)
}

func (h *Handler) getDeadLetter(w http.ResponseWriter, r *http.Request) error {
	d, err := h.deadLetterOfPath(r)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, d)
}

func (h *Handler) deadLetterOfPath(r *http.Request) (store.DeadLetter, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return store.DeadLetter{}, web.Invalid("the dead-letter id is not a UUID", []web.FieldError{{Field: "id", Message: "must be a UUID"}})
	}
	d, err := h.deadLetters.GetDeadLetter(r.Context(), id)
	if err != nil {
		return store.DeadLetter{}, storeError(err, web.Said{Status: http.StatusNotFound, Detail: fmt.Sprintf("no dead letter %s", id)})
	}
	return d, nil
}

// replayReply is the body of a replay.
type replayReply struct {
	DeadLetter store.DeadLetter `json:"deadletter"`
	// EventIDs are the event_ids the replayed CloudEvent mapped to (stored now, or already).
	EventIDs []string `json:"event_ids"`
	Message  string   `json:"message"`
}

// replayDeadLetter feeds a dead-lettered CloudEvent, without Knative's error extensions,
// through the normal write path as the calling administrator, and records the replay. An
// event that is still invalid stays dead-lettered and the reply names its problems.
func (h *Handler) replayDeadLetter(w http.ResponseWriter, r *http.Request) error {
	d, err := h.deadLetterOfPath(r)
	if err != nil {
		return err
	}
	if d.ReplayedAt != nil {
		return web.Error(http.StatusConflict, fmt.Sprintf("dead letter %s was already replayed at %s by %s",
			d.DeadLetterID, d.ReplayedAt.UTC().Format(time.RFC3339), deref(d.ReplayedBy)), nil)
	}
	if d.Event == nil {
		return web.Error(http.StatusConflict, fmt.Sprintf("dead letter %s is no CloudEvent (%s) and cannot be replayed; read it with GET /api/v1/deadletters/%s",
			d.DeadLetterID, deref(d.ParseError), d.DeadLetterID), nil)
	}
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(d.Event, &attrs); err != nil {
		return fmt.Errorf("dead letter %s: stored event: %w", d.DeadLetterID, err)
	}
	for _, name := range knativeExtensions {
		delete(attrs, name)
	}
	body, err := json.Marshal(attrs)
	if err != nil {
		return err
	}
	// The same path as a structured CloudEvent the broker delivers, as the calling
	// administrator.
	who := principal(r)
	res, err := h.ingest(r.Context(), who, http.Header{"Content-Type": {"application/cloudevents+json"}}, shapeCE, body)
	if err != nil {
		var he *web.HTTPError
		if errors.As(err, &he) && he.Status == http.StatusBadRequest {
			he.Detail = fmt.Sprintf("dead letter %s is still not a valid audit event; it stays dead-lettered: %s", d.DeadLetterID, he.Detail)
		}
		return err
	}
	ids := make([]string, len(res.results))
	for i, stored := range res.results {
		ids[i] = stored.EventID.String()
	}
	d, err = h.deadLetters.MarkDeadLetterReplayed(r.Context(), d.DeadLetterID, who)
	if errors.Is(err, store.ErrReplayed) {
		return web.Error(http.StatusConflict, fmt.Sprintf("dead letter %s was replayed by another request meanwhile", d.DeadLetterID), err)
	}
	if err != nil {
		return storeError(err)
	}
	h.recordReplay(r.Context(), d, ids, who)
	return web.WriteJSON(w, http.StatusOK, replayReply{DeadLetter: d, EventIDs: ids,
		Message: fmt.Sprintf("dead letter replayed: %d event(s) stored or already present", len(ids))})
}

// replayPayload is the payload of an auditstore.deadletter.replayed event.
type replayPayload struct {
	DeadLetterID uuid.UUID `json:"deadletter_id"`
	CEID         *string   `json:"ce_id"`
	CESource     *string   `json:"ce_source"`
	CEType       *string   `json:"ce_type"`
	// EventIDs are the event_ids the replayed CloudEvent mapped to.
	EventIDs []string `json:"event_ids"`
}

// recordReplay records a replay as an auditstore.deadletter.replayed audit event, so who
// brought which dead letter back is itself in the audit trail.
func (h *Handler) recordReplay(ctx context.Context, d store.DeadLetter, eventIDs []string, who string) {
	id := d.DeadLetterID.String()
	e, err := audit.NewEvent[replayPayload]("auditstore", "deadletter.replayed").
		WithCorrelationID(id).
		WithActor("user", who).
		WithResource("DeadLetter", id).
		WithPayload(replayPayload{DeadLetterID: d.DeadLetterID, CEID: d.CEID, CESource: d.CESource, CEType: d.CEType, EventIDs: eventIDs}).
		Prepare(audit.Defaults{Now: h.now(), Principal: who, RetentionClasses: h.classes, Hash: true}, h.limits)
	if err == nil {
		_, err = h.committer.submit(ctx, []audit.Event{e}, false)
	}
	if err != nil {
		slog.ErrorContext(ctx, "dead letter: record replay", "error", err, "deadletter_id", d.DeadLetterID)
	}
}
