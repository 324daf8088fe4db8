// Package maintain is the partition-maintenance function: a run (partitions ahead, retention,
// key pruning) on a schedule — a Knative PingSource delivers a CloudEvent to / — or on demand
// at POST /api/v1/maintenance/run, and the legal-hold API. Every action and every hold placed
// or released is itself recorded as an audit event.
package maintain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/backoff"
	"github.com/auditstore/auditstore/shared/deadletter"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Self is the principal maintenance records its own actions under (submitted_by).
const Self = "auditstore-maintenance"

// Service runs maintenance and serves the maintenance and legal-hold APIs.
type Service struct {
	pool    *pgxpool.Pool
	store   *store.Store
	runner  *lifecycle.Runner
	guard   func(http.Handler) http.Handler
	metrics *metrics

	sealer       *ledger.Sealer
	sealInterval time.Duration
	trusted      []integrity.PublicKey
	copies       *archive.Copies

	// deadLetters count the pending dead letters: the store's, or the bucket's at
	// DEADLETTER_URL, where the write function keeps them.
	deadLetters interface {
		PendingDeadLetters(ctx context.Context) (int64, error)
	}
}

// New returns a Service over pool.
func New(pool *pgxpool.Pool, cfg lifecycle.Config, classes []int, reg prometheus.Registerer, az auth.Authorizer, am *auth.Metrics) *Service {
	s := store.New(pool)
	if az == nil {
		az = auth.None{}
	}
	runner := &lifecycle.Runner{Store: s, Config: cfg, Classes: classes, Now: time.Now}
	if cfg.ArchiveURL != "" {
		runner.Archiver = &archiver{url: cfg.ArchiveURL, store: s}
	}
	m := newMetrics(reg)
	svc := &Service{
		pool:         pool,
		store:        s,
		runner:       runner,
		guard:        auth.Middleware(az, auth.Admin, am),
		metrics:      m,
		sealer:       &ledger.Sealer{Store: s, Observe: func(d time.Duration) { m.sealLag.Observe(d.Seconds()) }},
		sealInterval: 10 * time.Second,
		deadLetters:  s,
	}
	if reg != nil {
		reg.MustRegister(newStatusCollector(svc))
	}
	return svc
}

// UseIntegrity applies the tamper-evidence configuration: the signing key, the trusted keys,
// the seal interval and batch, and the checkpoint copies. It returns a function that closes
// the copies' bucket.
func (s *Service) UseIntegrity(ctx context.Context, cfg ledger.Config) (func(), error) {
	signer, trusted, err := cfg.Keys()
	if err != nil {
		return nil, err
	}
	s.sealer.Signer, s.sealer.Limit, s.sealInterval, s.trusted = signer, cfg.SealBatch, cfg.SealInterval, trusted
	s.sealer.Replicas = cfg.Replicas()
	if signer == nil {
		slog.Warn("INTEGRITY_SIGNING_KEY is not set: checkpoints are stored unsigned")
	}
	if cfg.CheckpointURL == "" {
		return func() {}, nil
	}
	copies, err := archive.OpenCopies(ctx, cfg.CheckpointURL)
	if err != nil {
		return nil, err
	}
	s.copies, s.sealer.Copies = copies, copies
	return func() { copies.Close() }, nil //nolint:errcheck // nothing to do about it on the way out
}

// Seal appends every event written so far to the integrity log.
func (s *Service) Seal(ctx context.Context) (ledger.SealReport, error) {
	rep, err := s.sealer.SealAll(ctx)
	s.metrics.observeSeal(rep, err)
	return rep, err
}

// SealEvery seals every SEAL_INTERVAL until ctx ends: the bound between a write and its seal.
// While sealing fails (the database down or read-only after a failover) it waits longer
// between attempts, up to sealBackoffMax, and logs the first failure and then each time the
// wait doubled.
func (s *Service) SealEvery(ctx context.Context) {
	b := backoff.Backoff{Min: s.sealInterval, Max: max(s.sealInterval, sealBackoffMax)}
	for {
		wait := s.sealInterval
		_, err := s.Seal(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			wait = b.Fail()
			if b.Loud() {
				slog.Error("seal", "error", err, "failures", b.Failures(), "retry_in", wait.Round(time.Second).String())
			}
		default:
			if n := b.Succeed(); n > 0 {
				slog.Info("sealing again", "failures", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// sealBackoffMax caps the wait between failed seals: a database back after an outage is
// sealing again within it.
const sealBackoffMax = 2 * time.Minute

// Verify checks the store against the integrity log (and the checkpoint copies, when
// configured) and updates the metrics.
func (s *Service) Verify(ctx context.Context) (ledger.Report, error) {
	opts := ledger.VerifyOptions{Keys: s.trusted, Now: s.runner.Now()}
	if s.copies != nil {
		ext, err := s.copies.List(ctx)
		if err != nil {
			return ledger.Report{}, err
		}
		opts.External = ext
	}
	rep, err := ledger.Verify(ctx, s.store, opts)
	s.metrics.observeVerify(rep, err)
	return rep, err
}

func (s *Service) postVerify(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.Verify(r.Context())
	if err != nil {
		return storeError(err)
	}
	if !rep.OK {
		slog.Error("integrity verification found problems", "problems", rep.ProblemCount)
	}
	return web.WriteJSON(w, http.StatusOK, rep)
}

// archiver archives partitions at ARCHIVE_URL for the runner. It opens the bucket on first use,
// so a bucket that cannot be opened fails a run (and keeps its partitions), not the process.
type archiver struct {
	url   string
	store *store.Store

	mu      sync.Mutex
	archive *archive.Archive
}

func (a *archiver) Archive(ctx context.Context, leaf store.LeafPartition) (lifecycle.Archived, error) {
	a.mu.Lock()
	if a.archive == nil {
		arch, err := archive.Open(ctx, a.url, archive.Options{})
		if err != nil {
			a.mu.Unlock()
			return lifecycle.Archived{}, fmt.Errorf("ARCHIVE_URL: %w", err)
		}
		a.archive = arch
	}
	arch := a.archive
	a.mu.Unlock()
	p := archive.Partition{Name: leaf.Name, Class: leaf.Class, Month: leaf.Month}
	r, err := arch.Ensure(ctx, p, a.store)
	if err != nil {
		return lifecycle.Archived{}, err
	}
	return lifecycle.Archived{Rows: r.Manifest.RowCount, Bytes: r.Manifest.Bytes(), LeafRows: r.LeafRows,
		Reused: r.Reused, Location: p.ManifestKey()}, nil
}

// SetClock replaces the clock of runs (tests simulate years with it).
func (s *Service) SetClock(now func() time.Time) { s.runner.Now = now }

// Routes registers the maintenance and legal-hold APIs (auditstore's and kubernaut's) on mux.
func (s *Service) Routes(mux *http.ServeMux) {
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

func (s *Service) listPolicies(w http.ResponseWriter, r *http.Request) error {
	m, err := s.store.RetentionPolicies(r.Context())
	if err != nil {
		return storeError(err)
	}
	return web.WriteJSON(w, http.StatusOK, map[string]any{"data": m})
}

// setPolicy sets a category's default retention. Events already stored keep theirs: a policy
// applies to events written after it (within a write instance's 30 s policy refresh).
func (s *Service) setPolicy(w http.ResponseWriter, r *http.Request) error {
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
	if err := s.store.SetRetentionPolicy(r.Context(), category, req.RetentionDays); err != nil {
		return storeError(err)
	}
	p, _ := auth.PrincipalFrom(r.Context())
	s.recordPolicy(r.Context(), "auditstore.retention.policy_set", category, map[string]any{"event_category": category, "retention_days": req.RetentionDays}, p.Name)
	return web.WriteJSON(w, http.StatusOK, map[string]any{"event_category": category, "retention_days": req.RetentionDays})
}

func (s *Service) deletePolicy(w http.ResponseWriter, r *http.Request) error {
	category := r.PathValue("category")
	err := s.store.DeleteRetentionPolicy(r.Context(), category)
	if errors.Is(err, store.ErrNotFound) {
		return web.Error(http.StatusNotFound, fmt.Sprintf("event_category %q has no retention policy", category), nil)
	}
	if err != nil {
		return storeError(err)
	}
	p, _ := auth.PrincipalFrom(r.Context())
	s.recordPolicy(r.Context(), "auditstore.retention.policy_deleted", category, map[string]any{"event_category": category}, p.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) recordPolicy(ctx context.Context, eventType, category string, payload map[string]any, principal string) {
	e, err := s.event(eventType, "retention-policy-"+category, "RetentionPolicy", category, payload, principal)
	if err == nil {
		_, _, err = s.store.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{e}})
	}
	if err != nil {
		slog.Error("retention policy: record event", "error", err, "category", category)
	}
}

// Run does one maintenance run under the maintenance lock, records its actions as audit events
// and updates the metrics. store.ErrLocked means another run is in progress.
func (s *Service) Run(ctx context.Context) (lifecycle.Report, error) {
	start := time.Now()
	m, err := store.BeginMaintenance(ctx, s.pool)
	if err != nil {
		return lifecycle.Report{}, err
	}
	defer m.End()
	// A run seals first: a deployment with only the schedule still seals (within its period),
	// the keys it prunes are sealed, and the partitions it archives are wholly in the log.
	var serr error
	if !s.runner.Config.DryRun {
		if _, serr = s.Seal(ctx); serr != nil {
			serr = fmt.Errorf("seal: %w", serr)
		}
	}
	rep, err := s.runner.Run(ctx, m)
	err = errors.Join(err, serr)
	s.metrics.observe(rep, err, time.Since(start))
	if !rep.DryRun {
		s.recordActions(ctx, rep, err)
	}
	return rep, err
}

// ScheduleRoute registers POST /, where a Knative PingSource delivers its CloudEvent. Only the
// dedicated function has it: in the standalone process / belongs to the write function.
func (s *Service) ScheduleRoute(mux *http.ServeMux) {
	mux.Handle("POST /{$}", s.guard(web.Handle(s.postRun)))
}

// Every runs maintenance every interval until ctx ends (the standalone process's schedule).
func (s *Service) Every(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Run(ctx); err != nil && !errors.Is(err, store.ErrLocked) {
			slog.Error("scheduled maintenance run", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) postRun(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.Run(r.Context())
	switch {
	case errors.Is(err, store.ErrLocked) && isCloudEvent(r):
		// A schedule tick while a run is in progress: nothing to do, and nothing to retry.
		w.WriteHeader(http.StatusAccepted)
		return nil
	case errors.Is(err, store.ErrLocked):
		return web.Error(http.StatusConflict, "another maintenance run is in progress; this one did nothing", err)
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

// recordActions writes one audit event per action of a run, and one for the run itself
// (RunEventType: its outcome and state), which the maintenance status is read from.
func (s *Service) recordActions(ctx context.Context, rep lifecycle.Report, runErr error) {
	runID := uuid.NewString()
	var events []audit.Event
	if e, err := s.runEvent(runID, rep, runErr); err == nil {
		events = append(events, e)
	} else {
		slog.Error("maintenance: record run", "error", err)
	}
	for _, a := range rep.Actions {
		payload := map[string]any{"rows": a.Rows, "detail": a.Detail}
		if a.Bytes > 0 {
			payload["bytes"] = a.Bytes
		}
		e, err := s.event("auditstore."+a.Kind, runID, "Partition", a.Partition, payload, Self)
		if err != nil {
			slog.Error("maintenance: record action", "error", err)
			continue
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return
	}
	if _, _, err := s.store.InsertEvents(ctx, store.InsertParams{Events: events}); err != nil {
		slog.Error("maintenance: record actions", "error", err)
	}
}

// event builds an auditstore event of the maintenance function.
func (s *Service) event(eventType, correlationID, resourceType, resourceID string, payload map[string]any, principal string) (audit.Event, error) {
	return s.eventOutcome(eventType, "success", correlationID, resourceType, resourceID, payload, principal)
}

// eventOutcome builds an auditstore event of the maintenance function with an outcome.
func (s *Service) eventOutcome(eventType, outcome, correlationID, resourceType, resourceID string, payload map[string]any, principal string) (audit.Event, error) {
	op := strings.TrimPrefix(eventType, "auditstore.")
	data, err := json.Marshal(map[string]any{"version": "1.0", "service": "auditstore", "operation": op, "status": outcome, "payload": payload})
	if err != nil {
		return audit.Event{}, err
	}
	str := func(v string) *string { return &v }
	in := audit.Input{EventType: str(eventType), EventOutcome: str(outcome), CorrelationID: str(correlationID),
		ActorType: str("service"), ActorID: str(principal), ResourceType: str(resourceType), EventData: data}
	if resourceID != "" {
		in.ResourceID = str(resourceID)
	}
	e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: principal, RetentionClasses: s.runner.Classes}, audit.DefaultLimits)
	if len(errs) > 0 {
		return audit.Event{}, fmt.Errorf("invalid %s event: %v", eventType, errs)
	}
	return e, ledger.Hash(&e)
}

// holdRequest is the body of POST /api/v1/audit/legal-holds.
type holdRequest struct {
	CorrelationID *string         `json:"correlation_id"`
	Filter        json.RawMessage `json:"filter"`
	Since         *time.Time      `json:"since"`
	Until         *time.Time      `json:"until"`
	Reason        string          `json:"reason"`
}

func (s *Service) placeHold(w http.ResponseWriter, r *http.Request) error {
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
	h, err := s.store.PlaceHold(r.Context(), store.LegalHold{CorrelationID: req.CorrelationID, Filter: req.Filter,
		Since: req.Since, Until: req.Until, Reason: req.Reason, PlacedBy: p.Name})
	if err != nil {
		return storeError(err)
	}
	s.recordHold(r.Context(), "auditstore.legalhold.placed", h, p.Name)
	return web.WriteJSON(w, http.StatusCreated, h)
}

func (s *Service) listHolds(w http.ResponseWriter, r *http.Request) error {
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

func (s *Service) releaseHold(w http.ResponseWriter, r *http.Request) error {
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
	h, err := s.store.ReleaseHold(r.Context(), id, p.Name, req.Reason)
	if errors.Is(err, store.ErrNotFound) {
		return web.Error(http.StatusNotFound, fmt.Sprintf("no active legal hold %s", id), nil)
	}
	if err != nil {
		return storeError(err)
	}
	s.recordHold(r.Context(), "auditstore.legalhold.released", h, p.Name)
	return web.WriteJSON(w, http.StatusOK, h)
}

func (s *Service) recordHold(ctx context.Context, eventType string, h store.LegalHold, principal string) {
	payload := map[string]any{"hold": h}
	e, err := s.event(eventType, h.HoldID.String(), "LegalHold", h.HoldID.String(), payload, principal)
	if err == nil {
		_, _, err = s.store.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{e}})
	}
	if err != nil {
		slog.Error("legal hold: record event", "error", err, "hold_id", h.HoldID)
	}
}

func storeError(err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		return web.Unavailable("the database is unavailable; retry later", 5*time.Second, err)
	}
	if errors.Is(err, store.ErrInvalid) {
		return web.Error(http.StatusBadRequest, "the database refused the value", err)
	}
	return err
}

// Config is the maintenance configuration every runner of it (function, job, standalone
// process) reads from the environment.
type Config struct {
	// RetentionClasses are the stored retention periods in days, ascending, ending with 2557.
	RetentionClasses string `envconfig:"RETENTION_CLASSES" default:"90,180,365,730,1095,1825,2557"`
	Lifecycle        lifecycle.Config
	Integrity        ledger.Config
	// DeadLetterURL is where the write function keeps dead letters (a gocloud.dev/blob URL);
	// set, audit_deadletters_pending counts those. Unset: the database's.
	DeadLetterURL string `envconfig:"DEADLETTER_URL"`
}

// Open checks cfg and returns a Service over a small pool of its own on databaseURL (a role
// with auditstore_maintainer), and a function that closes the pool.
func Open(ctx context.Context, databaseURL string, cfg Config, reg prometheus.Registerer, kit *auth.Kit) (*Service, func(), error) {
	classes, err := audit.ParseRetentionClasses(cfg.RetentionClasses)
	if err != nil {
		return nil, nil, fmt.Errorf("RETENTION_CLASSES: %w", err)
	}
	if err := cfg.Lifecycle.Validate(); err != nil {
		return nil, nil, err
	}
	// A run pins one connection; the sealer, a verification (which streams for minutes) and the
	// HTTP API each need their own.
	pool, err := store.Open(ctx, databaseURL, store.PoolOptions{MaxConns: 4, Writes: true})
	if err != nil {
		return nil, nil, err
	}
	var az auth.Authorizer
	var am *auth.Metrics
	if kit != nil {
		az, am = kit.Authorizer, kit.Metrics
	}
	svc := New(pool, cfg.Lifecycle, classes, reg, az, am)
	closeCopies, err := svc.UseIntegrity(ctx, cfg.Integrity)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	closeLetters := func() {}
	if cfg.DeadLetterURL != "" {
		b, err := deadletter.Open(ctx, cfg.DeadLetterURL)
		if err != nil {
			closeCopies()
			pool.Close()
			return nil, nil, err
		}
		svc.deadLetters, closeLetters = b, func() { _ = b.Close() }
	}
	return svc, func() { closeLetters(); closeCopies(); pool.Close() }, nil
}

// Ping reports whether the database answers and takes writes (store.ErrReadOnly: it answers,
// but maintenance and sealing cannot run).
func (s *Service) Ping(ctx context.Context) error { return s.store.PingWritable(ctx) }
