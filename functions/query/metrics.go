package query

import (
	"time"

	"github.com/auditstore/auditstore/shared/store"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the query function's Prometheus metrics.
type metrics struct {
	duration *prometheus.HistogramVec
	rows     *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "audit_query_duration_seconds",
			Help:    "Time to answer a query, by kind: timeline (a correlation_id), json (data or data_path), filter, export.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind"}),
		rows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "audit_query_rows",
			Help:    "Events returned by one query, by kind.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.duration, m.rows)
	}
	return m
}

func (m *metrics) observe(kind string, start time.Time, rows int) {
	m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	m.rows.WithLabelValues(kind).Observe(float64(rows))
}

// kindOf labels a query by what dominates its cost.
func kindOf(f *store.Filter) string {
	switch {
	case len(f.CorrelationIDs) > 0:
		return "timeline"
	case len(f.Data) > 0 || f.DataPath != "":
		return "json"
	}
	return "filter"
}
