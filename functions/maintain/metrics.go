package maintain

import (
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	actions  *prometheus.CounterVec
	duration prometheus.Histogram
	failures prometheus.Counter
	archived prometheus.Counter

	sealed         prometheus.Counter
	sealLag        prometheus.Histogram
	sealFailures   prometheus.Counter
	treeSize       prometheus.Gauge
	verifyProblems prometheus.Gauge
	verifyFork     prometheus.Gauge
	verifyOK       prometheus.Gauge
	verifyFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_maintenance_actions_total",
			Help: "Maintenance actions, by kind (partition.created, partition.dropped, partition.cleared, partition.archived, partition.kept, keys.pruned)."}, []string{"kind"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "audit_maintenance_duration_seconds",
			Help: "Duration of maintenance runs.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_maintenance_failures_total",
			Help: "Maintenance runs that finished with errors."}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_archive_bytes_total",
			Help: "Bytes of archive files written (and verified) before partitions were dropped."}),
	}
	m.sealed = prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_integrity_sealed_events_total",
		Help: "Events appended to the integrity log."})
	m.sealLag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "audit_integrity_seal_lag_seconds",
		Help: "Time from an event's write to its seal.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)})
	m.sealFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_integrity_seal_failures_total",
		Help: "Seal rounds that failed (retried next round)."})
	m.treeSize = prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_integrity_tree_size",
		Help: "Leaves of the integrity log at its latest checkpoint."})
	m.verifyProblems = prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_integrity_verify_problems",
		Help: "Problems the last integrity verification found (0: the store matches its log)."})
	m.verifyFork = prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_integrity_verify_fork",
		Help: "1 when the last integrity verification found the log forked (acknowledged, sealed events lost, as after a failover: one of its problems, of kind fork), else 0."})
	m.verifyOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_integrity_last_verify_success_timestamp_seconds",
		Help: "Unix time of the last integrity verification that found no problem."})
	m.verifyFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "audit_integrity_verify_failures_total",
		Help: "Integrity verifications that found problems or could not run."})
	if reg != nil {
		reg.MustRegister(m.sealed, m.sealLag, m.sealFailures, m.treeSize, m.verifyProblems, m.verifyFork, m.verifyOK, m.verifyFailures)
		reg.MustRegister(m.actions, m.duration, m.failures, m.archived)
	}
	return m
}

func (m *metrics) observe(rep lifecycle.Report, err error, d time.Duration) {
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

func (m *metrics) observeSeal(rep ledger.SealReport, err error) {
	m.sealed.Add(float64(rep.Sealed))
	if rep.Latest != nil {
		m.treeSize.Set(float64(rep.Latest.TreeSize))
	}
	if err != nil {
		m.sealFailures.Inc()
	}
}

func (m *metrics) observeVerify(rep ledger.Report, err error) {
	if err != nil {
		m.verifyFailures.Inc()
		return
	}
	// A fork is reported once, so the alerts can tell it from tampering (the other problems).
	fork := 0.0
	if slices.ContainsFunc(rep.Problems, func(p ledger.Problem) bool { return p.Kind == ledger.ProblemFork }) {
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
