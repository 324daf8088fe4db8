// Package maintain is the partition-maintenance function's HTTP API: a run (partitions ahead,
// retention, key pruning) on a schedule — a Knative PingSource delivers a CloudEvent to / — or
// on demand at POST /api/v1/maintenance/run, verification, retention policies and the
// legal-hold API. The work is shared/lifecycle's Service (which the jobs run too); every action
// and every hold placed or released is recorded there as an audit event.
package maintain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler serves the maintenance and legal-hold APIs over a lifecycle.Service, which does the
// work: the same service the jobs and the standalone process run.
type Handler struct {
	svc   *lifecycle.Service
	store *store.Store
	guard func(http.Handler) http.Handler
}

// New returns the Handler of svc, guarded by az (nil: auth.None) and registering the
// maintenance status (read from the database when scraped) with reg (nil: none).
func New(svc *lifecycle.Service, reg prometheus.Registerer, az auth.Authorizer, am *auth.Metrics) *Handler {
	if az == nil {
		az = auth.None{}
	}
	h := &Handler{svc: svc, store: svc.Store(), guard: auth.Middleware(az, auth.Admin, am)}
	if reg != nil {
		reg.MustRegister(newStatusCollector(svc))
	}
	return h
}

func (s *Handler) postVerify(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.svc.Keeper().Verify(r.Context())
	if err != nil {
		return storeError(err)
	}
	if !rep.OK {
		slog.Error("integrity verification found problems", "problems", rep.ProblemCount)
	}
	return web.WriteJSON(w, http.StatusOK, rep)
}

// Routes registers the maintenance and legal-hold APIs (auditstore's and kubernaut's) on mux.
func (s *Handler) Routes(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/maintenance/run", s.guard(web.Handle(s.postRun)))
	mux.Handle("POST /api/v1/maintenance/verify", s.guard(web.Handle(s.postVerify)))
	mux.Handle("POST /api/v1/audit/legal-holds", s.guard(web.Handle(s.placeHold)))
	mux.Handle("GET /api/v1/audit/legal-holds", s.guard(web.Handle(s.listHolds)))
	mux.Handle("DELETE /api/v1/audit/legal-holds/{id}", s.guard(web.Handle(s.releaseHold)))
	mux.Handle("POST /api/v1/audit/erasures", s.guard(web.Handle(s.erase)))
	s.correlationHoldRoutes(mux)
	mux.Handle("GET /api/v1/audit/retention-policies", s.guard(web.Handle(s.listPolicies)))
	mux.Handle("PUT /api/v1/audit/retention-policies/{category}", s.guard(web.Handle(s.setPolicy)))
	mux.Handle("DELETE /api/v1/audit/retention-policies/{category}", s.guard(web.Handle(s.deletePolicy)))
}

func (s *Handler) listPolicies(w http.ResponseWriter, r *http.Request) error {
	m, err := s.store.RetentionPolicies(r.Context())
	if err != nil {
		return storeError(err)
	}
	return web.WriteJSON(w, http.StatusOK, map[string]any{"data": m})
}

// setPolicy sets a category's default retention. Events already stored keep theirs: a policy
// applies to events written after it (within a write instance's 30 s policy refresh).
func (s *Handler) setPolicy(w http.ResponseWriter, r *http.Request) error {
	category := r.PathValue("category")
	var req struct {
		RetentionDays int `json:"retention_days"`
	}
	var errs []web.FieldError
	if category == "" || len(category) > 100 {
		errs = append(errs, web.FieldError{Field: "category", Message: "must be 1 to 100 characters"})
	}
	body, err := web.ReadJSON(w, r, 4096, 4)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.RetentionDays < audit.MinRetentionDays || req.RetentionDays > audit.MaxRetentionDays {
		errs = append(errs, web.FieldError{Field: "retention_days", Message: fmt.Sprintf(`is required: {"retention_days": N} with N from %d to %d`, audit.MinRetentionDays, audit.MaxRetentionDays)})
	}
	if len(errs) > 0 {
		return web.Invalid("the retention policy is invalid", errs)
	}
	p, _ := auth.PrincipalFrom(r.Context())
	if err := s.svc.SetPolicy(r.Context(), category, req.RetentionDays, p.Name); err != nil {
		return storeError(err)
	}
	return web.WriteJSON(w, http.StatusOK, map[string]any{"event_category": category, "retention_days": req.RetentionDays})
}

func (s *Handler) deletePolicy(w http.ResponseWriter, r *http.Request) error {
	category := r.PathValue("category")
	p, _ := auth.PrincipalFrom(r.Context())
	err := s.svc.DeletePolicy(r.Context(), category, p.Name)
	if errors.Is(err, store.ErrNotFound) {
		return web.Error(http.StatusNotFound, fmt.Sprintf("event_category %q has no retention policy", category), nil)
	}
	if err != nil {
		return storeError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ScheduleRoute registers POST /, where a Knative PingSource delivers its CloudEvent. Only the
// dedicated function has it: in the standalone process / belongs to the write function.
func (s *Handler) ScheduleRoute(mux *http.ServeMux) {
	mux.Handle("POST /{$}", s.guard(web.Handle(s.postRun)))
}

func (s *Handler) postRun(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.svc.Run(r.Context())
	switch {
	case errors.Is(err, store.ErrLocked) && isCloudEvent(r):
		// A schedule tick while a run is in progress: nothing to do, and nothing to retry.
		w.WriteHeader(http.StatusAccepted)
		return nil
	case err != nil && (rep.Started.IsZero() || errors.Is(err, store.ErrUnavailable)):
		// A database gone or read-only mid-run is retried by the next run, and by the caller.
		return storeError(err)
	case err != nil:
		slog.Error("maintenance run finished with errors", "error", err)
		return web.WriteJSON(w, http.StatusInternalServerError, struct {
			lifecycle.Report
			Error string `json:"error"`
		}{rep, "some steps failed; they are retried by the next run (details in the log)"})
	}
	if isCloudEvent(r) {
		w.WriteHeader(http.StatusAccepted) // a 2xx body would be routed on as a reply
		return nil
	}
	return web.WriteJSON(w, http.StatusOK, rep)
}

func isCloudEvent(r *http.Request) bool {
	return r.Header.Get("Ce-Specversion") != "" || strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents")
}

// holdRequest is the body of POST /api/v1/audit/legal-holds.
type holdRequest struct {
	CorrelationID *string         `json:"correlation_id"`
	Filter        json.RawMessage `json:"filter"`
	Since         *time.Time      `json:"since"`
	Until         *time.Time      `json:"until"`
	Reason        string          `json:"reason"`
}

func (s *Handler) placeHold(w http.ResponseWriter, r *http.Request) error {
	var req holdRequest
	// A filter holds event fields, event_data among them: its depth, and two levels above it.
	body, err := web.ReadJSON(w, r, 64<<10, audit.MaxDataDepth+2)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return web.Invalid("the legal hold is not valid JSON", []web.FieldError{{Field: "body", Message: "must be a JSON object with reason and correlation_id and/or filter: " + err.Error()}})
	}
	var errs []web.FieldError
	if strings.TrimSpace(req.Reason) == "" || len(req.Reason) > 1024 {
		errs = append(errs, web.FieldError{Field: "reason", Message: "is required (1 to 1024 characters)"})
	}
	if req.CorrelationID == nil && len(req.Filter) == 0 {
		errs = append(errs, web.FieldError{Field: "correlation_id", Message: "or filter is required: a hold must say what it covers"})
	}
	if req.CorrelationID != nil && (*req.CorrelationID == "" || len(*req.CorrelationID) > 255) {
		errs = append(errs, web.FieldError{Field: "correlation_id", Message: "must be 1 to 255 characters"})
	}
	if len(req.Filter) > 0 {
		var obj map[string]any
		if json.Unmarshal(req.Filter, &obj) != nil || obj == nil {
			errs = append(errs, web.FieldError{Field: "filter", Message: `must be a JSON object of event fields the held events contain, e.g. {"actor_id":"gateway"}`})
		}
	}
	if req.Since != nil && req.Until != nil && !req.Until.After(*req.Since) {
		errs = append(errs, web.FieldError{Field: "until", Message: "must be after since"})
	}
	if len(errs) > 0 {
		return web.Invalid("the legal hold is invalid", errs)
	}
	p, _ := auth.PrincipalFrom(r.Context())
	h, err := s.svc.PlaceHold(r.Context(), store.LegalHold{CorrelationID: req.CorrelationID, Filter: req.Filter,
		Since: req.Since, Until: req.Until, Reason: req.Reason, PlacedBy: p.Name})
	if err != nil {
		return storeError(err)
	}
	return web.WriteJSON(w, http.StatusCreated, h)
}

func (s *Handler) listHolds(w http.ResponseWriter, r *http.Request) error {
	q, err := web.Query(r)
	if err != nil {
		return err
	}
	all := q.Get("all") == "true"
	holds, err := s.store.ListHolds(r.Context(), all)
	if err != nil {
		return storeError(err)
	}
	return web.WriteJSON(w, http.StatusOK, map[string]any{"data": holds})
}

func (s *Handler) releaseHold(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return web.Invalid("the hold id is not a UUID", []web.FieldError{{Field: "id", Message: "must be a UUID"}})
	}
	var req struct {
		Reason string `json:"reason"`
	}
	body, err := web.ReadJSON(w, r, 64<<10, 4)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.Reason) == "" {
		return web.Invalid("a release needs a reason", []web.FieldError{{Field: "reason", Message: `is required: send {"reason": "..."}`}})
	}
	p, _ := auth.PrincipalFrom(r.Context())
	h, err := s.svc.ReleaseHold(r.Context(), id, p.Name, req.Reason)
	if errors.Is(err, store.ErrNotFound) {
		return web.Error(http.StatusNotFound, fmt.Sprintf("no active legal hold %s", id), nil)
	}
	if err != nil {
		return storeError(err)
	}
	return web.WriteJSON(w, http.StatusOK, h)
}

// storeError is web.StoreError in the maintain function's words.
func storeError(err error) error { return web.StoreError(err) }
