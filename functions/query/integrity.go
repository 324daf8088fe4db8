package query

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
)

// NotSealedType is the problem type of a proof asked for an event that is stored but not yet
// in the integrity log.
const NotSealedType = "https://auditstore.dev/problems/not-sealed"

// MaxProofIDs bounds the events of one POST /api/v1/audit/integrity/proofs.
const MaxProofIDs = 1000

// WithIntegrity serves the tamper-evidence API from the log in st: proofs, checkpoints and the
// public keys that verify them.
func WithIntegrity(st *store.Store, keys []integrity.PublicKey) Option {
	return func(h *Handler) { h.log, h.keys = st, keys }
}

func (h *Handler) integrityRoutes(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/audit/events/{event_id}/proof", h.guard(web.Handle(h.proof)))
	mux.Handle("POST /api/v1/audit/integrity/proofs", h.guard(web.Handle(h.proofs)))
	mux.Handle("GET /api/v1/audit/integrity/checkpoints", h.guard(web.Handle(h.checkpoints)))
	mux.Handle("GET /api/v1/audit/integrity/public-key", h.guard(web.Handle(h.publicKey)))
	h.kubernautRoutes(mux)
}

func (h *Handler) proof(w http.ResponseWriter, r *http.Request) error {
	raw := r.PathValue("event_id")
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return web.Invalid("event_id is not a UUID", []web.FieldError{{Field: "event_id", Message: fmt.Sprintf("%q is not a UUID", raw)}})
	}
	// A proof holds hashes only, nothing a sensitive event withholds; but a reader of some
	// namespaces learns nothing of another's events, not even that they exist.
	e, err := h.visibleEvent(w, r, id)
	if err != nil && !(auth.ScopeFrom(r.Context()).Cluster && isNotFound(err)) {
		return err
	}
	_, proofs, err := ledger.Proofs(r.Context(), h.log, []uuid.UUID{id})
	if err != nil {
		return storeError(err)
	}
	if p, ok := proofs[id]; ok {
		if err := withMembers(r, &p, &e); err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, p)
	}
	if _, err := h.store.GetEvent(r.Context(), id); err != nil {
		return storeError(err, notFound(id))
	}
	return &web.HTTPError{Status: http.StatusNotFound, Type: NotSealedType,
		Detail: fmt.Sprintf("event %s is stored but not sealed yet: the sealer appends new events to the log every SEAL_INTERVAL; ask again shortly", id)}
}

// withMembers adds to p what recomputing e's hash needs beside e, for an event hashed with
// version 2: its members' salts and its erased members' digests. A reader to whom e is
// withheld gets none, as a salt and a digest would help guess a withheld value.
func withMembers(r *http.Request, p *ledger.Proof, e *audit.Event) error {
	if e.HashVersion != integrity.HashVersionMembers || (e.IsSensitive && !auth.ScopeFrom(r.Context()).Sensitive) {
		return nil
	}
	m, err := ledger.MemberProofOf(e)
	if err != nil {
		return err
	}
	p.Members, p.HashVersion = m, e.HashVersion
	return nil
}

// proofsRequest is the body of POST /api/v1/audit/integrity/proofs.
type proofsRequest struct {
	EventIDs []string `json:"event_ids"`
}

// proofsReply answers it: every asked id maps to its proof, or null when it is not sealed
// (or not stored).
type proofsReply struct {
	Checkpoint *integrity.Checkpoint    `json:"checkpoint"`
	Proofs     map[string]*ledger.Proof `json:"proofs"`
}

func (h *Handler) proofs(w http.ResponseWriter, r *http.Request) error {
	var req proofsRequest
	body, err := web.ReadJSON(w, r, 1<<20, 4)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return web.Invalid("the body must be a JSON object {\"event_ids\": [...]}", []web.FieldError{{Field: "body", Message: err.Error()}})
	}
	if len(req.EventIDs) == 0 || len(req.EventIDs) > MaxProofIDs {
		return web.Invalid("event_ids must hold 1 to 1000 ids", []web.FieldError{{Field: "event_ids", Message: fmt.Sprintf("holds %d ids; 1 to %d are accepted", len(req.EventIDs), MaxProofIDs)}})
	}
	ids := make([]uuid.UUID, len(req.EventIDs))
	var bad []web.FieldError
	for i, s := range req.EventIDs {
		id, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			bad = append(bad, web.FieldError{Field: "event_ids[" + strconv.Itoa(i) + "]", Message: fmt.Sprintf("%q is not a UUID", s)})
		}
		ids[i] = id
	}
	if len(bad) > 0 {
		return web.Invalid("event_ids holds values that are not UUIDs", bad)
	}
	cp, proofs, err := ledger.Proofs(r.Context(), h.log, ids)
	if err != nil {
		return storeError(err)
	}
	// Each event is read, as for one proof: a version 2 event's proof carries its members, and
	// an event outside the reader's namespaces has no proof, as if it were not stored. The hot
	// ones in one statement, at the keys their leaves record; the others one by one (cold).
	scope := auth.ScopeFrom(r.Context())
	keys := make([]store.EventKey, 0, len(proofs))
	for _, p := range proofs {
		keys = append(keys, p.Key)
	}
	hot, err := h.log.EventsAt(r.Context(), keys)
	if err != nil {
		return storeError(err)
	}
	read := make(map[uuid.UUID]bool, len(hot))
	for i := range hot {
		e := &hot[i]
		read[e.EventID] = true
		p := proofs[e.EventID]
		ok, err := visible(r.Context(), scope, e)
		switch {
		case err != nil:
			return web.Unavailable("authorization is unavailable; retry later", 5*time.Second, err)
		case !ok:
			delete(proofs, e.EventID)
			continue
		}
		if err := withMembers(r, &p, e); err != nil {
			return err
		}
		proofs[e.EventID] = p
	}
	for id, p := range proofs {
		if read[id] {
			continue
		}
		e, err := h.visibleEvent(w, r, id)
		if isNotFound(err) {
			if !scope.Cluster {
				delete(proofs, id)
			}
			continue // sealed, then expired: its proof is still the log's
		}
		if err != nil {
			return err
		}
		if err := withMembers(r, &p, &e); err != nil {
			return err
		}
		proofs[id] = p
	}
	reply := proofsReply{Proofs: make(map[string]*ledger.Proof, len(ids))}
	if cp.TreeSize > 0 || cp.Signed {
		reply.Checkpoint = &cp.Checkpoint
	}
	for _, id := range ids {
		if p, ok := proofs[id]; ok {
			reply.Proofs[id.String()] = &p
		} else {
			reply.Proofs[id.String()] = nil
		}
	}
	return web.WriteJSON(w, http.StatusOK, reply)
}

// checkpointsReply is the body of GET /api/v1/audit/integrity/checkpoints.
type checkpointsReply struct {
	Checkpoints []integrity.Checkpoint `json:"checkpoints"`
	// ConsistencyProof proves the first checkpoint's tree a prefix of the last one's
	// (RFC 9162 §2.1.4), when both first and second were asked for.
	ConsistencyProof []integrity.Hash `json:"consistency_proof,omitempty"`
}

// checkpoints lists signed checkpoints: from_size and limit page through them; first and
// second (tree sizes) return those two with the consistency proof between them.
func (h *Handler) checkpoints(w http.ResponseWriter, r *http.Request) error {
	q, err := web.Query(r)
	if err != nil {
		return err
	}
	num := func(name string, def uint64) (uint64, error) {
		s := q.Get(name)
		if s == "" {
			return def, nil
		}
		v, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			return 0, web.Invalid(name+" is not a tree size", []web.FieldError{{Field: name, Message: fmt.Sprintf("%q is not a non-negative integer", s)}})
		}
		return v, nil
	}
	for name := range q {
		switch name {
		case "from_size", "limit", "first", "second":
		default:
			return web.Invalid("unknown parameter "+name, []web.FieldError{{Field: name, Message: "is not a parameter of this endpoint; accepted: from_size, limit, first, second"}})
		}
	}
	first, err := num("first", 0)
	if err != nil {
		return err
	}
	second, err := num("second", 0)
	if err != nil {
		return err
	}
	if q.Has("first") || q.Has("second") {
		if !q.Has("first") || !q.Has("second") || first > second {
			return web.Invalid("first and second go together, first <= second", []web.FieldError{{Field: "first", Message: "needs second, and may not exceed it"}})
		}
		var pair []integrity.Checkpoint
		for _, size := range []uint64{first, second} {
			cps, err := h.log.Checkpoints(r.Context(), size, size, 1)
			if err != nil {
				return storeError(err)
			}
			if len(cps) == 0 {
				return web.Error(http.StatusNotFound, fmt.Sprintf("no checkpoint has tree size %d", size), nil)
			}
			pair = append(pair, cps[0].Checkpoint)
		}
		proof, err := ledger.ConsistencyProof(r.Context(), h.log, first, second)
		if err != nil {
			return storeError(err)
		}
		return web.WriteJSON(w, http.StatusOK, checkpointsReply{Checkpoints: pair, ConsistencyProof: proof})
	}
	from, err := num("from_size", 0)
	if err != nil {
		return err
	}
	limit, err := num("limit", 100)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 1000 {
		return web.Invalid("limit must be 1 to 1000", []web.FieldError{{Field: "limit", Message: "must be between 1 and 1000"}})
	}
	cps, err := h.log.Checkpoints(r.Context(), from, 1<<62, int(limit))
	if err != nil {
		return storeError(err)
	}
	out := checkpointsReply{Checkpoints: make([]integrity.Checkpoint, len(cps))}
	for i, c := range cps {
		out.Checkpoints[i] = c.Checkpoint
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

// publicKeyReply is the body of GET /api/v1/audit/integrity/public-key.
type publicKeyReply struct {
	Keys []publicKey `json:"keys"`
}

type publicKey struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	PublicKey string `json:"public_key"` // base64 of the 32 bytes
	PEM       string `json:"pem"`
}

func (h *Handler) publicKey(w http.ResponseWriter, r *http.Request) error {
	if len(h.keys) == 0 {
		return web.Error(http.StatusNotFound, "no checkpoint key is configured (INTEGRITY_SIGNING_KEY or INTEGRITY_PUBLIC_KEYS)", nil)
	}
	out := publicKeyReply{}
	for _, k := range h.keys {
		out.Keys = append(out.Keys, publicKey{KeyID: integrity.KeyID(k), Algorithm: "Ed25519",
			PublicKey: base64.StdEncoding.EncodeToString(k), PEM: integrity.MarshalPublicKey(k)})
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

// isNotFound reports whether err is the 404 of an event that is not stored.
func isNotFound(err error) bool {
	var he *web.HTTPError
	return errors.As(err, &he) && he.Status == http.StatusNotFound
}
