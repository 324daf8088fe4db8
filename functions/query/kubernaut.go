package query

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
)

// kubernaut's Data Storage verifies a correlation's hash chain and exports signed JSON. Here
// both answer from the Merkle log: an event is valid when its stored row recomputes to the
// hash sealed for it and its inclusion is proven in the latest signed checkpoint.

// MaxChainEvents bounds the events of one correlation verify-chain checks, and MaxExportEvents
// the events of one JSON export (kubernaut's limit).
const (
	MaxChainEvents  = 10000
	MaxExportEvents = 10000
)

// kubernautRoutes registers kubernaut's verify-chain; the JSON export shares the export route.
func (h *Handler) kubernautRoutes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/audit/verify-chain", h.guard(web.Handle(h.verifyChain)))
}

// tamperedEvent is one event verify-chain found changed.
type tamperedEvent struct {
	EventID        uuid.UUID `json:"event_id"`
	EventTimestamp time.Time `json:"event_timestamp"`
	ExpectedHash   string    `json:"expected_hash"`
	ActualHash     string    `json:"actual_hash"`
	PreviousHash   string    `json:"previous_hash"`
	Message        string    `json:"message"`
}

// chainReply is the body of POST /api/v1/audit/verify-chain.
type chainReply struct {
	CorrelationID  string          `json:"correlation_id"`
	IsValid        bool            `json:"is_valid"`
	TotalEvents    int             `json:"total_events"`
	VerifiedEvents int             `json:"verified_events"`
	TamperedEvents []tamperedEvent `json:"tampered_events,omitempty"`
	// UnsealedEvents counts the events awaiting their seal: not verified yet, not tampered.
	UnsealedEvents   int       `json:"unsealed_events"`
	VerificationTime time.Time `json:"verification_time"`
	Message          string    `json:"message"`
}

// hashText is an event's stored hash in hexadecimal ("" for none).
func hashText(e *audit.Event) string { return hex.EncodeToString(e.EventHash) }

func (h *Handler) verifyChain(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CorrelationID string `json:"correlation_id"`
	}
	body, err := web.ReadJSON(w, r, 64<<10, 4)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		msg := `must be one JSON object {"correlation_id": "..."}`
		if err != nil {
			msg += ": " + err.Error()
		}
		return web.Invalid("the body is not valid", []web.FieldError{{Field: "body", Message: msg}})
	}
	if n := utf8.RuneCountInString(req.CorrelationID); n == 0 || n > 255 {
		return web.Invalid("correlation_id is required", []web.FieldError{{Field: "correlation_id", Message: "is required (1 to 255 characters)"}})
	}
	f := store.Filter{CorrelationIDs: []string{req.CorrelationID}}
	readerScope(r, &f)
	events, err := h.collect(r.Context(), f, 0, MaxChainEvents+1)
	if err != nil {
		return storeError(err)
	}
	if len(events) > MaxChainEvents {
		return web.Error(http.StatusRequestEntityTooLarge, fmt.Sprintf("correlation_id %q has more than %d events; verify the whole store with POST /api/v1/maintenance/verify", req.CorrelationID, MaxChainEvents), nil)
	}
	checks, err := ledger.CheckEvents(r.Context(), h.log, h.keys, events)
	if err != nil {
		return storeError(err)
	}
	reply := chainReply{CorrelationID: req.CorrelationID, TotalEvents: len(events), VerificationTime: h.now().UTC()}
	for i := range events {
		e := &events[i]
		c := checks[e.EventID]
		switch c.State {
		case ledger.Verified:
			reply.VerifiedEvents++
		case ledger.Unsealed:
			reply.UnsealedEvents++
		case ledger.Tampered:
			t := tamperedEvent{EventID: e.EventID, EventTimestamp: e.EventTimestamp, ActualHash: c.Actual.String(), Message: c.Detail}
			if c.Sealed != (integrity.Hash{}) {
				t.ExpectedHash = c.Sealed.String()
			}
			if i > 0 {
				t.PreviousHash = hashText(&events[i-1])
			}
			reply.TamperedEvents = append(reply.TamperedEvents, t)
		}
	}
	reply.IsValid = len(reply.TamperedEvents) == 0
	switch {
	case len(events) == 0:
		reply.Message = "no events are stored for this correlation_id"
	case !reply.IsValid:
		reply.Message = fmt.Sprintf("%d of %d events were tampered with", len(reply.TamperedEvents), len(events))
	case reply.UnsealedEvents > 0:
		reply.Message = fmt.Sprintf("%d events verified; %d await their seal and are not verified yet", reply.VerifiedEvents, reply.UnsealedEvents)
	default:
		reply.Message = fmt.Sprintf("all %d events verified against the signed log", len(events))
	}
	h.reads.record(r, "verify_chain", len(events), nil)
	return web.WriteJSON(w, http.StatusOK, reply)
}

// errEnough stops a stream once it has what it needs.
var errEnough = errors.New("enough events")

// collect reads the events of f in timeline order, skipping offset and keeping at most limit.
// The rows stream, so a deep offset costs reading, never memory.
func (h *Handler) collect(ctx context.Context, f store.Filter, offset, limit int) ([]audit.Event, error) {
	var out []audit.Event
	skipped := 0
	_, err := h.store.StreamEvents(ctx, store.StreamParams{Filter: f, Order: store.Ascending, Timeout: h.cfg.ExportTimeout}, func(e *audit.Event) error {
		if skipped < offset {
			skipped++
			return nil
		}
		out = append(out, *e)
		if len(out) == limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return out, nil
}

// wantsJSONExport tells kubernaut's JSON export from auditstore's NDJSON and CSV: format=json,
// or no format and an Accept that names application/json (and not application/x-ndjson).
func wantsJSONExport(r *http.Request, q url.Values) bool {
	if q.Has("format") {
		return q.Get("format") == "json"
	}
	jsonAsked := false
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch mt {
		case "application/json":
			jsonAsked = true
		case "application/x-ndjson", "text/csv":
			return false
		}
	}
	return jsonAsked
}

// jsonExportParams are the parameters of kubernaut's export.
var jsonExportParams = []string{"format", "start_time", "end_time", "correlation_id", "event_category", "offset", "limit", "include_detached_signature", "redact_pii"}

// jsonExport is a parsed request of kubernaut's export.
type jsonExport struct {
	filter    store.Filter
	offset    int
	limit     int
	signed    bool
	redact    bool
	queryEcho map[string]any // export_metadata.query_filters
}

func parseJSONExport(v url.Values) (jsonExport, error) {
	x := jsonExport{limit: 1000, queryEcho: map[string]any{}}
	var errs []web.FieldError
	bad := func(param, format string, args ...any) {
		errs = append(errs, web.FieldError{Field: param, Message: fmt.Sprintf(format, args...)})
	}
	for name, vals := range v {
		if !slices.Contains(jsonExportParams, name) {
			bad(name, "is not a parameter of the JSON export; accepted: %s", strings.Join(jsonExportParams, ", "))
		} else if len(vals) > 1 {
			bad(name, "may be given once")
		}
	}
	timeParam := func(name string) *time.Time {
		s := v.Get(name)
		if s == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			bad(name, "%q is not an RFC 3339 time", s)
			return nil
		}
		x.queryEcho[name] = t.UTC().Format(time.RFC3339Nano)
		return &t
	}
	x.filter.Since = timeParam("start_time")
	if end := timeParam("end_time"); end != nil {
		// end_time is inclusive; stored times have microseconds.
		until := end.Truncate(time.Microsecond).Add(time.Microsecond)
		x.filter.Until = &until
	}
	for _, name := range []string{"correlation_id", "event_category"} {
		if s, ok := v[name]; ok {
			if n := utf8.RuneCountInString(s[0]); n == 0 || n > 255 {
				bad(name, "must be 1 to 255 characters")
			}
			x.queryEcho[name] = s[0]
		}
	}
	if s, ok := v["correlation_id"]; ok {
		x.filter.CorrelationIDs = s[:1]
	}
	if s, ok := v["event_category"]; ok {
		x.filter.EventCategories = s[:1]
	}
	if s := v.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			bad("offset", "%q is not a whole number of 0 or more", s)
		}
		x.offset = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil || n < 1:
			bad("limit", "%q is not a whole number from 1 to %d", s, MaxExportEvents)
		case n > MaxExportEvents && len(errs) == 0:
			return x, web.Error(http.StatusRequestEntityTooLarge, fmt.Sprintf("an export holds at most %d events; page through more with offset", MaxExportEvents), nil)
		}
		x.limit = n
	}
	for name, dst := range map[string]*bool{"include_detached_signature": &x.signed, "redact_pii": &x.redact} {
		if s := v.Get(name); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				bad(name, "%q is not true or false", s)
			}
			*dst = b
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b web.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return x, web.Invalid("the export has invalid parameters", errs)
	}
	x.queryEcho["offset"], x.queryEcho["limit"] = x.offset, x.limit
	return x, nil
}

// exportJSON answers kubernaut's export: the events of the window with their verdicts from the
// log, signed with the checkpoint key. The body is the RFC 8785 canonical form of the answer.
// export_metadata.signature is the Ed25519 signature of the canonical events array (the bytes
// of the body's events member); detached_signature, when asked for, that of the whole body
// without it. detached_signature sorts first, so the signed bytes are the body with the text
// `"detached_signature":"<value>",` removed after its opening brace.
func (h *Handler) exportJSON(w http.ResponseWriter, r *http.Request, q url.Values) error {
	x, err := parseJSONExport(q)
	if err != nil {
		return err
	}
	if x.signed && h.signer == nil {
		return web.Error(http.StatusNotImplemented, "include_detached_signature needs a signing key, and none is configured (INTEGRITY_SIGNING_KEY)", nil)
	}
	sens := newSensitiveReads(readerScope(r, &x.filter))
	events, err := h.collect(r.Context(), x.filter, x.offset, x.limit)
	if err != nil {
		return storeError(err)
	}
	checks, err := ledger.CheckEvents(r.Context(), h.log, h.keys, events)
	if err != nil {
		return storeError(err)
	}
	held, err := h.log.HeldEvents(r.Context(), events)
	if err != nil {
		return storeError(err)
	}
	var pseudonym func(v any) string
	if x.redact {
		pseudonym, err = newPseudonymizer()
		if err != nil {
			return err
		}
	}
	now := h.now().UTC().Format(time.RFC3339Nano)
	items := make([]any, len(events))
	previous := map[string]string{} // correlation_id → the event hash before, within the export
	valid, broken := 0, 0
	tamperedIDs := []any{}
	for i := range events {
		e := &events[i]
		c := checks[e.EventID] // of the stored event, before anything is withheld
		sens.reveal(e)
		item, err := exportItem(e, pseudonym)
		if err != nil {
			return err
		}
		switch c.State {
		case ledger.Verified:
			valid++
		case ledger.Tampered:
			broken++
			tamperedIDs = append(tamperedIDs, e.EventID.String())
		}
		item["hash_chain_valid"] = c.State == ledger.Verified
		item["legal_hold"] = held[e.EventID]
		item["previous_event_hash"] = previous[e.CorrelationID]
		previous[e.CorrelationID] = hashText(e)
		items[i] = item
	}
	eventsJSON, err := integrity.AppendCanonicalValue(nil, items)
	if err != nil {
		return err
	}
	p, _ := auth.PrincipalFrom(r.Context())
	meta := map[string]any{
		"export_timestamp": now, "export_format": "json", "query_filters": jsonValues(x.queryEcho),
		"total_events": jsonInt(len(events)), "signature": "", "exported_by": p.Name,
	}
	if h.signer != nil {
		sig, err := h.signer.SignJSON(eventsJSON)
		if err != nil {
			return err
		}
		meta["signature"] = base64.StdEncoding.EncodeToString(sig)
		meta["signature_algorithm"] = "Ed25519"
		meta["certificate_fingerprint"] = integrity.KeyID(h.signer.PublicKey())
	}
	percentage := 100.0
	if valid+broken > 0 {
		percentage = float64(valid) * 100 / float64(valid+broken)
	}
	verification := map[string]any{
		"total_events_verified": jsonInt(valid + broken), "valid_chain_events": jsonInt(valid),
		"broken_chain_events": jsonInt(broken), "unsealed_events": jsonInt(len(events) - valid - broken),
		"chain_integrity_percentage": percentage, "verification_timestamp": now, "tampered_event_ids": tamperedIDs,
	}
	rest, err := integrity.AppendCanonicalValue(nil, map[string]any{"export_metadata": meta, "hash_chain_verification": verification})
	if err != nil {
		return err
	}
	// The body: {"events":[...], then the members after it (export_metadata and
	// hash_chain_verification sort after events), the events array written once.
	body := make([]byte, 0, len(eventsJSON)+len(rest)+128)
	body = append(body, `{"events":`...)
	body = append(body, eventsJSON...)
	body = append(body, ',')
	body = append(body, rest[1:]...)
	if x.signed {
		sig, err := h.signer.SignJSON(body)
		if err != nil {
			return err
		}
		body = append([]byte(`{"detached_signature":"`+base64.StdEncoding.EncodeToString(sig)+`",`), body[1:]...)
	}
	h.reads.record(r, "export", len(events), sens)
	return writeBody(w, body)
}

// jsonInt is a count as a JSON number the canonical encoder takes.
func jsonInt(n int) json.Number { return json.Number(strconv.Itoa(n)) }

// jsonValues makes query_filters encodable canonically (ints as numbers).
func jsonValues(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if n, ok := v.(int); ok {
			v = jsonInt(n)
		}
		out[k] = v
	}
	return out
}

// exportItem is an event as the JSON export carries it: every field of the event as a query
// returns it, absent ones left out, with personal data replaced when pseudonym is set.
func exportItem(e *audit.Event, pseudonym func(any) string) (map[string]any, error) {
	var item map[string]any
	dec := json.NewDecoder(bytes.NewReader(e.AppendJSON(nil)))
	dec.UseNumber()
	if err := dec.Decode(&item); err != nil {
		return nil, fmt.Errorf("export event %s: %w", e.EventID, err)
	}
	for k, v := range item {
		if v == nil {
			delete(item, k)
		}
	}
	if pseudonym == nil {
		return item, nil
	}
	for _, k := range []string{"actor_id", "actor_ip"} {
		if v, ok := item[k]; ok {
			item[k] = pseudonym(v)
		}
	}
	data, _ := item["event_data"].(map[string]any)
	if _, isEnvelope := data["version"].(string); !isEnvelope {
		return item, nil
	}
	service, isEnvelope := data["service"].(string)
	if !isEnvelope {
		return item, nil
	}
	for _, path := range audit.PersonalData(service) {
		parent := data
		for _, name := range path[:len(path)-1] {
			parent, _ = parent[name].(map[string]any)
		}
		if v, ok := parent[path[len(path)-1]]; ok {
			parent[path[len(path)-1]] = pseudonym(v)
		}
	}
	return item, nil
}

// newPseudonymizer returns a keyed pseudonym for personal data: "pseudonym:" and the first 16
// hexadecimal digits of the HMAC-SHA256 of the value's canonical JSON under a key made for this
// one export. One value gets one pseudonym throughout the export, so one person's events still
// line up, and a pseudonym cannot be matched across exports or reversed.
func newPseudonymizer() (func(any) string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return func(v any) string {
		canonical, err := integrity.AppendCanonicalValue(nil, v)
		if err != nil {
			canonical = []byte(fmt.Sprint(v))
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(canonical)
		return "pseudonym:" + hex.EncodeToString(mac.Sum(nil)[:8])
	}, nil
}
