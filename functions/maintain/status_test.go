package maintain_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/deadletter"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/kelseyhightower/envconfig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// statusMetrics are the metrics the status collector reports.
var statusMetrics = map[string]bool{
	"audit_partitions_months_ahead": true, "audit_partition_stray_rows": true,
	"audit_maintenance_last_success_timestamp_seconds": true, "audit_maintenance_last_run_timestamp_seconds": true,
	"audit_deadletters_pending": true, "audit_maintenance_status_up": true,
	"audit_maintenance_last_run_actions": true, "audit_maintenance_last_run_duration_seconds": true,
}

// gauges scrapes the status from a fresh process's registry: a new Service, as a restarted
// maintain function (or one that never ran maintenance itself) would be.
func gauges(t *testing.T, svcFor func(reg prometheus.Registerer)) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	svcFor(reg)
	families, err := reg.Gather()
	require.NoError(t, err, "a status that cannot be read never fails the scrape")
	out := map[string]float64{}
	for _, mf := range families {
		if statusMetrics[mf.GetName()] {
			require.Len(t, mf.GetMetric(), 1)
			out[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return out
}

// The maintenance status comes from the database, so every process reports the same state
// whoever ran maintenance: the CronJob's pod is gone by the next scrape, and a restarted
// function would otherwise know nothing.
func TestStatus_FromTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	classes := []int{90, 180, 365, 730, 1095, 1825, 2557}
	fresh := func(reg prometheus.Registerer) { newService(pool, testConfig, classes, reg, nil, nil) }

	before := gauges(t, fresh)
	require.Equal(t, 1.0, before["audit_maintenance_status_up"])
	require.Equal(t, 0.0, before["audit_maintenance_last_success_timestamp_seconds"], "no run yet")
	require.Equal(t, 0.0, before["audit_maintenance_last_run_timestamp_seconds"])
	require.Equal(t, 3.0, before["audit_partitions_months_ahead"], "the migration makes this month and three ahead")
	require.Equal(t, 0.0, before["audit_deadletters_pending"])
	require.NotContains(t, before, "audit_partition_stray_rows", "unknown until a run has looked")
	require.NotContains(t, before, "audit_maintenance_last_run_actions")

	// A run by one process (a job: no registry at all)...
	job := newService(pool, testConfig, classes, nil, nil, nil)
	start := time.Now()
	_, err := job.Run(ctx)
	require.NoError(t, err)
	// ... is what another reports.
	after := gauges(t, fresh)
	require.InDelta(t, float64(start.Unix()), after["audit_maintenance_last_success_timestamp_seconds"], 60)
	require.Equal(t, after["audit_maintenance_last_success_timestamp_seconds"], after["audit_maintenance_last_run_timestamp_seconds"])
	require.Equal(t, 0.0, after["audit_partition_stray_rows"])
	require.Equal(t, 3.0, after["audit_partitions_months_ahead"])
	require.Contains(t, after, "audit_maintenance_last_run_actions", "what the job's run did, which its own counters took away with its pod")
	require.Contains(t, after, "audit_maintenance_last_run_duration_seconds")
	require.GreaterOrEqual(t, after["audit_maintenance_last_run_duration_seconds"], 0.0)

	// The run is an audit event in its own right.
	page, err := s.QueryEvents(ctx, store.QueryParams{Limit: 10, Filter: store.Filter{EventTypes: []string{lifecycle.RunEventType}}})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	run := page.Events[0]
	require.Equal(t, "success", run.EventOutcome)
	require.Equal(t, lifecycle.Self, run.SubmittedBy)
	var data struct {
		Payload map[string]any `json:"payload"`
	}
	require.NoError(t, json.Unmarshal(run.EventData, &data))
	require.EqualValues(t, 3, data.Payload["months_ahead"])

	// A failed run later: the last run moves, the last success does not.
	failed := audittest.Event(t, &audittest.EventOpts{EventType: lifecycle.RunEventType, EventOutcome: "failure",
		EventTimestamp: time.Now().Add(time.Minute), EventData: json.RawMessage(`{"payload":{"stray_rows":2}}`)})
	require.NoError(t, ledger.Hash(&failed))
	_, _, err = s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{failed}})
	require.NoError(t, err)
	_, err = s.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker", Body: []byte("?")})
	require.NoError(t, err)
	later := gauges(t, fresh)
	require.Equal(t, after["audit_maintenance_last_success_timestamp_seconds"], later["audit_maintenance_last_success_timestamp_seconds"])
	require.Greater(t, later["audit_maintenance_last_run_timestamp_seconds"], later["audit_maintenance_last_success_timestamp_seconds"])
	require.Equal(t, 2.0, later["audit_partition_stray_rows"], "as the latest run found them")
	require.Equal(t, 1.0, later["audit_deadletters_pending"])
}

// Without a database the status says so (up 0) instead of reporting stale or zero values, and
// the scrape still succeeds.
func TestStatus_DatabaseDown(t *testing.T) {
	t.Parallel()
	down := gauges(t, func(reg prometheus.Registerer) {
		var cfg lifecycle.ServiceConfig
		require.NoError(t, envconfig.Process("status_test", &cfg)) // the defaults
		svc, closeDB, err := open(context.Background(), "postgres://auditstore@127.0.0.1:1/none?connect_timeout=1", cfg, reg)
		require.NoError(t, err)
		require.NotNil(t, svc)
		t.Cleanup(closeDB)
	})
	require.Equal(t, map[string]float64{"audit_maintenance_status_up": 0}, down)
}

// With DEADLETTER_URL, the pending dead letters are those of the bucket the write function
// keeps them in, not the database's.
func TestStatus_DeadLettersInABucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := "file://" + t.TempDir()
	q, err := deadletter.Open(ctx, dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	var ids []uuid.UUID
	for range 3 {
		d, err := q.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker", Body: []byte("?")})
		require.NoError(t, err)
		ids = append(ids, d.DeadLetterID)
	}
	_, err = q.MarkDeadLetterReplayed(ctx, ids[0], "admin")
	require.NoError(t, err)

	dbURL := pgtest.NewDatabase(t, pgtest.Options{})
	got := gauges(t, func(reg prometheus.Registerer) {
		var cfg lifecycle.ServiceConfig
		require.NoError(t, envconfig.Process("status_test", &cfg)) // the defaults
		cfg.DeadLetterURL = dir
		_, closeDB, err := open(ctx, dbURL, cfg, reg)
		require.NoError(t, err)
		t.Cleanup(closeDB)
	})
	require.Equal(t, 2.0, got["audit_deadletters_pending"])
}
