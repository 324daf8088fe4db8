// Package write is the write function: it decodes audit events sent as JSON (one event or a
// batch), validates every one before storing any, stores them idempotently and answers only
// after the transaction holding them has committed (CONTRACT "Write").
package write

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
)

// MaxBodyBytes is the largest request body accepted (5 MiB); a larger one is a 413.
const MaxBodyBytes = 5 << 20

// MaxBatch is the largest number of events in one batch.
const MaxBatch = 1000

// Config is the write function's configuration, read from the environment.
type Config struct {
	// MaxClockSkew is how far in the future an event_timestamp may lie.
	MaxClockSkew time.Duration `envconfig:"MAX_CLOCK_SKEW" default:"5m"`
	// MaxEventAge is how far in the past an event_timestamp may lie.
	MaxEventAge time.Duration `envconfig:"MAX_EVENT_AGE" default:"720h"`
	// RetentionClasses are the stored retention periods in days, ascending, ending with 2557.
	RetentionClasses string `envconfig:"RETENTION_CLASSES" default:"90,180,365,730,1095,1825,2557"`
}

// Store is what the write function needs of the store.
type Store interface {
	InsertEvents(ctx context.Context, p store.InsertParams) ([]store.InsertResult, bool, error)
}

// Handler serves the write API.
type Handler struct {
	store   Store
	limits  audit.Limits
	classes []int
	now     func() time.Time
}

// New checks cfg and returns a Handler over s.
func New(s Store, cfg Config) (*Handler, error) {
	classes, err := audit.ParseRetentionClasses(cfg.RetentionClasses)
	if err != nil {
		return nil, fmt.Errorf("RETENTION_CLASSES: %w", err)
	}
	if cfg.MaxClockSkew < 0 || cfg.MaxEventAge <= 0 {
		return nil, errors.New("MAX_CLOCK_SKEW must be >= 0 and MAX_EVENT_AGE > 0")
	}
	return &Handler{
		store:   s,
		limits:  audit.Limits{MaxClockSkew: cfg.MaxClockSkew, MaxEventAge: cfg.MaxEventAge},
		classes: classes,
		now:     time.Now,
	}, nil
}

// Routes registers the write API on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/audit/events", web.Handle(h.postEvents))
	mux.Handle("POST /api/v1/audit/events/batch", web.Handle(h.postBatch))
}

// principal is the authenticated caller. Until authentication is wired in, every caller is
// anonymous, as with AUTH_MODE=none.
func principal(*http.Request) string { return "anonymous" }

func (h *Handler) postEvents(w http.ResponseWriter, r *http.Request) error {
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	if first := firstByte(body); first == '[' {
		return h.storeBatch(w, r, body)
	}
	return h.storeOne(w, r, body)
}

func (h *Handler) postBatch(w http.ResponseWriter, r *http.Request) error {
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	return h.storeBatch(w, r, body)
}

// readJSONBody enforces Content-Type (415), size (413, reading no further) and UTF-8 (400).
func readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, web.Error(http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type %q is not supported; send application/json", r.Header.Get("Content-Type")), err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, web.Error(http.StatusRequestEntityTooLarge, "the request body is larger than 5 MiB", err)
		}
		return nil, web.Error(http.StatusBadRequest, "the request body could not be read", err)
	}
	if !utf8.Valid(body) {
		return nil, web.Invalid("the request body is not valid UTF-8", []web.FieldError{{Field: "body", Message: "is not valid UTF-8"}})
	}
	return body, nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// serverFields are set by the server; a client that sends one gets a 400.
var serverFields = map[string]bool{"received_at": true, "submitted_by": true, "event_hash": true, "hash_version": true}

// decodeInput decodes one event object strictly: unknown fields, wrong types and trailing data
// are field errors.
func decodeInput(raw []byte) (*audit.Input, []audit.FieldError) {
	var in audit.Input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the event object")
		}
	}
	if err == nil {
		return &in, nil
	}
	var typeErr *json.UnmarshalTypeError
	var synErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return nil, []audit.FieldError{{Field: "body", Message: "must be a JSON object (an audit event)"}}
		}
		return nil, []audit.FieldError{{Field: field, Message: "must be " + jsonTypeName(typeErr)}}
	case errors.As(err, &synErr):
		return nil, []audit.FieldError{{Field: "body", Message: fmt.Sprintf("is not valid JSON: %s at byte %d", synErr.Error(), synErr.Offset)}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if serverFields[field] {
			return nil, []audit.FieldError{{Field: field, Message: "is set by the server and may not be sent"}}
		}
		return nil, []audit.FieldError{{Field: field, Message: "is not a field of an audit event"}}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, []audit.FieldError{{Field: "body", Message: "is not valid JSON: unexpected end of input"}}
	}
	return nil, []audit.FieldError{{Field: "body", Message: "is not valid JSON: " + err.Error()}}
}

func jsonTypeName(e *json.UnmarshalTypeError) string {
	switch e.Type.String() {
	case "string", "*string":
		return "a string"
	case "int64", "*int64":
		return "an integer"
	case "bool", "*bool":
		return "true or false"
	case "json.RawMessage":
		return "a JSON object"
	}
	return "of type " + e.Type.String()
}

func (h *Handler) defaults(r *http.Request) audit.Defaults {
	return audit.Defaults{Now: h.now(), Principal: principal(r), RetentionClasses: h.classes}
}

func toWebErrors(errs []audit.FieldError) []web.FieldError {
	out := make([]web.FieldError, len(errs))
	for i, e := range errs {
		out[i] = web.FieldError{Index: e.Index, Field: e.Field, Message: e.Message}
	}
	return out
}

// eventReply is the body of a stored single event.
type eventReply struct {
	EventID        string    `json:"event_id"`
	EventTimestamp time.Time `json:"event_timestamp"`
	Duplicate      bool      `json:"duplicate"`
	Message        string    `json:"message"`
}

func (h *Handler) storeOne(w http.ResponseWriter, r *http.Request, body []byte) error {
	in, errs := decodeInput(body)
	if errs == nil {
		var e audit.Event
		if e, errs = in.Prepare(h.defaults(r), h.limits); errs == nil {
			res, _, err := h.store.InsertEvents(r.Context(), store.InsertParams{Events: []audit.Event{e}})
			if err != nil {
				return storeError(err)
			}
			switch res[0].Status {
			case store.Conflict:
				return web.Error(http.StatusConflict, fmt.Sprintf("event_id %s is already stored with other content", e.EventID), nil)
			case store.Duplicate:
				return web.WriteJSON(w, http.StatusOK, eventReply{e.EventID.String(), res[0].EventTimestamp, true, "event already stored; nothing new was stored"})
			}
			return web.WriteJSON(w, http.StatusCreated, eventReply{e.EventID.String(), res[0].EventTimestamp, false, "event stored"})
		}
	}
	return web.Invalid("the event is invalid", toWebErrors(errs))
}

// batchReply is the body of a stored batch.
type batchReply struct {
	EventIDs   []string `json:"event_ids"`
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Message    string   `json:"message"`
}

func (h *Handler) storeBatch(w http.ResponseWriter, r *http.Request, body []byte) error {
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return web.Invalid("the batch is not a JSON array of events", []web.FieldError{{Field: "body", Message: "must be a JSON array of 1 to 1000 event objects"}})
	}
	if len(raws) == 0 || len(raws) > MaxBatch {
		return web.Invalid(fmt.Sprintf("a batch holds 1 to %d events, not %d", MaxBatch, len(raws)),
			[]web.FieldError{{Field: "body", Message: fmt.Sprintf("holds %d events; 1 to %d are accepted", len(raws), MaxBatch)}})
	}
	d := h.defaults(r)
	events := make([]audit.Event, len(raws))
	var all []audit.FieldError
	for i, raw := range raws {
		in, errs := decodeInput(raw)
		if errs == nil {
			events[i], errs = in.Prepare(d, h.limits)
		}
		for _, e := range errs {
			e.Index = &i
			all = append(all, e)
		}
	}
	if len(all) > 0 {
		return web.Invalid(fmt.Sprintf("the batch has invalid events; nothing was stored"), toWebErrors(all))
	}
	var conflicts []web.FieldError
	res, _, err := h.store.InsertEvents(r.Context(), store.InsertParams{
		Events: events,
		Commit: func(results []store.InsertResult) bool {
			for i, x := range results {
				if x.Status == store.Conflict {
					conflicts = append(conflicts, web.FieldError{Index: &i, Field: "event_id",
						Message: fmt.Sprintf("%s is already stored with other content", x.EventID)})
				}
			}
			return len(conflicts) == 0
		},
	})
	if err != nil {
		return storeError(err)
	}
	if len(conflicts) > 0 {
		return &web.HTTPError{Status: http.StatusConflict, Detail: "the batch conflicts with stored events; nothing was stored", Errors: conflicts}
	}
	reply := batchReply{EventIDs: make([]string, len(res))}
	for i, x := range res {
		reply.EventIDs[i] = x.EventID.String()
		if x.Status == store.Inserted {
			reply.Accepted++
		} else {
			reply.Duplicates++
		}
	}
	status := http.StatusCreated
	reply.Message = fmt.Sprintf("%d events stored, %d duplicates", reply.Accepted, reply.Duplicates)
	if reply.Accepted == 0 {
		status = http.StatusOK
	}
	return web.WriteJSON(w, status, reply)
}

// storeError maps a store failure to a reply: unreachable database or a deadline is a 503 with
// Retry-After (brokers and clients retry), anything else a 500.
func storeError(err error) error {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return web.Unavailable("the database is unavailable; nothing was stored, retry later", 5*time.Second, err)
	}
	return err
}
