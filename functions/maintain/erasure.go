package maintain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/erasure"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
)

// ErasureHeldType is the problem type of an erasure refused for a legal hold.
const ErasureHeldType = "https://auditstore.dev/problems/erasure-held"

// ErasureRefusedType is the problem type of an erasure an event cannot take.
const ErasureRefusedType = "https://auditstore.dev/problems/erasure-refused"

// eraseRequest is the body of POST /api/v1/audit/erasures.
type eraseRequest struct {
	EventIDs []uuid.UUID `json:"event_ids"`
	Members  []string    `json:"members"`
	Reason   string      `json:"reason"`
}

// erase serves POST /api/v1/audit/erasures: shared/erasure decides and the store executes; the
// erasure's own event (auditstore.erasure.performed) is stored with it.
func (s *Handler) erase(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadJSON(w, r, 256<<10, 4)
	if err != nil {
		return err
	}
	var req eraseRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return web.Invalid("the erasure is not valid JSON", []web.FieldError{{Field: "body", Message: `must be {"event_ids": [...], "members": ["/actor_id", ...], "reason": "..."}: ` + err.Error()}})
	}
	p, _ := auth.PrincipalFrom(r.Context())
	mover, err := s.svc.ColdMover(r.Context())
	if err != nil {
		return err
	}
	res, err := erasure.Erase(r.Context(), s.store, erasure.Request{EventIDs: req.EventIDs, Members: req.Members, Reason: req.Reason, By: p.Name, Cold: mover,
		Record: func(payload map[string]any) (audit.Event, error) {
			id := fmt.Sprint(payload["erasure_id"])
			return s.svc.Event("auditstore.erasure.performed", id, "Erasure", id, payload, p.Name)
		}})
	var invalid *erasure.InvalidError
	var held *erasure.HeldError
	var refused *erasure.RefusedError
	switch {
	case errors.As(err, &invalid):
		return web.Invalid("the erasure is invalid", []web.FieldError{{Field: invalid.Field, Message: invalid.Detail}})
	case errors.As(err, &held):
		return &web.HTTPError{Status: http.StatusConflict, Type: ErasureHeldType, Detail: held.Error()}
	case errors.As(err, &refused):
		return &web.HTTPError{Status: http.StatusConflict, Type: ErasureRefusedType, Detail: refused.Error()}
	case errors.Is(err, store.ErrLocked):
		// An erasure that may rewrite cold files waits for the run that may be moving them.
		return &web.HTTPError{Status: http.StatusServiceUnavailable, RetryAfter: 30 * time.Second, Err: err,
			Detail: "a maintenance run is in progress; the erasure did nothing and can be sent again once it ends"}
	case errors.Is(err, store.ErrConflict):
		return &web.HTTPError{Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Err: err,
			Detail: "a cold file of these events changed while it was rewritten; the erasure did nothing and can be sent again"}
	case err != nil:
		return web.StoreError(err, web.Said{Status: http.StatusNotFound, Detail: "an event of event_ids is not stored"})
	}
	if res.Events == nil {
		res.Events = []store.ErasedEvent{}
	}
	return web.WriteJSON(w, http.StatusOK, res)
}
