package ledger

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/backoff"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Keeper keeps the integrity log up: it seals new events on a schedule and verifies the store
// against the log, and exports what it found as the audit_integrity_* metrics the alerts
// watch. The maintain function, the standalone process and the jobs all run the same Keeper.
type Keeper struct {
	store   *store.Store
	sealer  *Sealer
	metrics *keeperMetrics

	interval time.Duration
	trusted  []integrity.PublicKey
	copies   CheckpointCopies
	now      func() time.Time
}

// CheckpointCopies keep every checkpoint outside the database and list them back for a
// verification (archive.Copies at CHECKPOINT_URL).
type CheckpointCopies interface {
	Copier
	List(ctx context.Context) ([]integrity.Checkpoint, error)
}

// NewKeeper returns a Keeper over s that seals every 10 seconds, unsigned, until Configure
// says otherwise, and registers its metrics with reg (nil: none).
func NewKeeper(s *store.Store, reg prometheus.Registerer) *Keeper {
	m := newKeeperMetrics(reg)
	return &Keeper{
		store:    s,
		metrics:  m,
		sealer:   &Sealer{Store: s, Observe: func(d time.Duration) { m.sealLag.Observe(d.Seconds()) }},
		interval: 10 * time.Second,
		now:      time.Now,
	}
}

// Configure applies the tamper-evidence configuration: the signing key, the trusted keys, the
// seal interval and batch, the standbys a seal waits for, and copies (nil: none; cfg's
// CheckpointURL opened by the caller, which owns it).
func (k *Keeper) Configure(cfg Config, copies CheckpointCopies) error {
	signer, trusted, err := cfg.Keys()
	if err != nil {
		return err
	}
	k.sealer.Signer, k.sealer.Limit, k.interval, k.trusted = signer, cfg.SealBatch, cfg.SealInterval, trusted
	k.sealer.Replicas = cfg.Replicas()
	if signer == nil {
		slog.Warn("INTEGRITY_SIGNING_KEY is not set: checkpoints are stored unsigned")
	}
	if copies != nil {
		k.copies, k.sealer.Copies = copies, copies
	}
	return nil
}

// SetClock replaces the clock verifications judge checkpoints by (tests simulate years).
func (k *Keeper) SetClock(now func() time.Time) { k.now = now }

// Seal appends every event written so far to the integrity log.
func (k *Keeper) Seal(ctx context.Context) (SealReport, error) {
	rep, err := k.sealer.SealAll(ctx)
	k.metrics.observeSeal(rep, err)
	return rep, err
}

// SealEvery seals every SEAL_INTERVAL until ctx ends: the bound between a write and its seal.
// While sealing fails (the database down or read-only after a failover) it waits longer
// between attempts, up to sealBackoffMax, and logs the first failure and then each time the
// wait doubled.
func (k *Keeper) SealEvery(ctx context.Context) {
	b := backoff.Backoff{Min: k.interval, Max: max(k.interval, sealBackoffMax)}
	for {
		wait := k.interval
		_, err := k.Seal(ctx)
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
func (k *Keeper) Verify(ctx context.Context) (Report, error) {
	opts := VerifyOptions{Keys: k.trusted, Now: k.now()}
	if k.copies != nil {
		ext, err := k.copies.List(ctx)
		if err != nil {
			return Report{}, err
		}
		opts.External = ext
	}
	rep, err := Verify(ctx, k.store, opts)
	k.metrics.observeVerify(rep, err)
	return rep, err
}

// firstVerifyAfter is when a process verifies first: soon, so the metrics the alerts watch
// are set after a start, and not at once, so a restart loop does not verify over and over.
const firstVerifyAfter = 10 * time.Minute

// VerifyEvery verifies the store against the integrity log every interval until ctx ends, the
// first time min(interval, 10 minutes) after the start. Problems are logged and set the
// audit_integrity_* metrics that the alerts watch.
func (k *Keeper) VerifyEvery(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTimer(min(interval, firstVerifyAfter))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(interval)
		}
		rep, err := k.Verify(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			slog.Error("integrity verification could not run", "error", err)
		case err == nil && !rep.OK:
			for i, p := range rep.Problems {
				if i == 20 {
					break
				}
				slog.Error("integrity problem", "kind", p.Kind, "detail", p.Detail)
			}
			slog.Error("integrity verification found problems", "problems", rep.ProblemCount, "events", rep.Events)
		case err == nil:
			slog.Info("integrity verified", "events", rep.Events, "leaves", rep.Leaves, "duration", rep.Duration)
		}
	}
}

// keeperMetrics are the audit_integrity_* metrics of the seals and verifications this process
// ran.
type keeperMetrics struct {
	sealed         prometheus.Counter
	sealLag        prometheus.Histogram
	sealFailures   prometheus.Counter
	treeSize       prometheus.Gauge
	verifyProblems prometheus.Gauge
	verifyFork     prometheus.Gauge
	verifyOK       prometheus.Gauge
	verifyFailures prometheus.Counter
}

func newKeeperMetrics(reg prometheus.Registerer) *keeperMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &keeperMetrics{
		sealed: counter("audit_integrity_sealed_events_total", "Events appended to the integrity log."),
		sealLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "audit_integrity_seal_lag_seconds",
			Help: "Time from an event's write to its seal.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}),
		sealFailures:   counter("audit_integrity_seal_failures_total", "Seal rounds that failed (retried next round)."),
		treeSize:       gauge("audit_integrity_tree_size", "Leaves of the integrity log at its latest checkpoint."),
		verifyProblems: gauge("audit_integrity_verify_problems", "Problems the last integrity verification found (0: the store matches its log)."),
		verifyFork: gauge("audit_integrity_verify_fork",
			"1 when the last integrity verification found the log forked (acknowledged, sealed events lost, as after a failover: one of its problems, of kind fork), else 0."),
		verifyOK:       gauge("audit_integrity_last_verify_success_timestamp_seconds", "Unix time of the last integrity verification that found no problem."),
		verifyFailures: counter("audit_integrity_verify_failures_total", "Integrity verifications that found problems or could not run."),
	}
	if reg != nil {
		reg.MustRegister(m.sealed, m.sealLag, m.sealFailures, m.treeSize, m.verifyProblems, m.verifyFork, m.verifyOK, m.verifyFailures)
	}
	return m
}

func (m *keeperMetrics) observeSeal(rep SealReport, err error) {
	m.sealed.Add(float64(rep.Sealed))
	if rep.Latest != nil {
		m.treeSize.Set(float64(rep.Latest.TreeSize))
	}
	if err != nil {
		m.sealFailures.Inc()
	}
}

func (m *keeperMetrics) observeVerify(rep Report, err error) {
	if err != nil {
		m.verifyFailures.Inc()
		return
	}
	// A fork is reported once, so the alerts can tell it from tampering (the other problems).
	fork := 0.0
	if slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Kind == ProblemFork }) {
		fork = 1
	}
	m.verifyFork.Set(fork)
	m.verifyProblems.Set(float64(rep.ProblemCount))
	if !rep.OK {
		m.verifyFailures.Inc()
		return
	}
	m.verifyOK.SetToCurrentTime()
}
