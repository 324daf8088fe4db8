package maintain

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/prometheus/client_golang/prometheus"
)

// statusWindow is how far back the status looks for runs: long enough for any schedule, short
// enough that partition pruning keeps the lookup to a few leaves.
const statusWindow = 40 * 24 * time.Hour

// statusCollector reports the maintenance state read from the database when Prometheus
// scrapes, not what this process happened to do: maintenance usually runs as a CronJob whose
// pod is gone by the next scrape, or in another instance, and a restarted process would
// otherwise report nothing (or zero) until its own next run. Answers are reused for
// statusTTL, so several scrapers cost one set of queries.
type statusCollector struct {
	svc *lifecycle.Service
	now func() time.Time

	monthsAhead, strayRows, lastSuccess, lastRun, pendingDeadLetters, up *prometheus.Desc
	// lastRunActions and lastRunDuration are of the latest run, whoever ran it (the CronJob's
	// own counters leave with its pod).
	lastRunActions, lastRunDuration *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

// statusTTL is how long one reading of the status is reused.
const statusTTL = 15 * time.Second

func newStatusCollector(svc *lifecycle.Service) *statusCollector {
	return &statusCollector{
		svc: svc,
		now: time.Now,
		monthsAhead: prometheus.NewDesc("audit_partitions_months_ahead",
			"Whole months after the current one that have a partition in every retention class (read from the catalog).", nil, nil),
		strayRows: prometheus.NewDesc("audit_partition_stray_rows",
			"Rows outside their proper partition, as the latest maintenance run found them (0 by construction: there is no default partition).", nil, nil),
		lastSuccess: prometheus.NewDesc("audit_maintenance_last_success_timestamp_seconds",
			"Unix time of the last maintenance run that finished without errors, by any runner (0: none in the last 40 days).", nil, nil),
		lastRun: prometheus.NewDesc("audit_maintenance_last_run_timestamp_seconds",
			"Unix time of the last maintenance run, successful or not (0: none in the last 40 days).", nil, nil),
		pendingDeadLetters: prometheus.NewDesc("audit_deadletters_pending",
			"Dead-lettered deliveries not replayed yet.", nil, nil),
		lastRunActions: prometheus.NewDesc("audit_maintenance_last_run_actions",
			"Actions (partitions made, archived, detached, dropped; keys expired) of the last maintenance run, by any runner.", nil, nil),
		lastRunDuration: prometheus.NewDesc("audit_maintenance_last_run_duration_seconds",
			"How long the last maintenance run took, by any runner.", nil, nil),
		up: prometheus.NewDesc("audit_maintenance_status_up",
			"1 when the maintenance status could be read from the database at the last scrape, else 0 (the other status metrics are then missing).", nil, nil),
	}
}

// Describe sends the descriptions of the status metrics.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.monthsAhead, c.strayRows, c.lastSuccess, c.lastRun, c.pendingDeadLetters, c.up, c.lastRunActions, c.lastRunDuration} {
		ch <- d
	}
}

// Collect sends the status, read anew when the last reading is older than statusTTL.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.metrics == nil || c.now().Sub(c.at) >= statusTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.metrics = c.read(ctx)
		cancel()
		c.at = c.now()
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *statusCollector) read(ctx context.Context) []prometheus.Metric {
	gauge := func(d *prometheus.Desc, v float64) prometheus.Metric {
		return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	var out []prometheus.Metric
	var errs []error
	now := c.now()

	if leaves, err := c.svc.Store().ListPartitions(ctx); err != nil {
		errs = append(errs, err)
	} else {
		var attached []lifecycle.Partition
		for _, l := range leaves {
			if !l.Detached && !l.DetachPending {
				attached = append(attached, lifecycle.Partition{Class: l.Class, Month: lifecycle.MonthOf(l.Month)})
			}
		}
		out = append(out, gauge(c.monthsAhead, float64(lifecycle.MonthsAhead(now, attached, c.svc.Classes()))))
	}

	since := now.Add(-statusWindow)
	latest := func(outcomes ...string) (*audit.Event, error) {
		page, err := c.svc.Store().QueryEvents(ctx, store.QueryParams{Order: store.Descending, Limit: 1,
			Filter: store.Filter{EventTypes: []string{lifecycle.RunEventType}, EventOutcomes: outcomes, Since: &since}})
		if err != nil || len(page.Events) == 0 {
			return nil, err
		}
		return &page.Events[0], nil
	}
	if last, err := latest(); err != nil {
		errs = append(errs, err)
	} else {
		ts := 0.0
		if last != nil {
			ts = float64(last.EventTimestamp.Unix())
			var data struct {
				Payload struct {
					StrayRows *int64    `json:"stray_rows"`
					Actions   *int64    `json:"actions"`
					Started   time.Time `json:"started"`
					Finished  time.Time `json:"finished"`
				} `json:"payload"`
			}
			pl := &data.Payload
			if json.Unmarshal(last.EventData, &data) == nil {
				if pl.StrayRows != nil {
					out = append(out, gauge(c.strayRows, float64(*pl.StrayRows)))
				}
				if pl.Actions != nil {
					out = append(out, gauge(c.lastRunActions, float64(*pl.Actions)))
				}
			}
			if !pl.Started.IsZero() && !pl.Finished.Before(pl.Started) {
				out = append(out, gauge(c.lastRunDuration, pl.Finished.Sub(pl.Started).Seconds()))
			}
		}
		out = append(out, gauge(c.lastRun, ts))
	}
	if ok, err := latest("success"); err != nil {
		errs = append(errs, err)
	} else {
		ts := 0.0
		if ok != nil {
			ts = float64(ok.EventTimestamp.Unix())
		}
		out = append(out, gauge(c.lastSuccess, ts))
	}
	if n, err := c.svc.DeadLetters().PendingDeadLetters(ctx); err != nil {
		errs = append(errs, err)
	} else {
		out = append(out, gauge(c.pendingDeadLetters, float64(n)))
	}

	up := 1.0
	if err := errors.Join(errs...); err != nil {
		up = 0
		slog.Warn("maintenance status: could not read it all from the database", "error", err)
	}
	return append(out, gauge(c.up, up))
}
