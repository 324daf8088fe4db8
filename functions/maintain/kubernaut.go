package maintain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
)

// kubernaut's Data Storage places legal holds by correlation id. Here they are auditstore's own
// legal holds (one hold, two APIs): a hold placed at /api/v1/audit/legal-hold is listed at
// /api/v1/audit/legal-holds and the other way round, the delete guard honours it whichever API
// placed it, and placing and releasing are recorded as the same audit events. Who placed or
// released a hold is the authenticated principal; kubernaut's X-User-ID header is ignored.

// correlationHoldRoutes registers kubernaut's legal-hold routes on mux.
func (s *Handler) correlationHoldRoutes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/audit/legal-hold", s.guard(web.Handle(s.placeCorrelationHold)))
	mux.Handle("GET /api/v1/audit/legal-hold", s.guard(web.Handle(s.listCorrelationHolds)))
	mux.Handle("DELETE /api/v1/audit/legal-hold/{correlation_id}", s.guard(web.Handle(s.releaseCorrelationHold)))
}

// correlationHold is a hold in kubernaut's shape: every event of one correlation.
type correlationHold struct {
	CorrelationID  string    `json:"correlation_id"`
	EventsAffected int64     `json:"events_affected"`
	PlacedBy       string    `json:"placed_by"`
	PlacedAt       time.Time `json:"placed_at"`
	Reason         string    `json:"reason"`
}

// correlationHoldList is the body of GET /api/v1/audit/legal-hold.
type correlationHoldList struct {
	Holds []correlationHold `json:"holds"`
	Total int               `json:"total"`
}

// correlationRelease is the body of DELETE /api/v1/audit/legal-hold/{correlation_id}.
type correlationRelease struct {
	CorrelationID  string    `json:"correlation_id"`
	EventsReleased int64     `json:"events_released"`
	ReleasedBy     string    `json:"released_by"`
	ReleasedAt     time.Time `json:"released_at"`
}

// decodeStrict reads a small JSON object into v, refusing unknown members and anything after it.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any, shape string) error {
	body, err := web.ReadJSON(w, r, 64<<10, 4)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = fmt.Errorf("data after the object")
	}
	if err != nil {
		return web.Invalid("the body is not valid", []web.FieldError{{Field: "body", Message: "must be a JSON object " + shape + ": " + err.Error()}})
	}
	return nil
}

// wholeCorrelation reports whether a hold covers exactly the events of its correlation (the
// only holds kubernaut's shape can express), and which correlation.
func wholeCorrelation(h store.LegalHold) (string, bool) {
	if h.CorrelationID == nil || len(h.Filter) > 0 || h.Since != nil || h.Until != nil {
		return "", false
	}
	return *h.CorrelationID, true
}

// activeCorrelationHolds returns the active holds that cover the whole correlation id.
func (s *Handler) activeCorrelationHolds(ctx context.Context, correlationID string) ([]store.LegalHold, error) {
	holds, err := s.store.ListHolds(ctx, false)
	if err != nil {
		return nil, err
	}
	var out []store.LegalHold
	for _, h := range holds {
		if id, ok := wholeCorrelation(h); ok && id == correlationID {
			out = append(out, h)
		}
	}
	return out, nil
}

func (s *Handler) correlationEvents(ctx context.Context, correlationID string) (int64, error) {
	return s.store.CountEvents(ctx, store.Filter{CorrelationIDs: []string{correlationID}})
}

// placeCorrelationHold holds every event of a correlation, now and to come. A correlation that
// is already held answers its hold and places no second one.
func (s *Handler) placeCorrelationHold(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CorrelationID string `json:"correlation_id"`
		Reason        string `json:"reason"`
	}
	if err := decodeStrict(w, r, &req, `{"correlation_id": "...", "reason": "..."}`); err != nil {
		return err
	}
	var errs []web.FieldError
	if req.CorrelationID == "" || len(req.CorrelationID) > 255 {
		errs = append(errs, web.FieldError{Field: "correlation_id", Message: "is required (1 to 255 characters)"})
	}
	if strings.TrimSpace(req.Reason) == "" || len(req.Reason) > 1024 {
		errs = append(errs, web.FieldError{Field: "reason", Message: "is required (1 to 1024 characters)"})
	}
	if len(errs) > 0 {
		return web.Invalid("the legal hold is invalid", errs)
	}
	n, err := s.correlationEvents(r.Context(), req.CorrelationID)
	if err != nil {
		return storeError(err)
	}
	if n == 0 {
		return web.Error(http.StatusNotFound, fmt.Sprintf("correlation_id %q has no events", req.CorrelationID), nil)
	}
	held, err := s.activeCorrelationHolds(r.Context(), req.CorrelationID)
	if err != nil {
		return storeError(err)
	}
	var h store.LegalHold
	if len(held) > 0 {
		h = held[0]
	} else {
		p, _ := auth.PrincipalFrom(r.Context())
		h, err = s.svc.PlaceHold(r.Context(), store.LegalHold{CorrelationID: &req.CorrelationID, Reason: req.Reason, PlacedBy: p.Name})
		if err != nil {
			return storeError(err)
		}
	}
	return web.WriteJSON(w, http.StatusOK, correlationHold{CorrelationID: req.CorrelationID, EventsAffected: n,
		PlacedBy: h.PlacedBy, PlacedAt: h.PlacedAt.UTC(), Reason: h.Reason})
}

// listCorrelationHolds lists the active holds of whole correlations, with how many events each
// holds now. Holds by filter or time range are listed only by auditstore's own API.
func (s *Handler) listCorrelationHolds(w http.ResponseWriter, r *http.Request) error {
	holds, err := s.store.ListHolds(r.Context(), false)
	if err != nil {
		return storeError(err)
	}
	out := correlationHoldList{Holds: []correlationHold{}}
	for _, h := range holds {
		id, ok := wholeCorrelation(h)
		if !ok {
			continue
		}
		n, err := s.correlationEvents(r.Context(), id)
		if err != nil {
			return storeError(err)
		}
		out.Holds = append(out.Holds, correlationHold{CorrelationID: id, EventsAffected: n, PlacedBy: h.PlacedBy,
			PlacedAt: h.PlacedAt.UTC(), Reason: h.Reason})
	}
	out.Total = len(out.Holds)
	return web.WriteJSON(w, http.StatusOK, out)
}

// releaseCorrelationHold releases every active hold of the whole correlation; holds by filter
// or time range that also cover some of its events stay.
func (s *Handler) releaseCorrelationHold(w http.ResponseWriter, r *http.Request) error {
	correlationID := r.PathValue("correlation_id")
	var req struct {
		ReleaseReason string `json:"release_reason"`
	}
	if err := decodeStrict(w, r, &req, `{"release_reason": "..."}`); err != nil {
		return err
	}
	if strings.TrimSpace(req.ReleaseReason) == "" || len(req.ReleaseReason) > 1024 {
		return web.Invalid("a release needs a reason", []web.FieldError{{Field: "release_reason", Message: "is required (1 to 1024 characters)"}})
	}
	held, err := s.activeCorrelationHolds(r.Context(), correlationID)
	if err != nil {
		return storeError(err)
	}
	if len(held) == 0 {
		return web.Error(http.StatusNotFound, fmt.Sprintf("correlation_id %q has no active legal hold", correlationID), nil)
	}
	p, _ := auth.PrincipalFrom(r.Context())
	out := correlationRelease{CorrelationID: correlationID, ReleasedBy: p.Name}
	for _, h := range held {
		rel, err := s.svc.ReleaseHold(r.Context(), h.HoldID, p.Name, req.ReleaseReason)
		if err != nil {
			return storeError(err)
		}
		out.ReleasedAt = rel.ReleasedAt.UTC()
	}
	if out.EventsReleased, err = s.correlationEvents(r.Context(), correlationID); err != nil {
		return storeError(err)
	}
	return web.WriteJSON(w, http.StatusOK, out)
}
