package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/deadletter"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Self is the principal maintenance records its own actions under (submitted_by).
const Self = "auditstore-maintenance"

// RunEventType is the audit event each maintenance run records about itself: outcome success
// or failure, and in its payload the months ahead, the stray rows and what it did.
const RunEventType = "auditstore.maintenance.run"

// Service is the maintenance service the maintain function, the standalone process and the
// jobs run: maintenance runs (sealing first, then the Runner), the integrity Keeper, retention
// policies and legal holds, each change recorded as an audit event.
type Service struct {
	store   *store.Store
	runner  *Runner
	keeper  *ledger.Keeper
	metrics *runMetrics

	// deadLetters count the pending dead letters: the store's, or the bucket's at
	// DEADLETTER_URL, where the write function keeps them.
	deadLetters DeadLetterCounter
}

// DeadLetterCounter counts the dead letters not replayed yet.
type DeadLetterCounter interface {
	PendingDeadLetters(ctx context.Context) (int64, error)
}

// NewService returns a Service over s that runs with cfg for classes, and registers its
// metrics (and its Keeper's) with reg (nil: none).
func NewService(s *store.Store, cfg Config, classes []int, reg prometheus.Registerer) *Service {
	runner := &Runner{Store: s, Config: cfg, Classes: classes, Now: time.Now}
	if cfg.ArchiveURL != "" {
		runner.Archiver = &archiver{url: cfg.ArchiveURL, store: s}
		// The cold tier is ARCHIVE_URL's whether or not HOT_MONTHS still moves months to it:
		// months moved before HOT_MONTHS was unset still expire, and their events are still
		// erased, rather than called not found.
		runner.Cold = &coldTier{url: cfg.ArchiveURL, store: s}
	}
	svc := &Service{store: s, runner: runner, keeper: ledger.NewKeeper(s, reg), metrics: newRunMetrics(reg), deadLetters: s}
	svc.keeper.SetClock(func() time.Time { return svc.runner.Now() })
	return svc
}

// ServiceConfig is the maintenance configuration every runner of it (function, job,
// standalone process) reads from the environment.
type ServiceConfig struct {
	// RetentionClasses are the stored retention periods in days, ascending, ending with 2557.
	RetentionClasses string `envconfig:"RETENTION_CLASSES" default:"90,180,365,730,1095,1825,2557"`
	// Lifecycle is a run's settings (partitions ahead, lock timeout, keys, archive).
	Lifecycle Config
	// Integrity is the tamper-evidence configuration of the Keeper.
	Integrity ledger.Config
	// DeadLetterURL is where the write function keeps dead letters (a gocloud.dev/blob URL);
	// set, audit_deadletters_pending counts those. Unset: the database's.
	DeadLetterURL string `envconfig:"DEADLETTER_URL"`
}

// Open checks cfg and returns a Service over a small pool of its own on databaseURL (a role
// with auditstore_maintainer), configured for integrity, and a function that closes what it
// opened.
func Open(ctx context.Context, databaseURL string, cfg ServiceConfig, reg prometheus.Registerer) (*Service, func(), error) {
	classes, err := audit.ParseRetentionClasses(cfg.RetentionClasses)
	if err != nil {
		return nil, nil, fmt.Errorf("RETENTION_CLASSES: %w", err)
	}
	if err := cfg.Lifecycle.Validate(); err != nil {
		return nil, nil, err
	}
	// A run pins one connection; the sealer, a verification (which streams for minutes) and the
	// HTTP API each need their own.
	s, err := store.Connect(ctx, databaseURL, store.PoolOptions{MaxConns: 4, Writes: true})
	if err != nil {
		return nil, nil, err
	}
	svc := NewService(s, cfg.Lifecycle, classes, reg)
	closeCopies, err := svc.UseIntegrity(ctx, cfg.Integrity)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	closeLetters := func() {}
	if cfg.DeadLetterURL != "" {
		b, err := deadletter.Open(ctx, cfg.DeadLetterURL)
		if err != nil {
			closeCopies()
			s.Close()
			return nil, nil, err
		}
		svc.deadLetters, closeLetters = b, func() { _ = b.Close() }
	}
	return svc, func() { closeLetters(); closeCopies(); s.Close() }, nil
}

// UseIntegrity applies the tamper-evidence configuration to the Keeper and opens the
// checkpoint copies at cfg.CheckpointURL. It returns a function that closes the copies'
// bucket.
func (s *Service) UseIntegrity(ctx context.Context, cfg ledger.Config) (func(), error) {
	if _, _, err := cfg.Keys(); err != nil {
		return nil, err
	}
	var copies ledger.CheckpointCopies
	closeCopies := func() {}
	if cfg.CheckpointURL != "" {
		c, err := archive.OpenCopies(ctx, cfg.CheckpointURL)
		if err != nil {
			return nil, err
		}
		copies, closeCopies = c, func() { c.Close() } //nolint:errcheck // nothing to do about it on the way out
	}
	if err := s.keeper.Configure(cfg, copies); err != nil {
		closeCopies()
		return nil, err
	}
	return closeCopies, nil
}

// Store is the store the service maintains, for what reads it beside the service (the
// maintain function's status and lists).
func (s *Service) Store() *store.Store { return s.store }

// Keeper is the service's integrity keeper: seals and verifications.
func (s *Service) Keeper() *ledger.Keeper { return s.keeper }

// Classes are the retention classes the service maintains.
func (s *Service) Classes() []int { return s.runner.Classes }

// Now is the clock of runs.
func (s *Service) Now() time.Time { return s.runner.Now() }

// DeadLetters counts the pending dead letters where the write function keeps them.
func (s *Service) DeadLetters() DeadLetterCounter { return s.deadLetters }

// SetClock replaces the clock of runs (tests simulate years with it).
func (s *Service) SetClock(now func() time.Time) { s.runner.Now = now }

// Ping reports whether the database answers and takes writes (store.ErrReadOnly: it answers,
// but maintenance and sealing cannot run).
func (s *Service) Ping(ctx context.Context) error { return s.store.PingWritable(ctx) }

// Run does one maintenance run under the maintenance lock, records its actions as audit events
// and updates the metrics. store.ErrLocked means another run is in progress.
func (s *Service) Run(ctx context.Context) (Report, error) {
	start := time.Now()
	m, err := s.store.BeginMaintenance(ctx)
	if err != nil {
		return Report{}, err
	}
	defer m.End()
	// A run seals first: a deployment with only the schedule still seals (within its period),
	// the keys it prunes are sealed, and the partitions it archives are wholly in the log.
	var serr error
	if !s.runner.Config.DryRun {
		if _, serr = s.keeper.Seal(ctx); serr != nil {
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

// SetPolicy sets a category's default retention and records it as done by principal. Events
// already stored keep theirs: a policy applies to events written after it (within a write
// instance's 30 s policy refresh).
func (s *Service) SetPolicy(ctx context.Context, category string, days int, principal string) error {
	if err := s.store.SetRetentionPolicy(ctx, category, days); err != nil {
		return err
	}
	s.recordPolicy(ctx, "auditstore.retention.policy_set", category, map[string]any{"event_category": category, "retention_days": days}, principal)
	return nil
}

// DeletePolicy deletes a category's retention policy (store.ErrNotFound: it had none) and
// records it as done by principal.
func (s *Service) DeletePolicy(ctx context.Context, category, principal string) error {
	if err := s.store.DeleteRetentionPolicy(ctx, category); err != nil {
		return err
	}
	s.recordPolicy(ctx, "auditstore.retention.policy_deleted", category, map[string]any{"event_category": category}, principal)
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

// PlaceHold places h (its PlacedBy the principal) and records it.
func (s *Service) PlaceHold(ctx context.Context, h store.LegalHold) (store.LegalHold, error) {
	placed, err := s.store.PlaceHold(ctx, h)
	if err != nil {
		return placed, err
	}
	s.recordHold(ctx, "auditstore.legalhold.placed", placed, h.PlacedBy)
	return placed, nil
}

// ReleaseHold releases the active hold id (store.ErrNotFound: there is none) for reason and
// records it as done by principal.
func (s *Service) ReleaseHold(ctx context.Context, id uuid.UUID, principal, reason string) (store.LegalHold, error) {
	h, err := s.store.ReleaseHold(ctx, id, principal, reason)
	if err != nil {
		return h, err
	}
	s.recordHold(ctx, "auditstore.legalhold.released", h, principal)
	return h, nil
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

// recordActions writes one audit event per action of a run, and one for the run itself
// (RunEventType: its outcome and state), which the maintenance status is read from.
func (s *Service) recordActions(ctx context.Context, rep Report, runErr error) {
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

// runEvent builds the RunEventType event of a run.
func (s *Service) runEvent(runID string, rep Report, runErr error) (audit.Event, error) {
	outcome := "success"
	payload := map[string]any{"months_ahead": rep.MonthsAhead, "stray_rows": rep.StrayRows, "actions": len(rep.Actions),
		"started": rep.Started, "finished": rep.Finished}
	if len(rep.Retry) > 0 {
		payload["retry"] = rep.Retry
	}
	if runErr != nil {
		outcome = "failure"
		msg := runErr.Error()
		if len(msg) > 2000 {
			msg = msg[:2000]
		}
		payload["error"] = msg
	}
	return s.eventOutcome(RunEventType, outcome, runID, "MaintenanceRun", runID, payload, Self)
}

// event builds an auditstore event of the maintenance service.
func (s *Service) event(eventType, correlationID, resourceType, resourceID string, payload map[string]any, principal string) (audit.Event, error) {
	return s.eventOutcome(eventType, "success", correlationID, resourceType, resourceID, payload, principal)
}

// Event builds an auditstore event of the maintenance service (success) for an action taken
// outside its runs, by principal: the maintain function's erasure records itself with it.
func (s *Service) Event(eventType, correlationID, resourceType, resourceID string, payload map[string]any, principal string) (audit.Event, error) {
	return s.event(eventType, correlationID, resourceType, resourceID, payload, principal)
}

// eventOutcome builds an auditstore event of the maintenance service with an outcome.
func (s *Service) eventOutcome(eventType, outcome, correlationID, resourceType, resourceID string, payload map[string]any, principal string) (audit.Event, error) {
	e, err := audit.NewEvent[map[string]any]("auditstore", strings.TrimPrefix(eventType, "auditstore.")).
		WithOutcome(outcome).
		WithCorrelationID(correlationID).
		WithActor("service", principal).
		WithResource(resourceType, resourceID).
		WithPayload(payload).
		Prepare(audit.Defaults{Now: time.Now(), Principal: principal, RetentionClasses: s.runner.Classes, Hash: true}, audit.DefaultLimits)
	if err != nil {
		return audit.Event{}, fmt.Errorf("invalid %s event: %w", eventType, err)
	}
	return e, nil
}

// runMetrics are the audit_maintenance_* metrics of the runs this process did.
type runMetrics struct {
	actions  *prometheus.CounterVec
	duration prometheus.Histogram
	failures prometheus.Counter
	archived prometheus.Counter
}

func newRunMetrics(reg prometheus.Registerer) *runMetrics {
	m := &runMetrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_maintenance_actions_total",
			Help: "Maintenance actions, by kind (partition.created, partition.dropped, partition.cleared, partition.archived, partition.kept, keys.pruned)."}, []string{"kind"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "audit_maintenance_duration_seconds",
			Help: "Duration of maintenance runs.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_maintenance_failures_total",
			Help: "Maintenance runs that finished with errors."}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_archive_bytes_total",
			Help: "Bytes of archive files written (and verified) before partitions were dropped."}),
	}
	if reg != nil {
		reg.MustRegister(m.actions, m.duration, m.failures, m.archived)
	}
	return m
}

func (m *runMetrics) observe(rep Report, err error, d time.Duration) {
	m.duration.Observe(d.Seconds())
	if rep.Started.IsZero() {
		m.failures.Inc()
		return
	}
	if rep.DryRun {
		return
	}
	for _, a := range rep.Actions {
		m.actions.WithLabelValues(a.Kind).Inc()
		m.archived.Add(float64(a.Bytes))
	}
	if err != nil {
		m.failures.Inc()
	}
}
