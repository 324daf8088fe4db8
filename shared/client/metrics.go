package client

import "github.com/prometheus/client_golang/prometheus"

var (
	emittedDesc = prometheus.NewDesc("auditstore_client_events_emitted_total",
		"Audit events taken by Emit.", nil, nil)
	sentDesc = prometheus.NewDesc("auditstore_client_events_sent_total",
		"Audit events acknowledged by the store (stored, or duplicates of stored ones).", nil, nil)
	retriedDesc = prometheus.NewDesc("auditstore_client_events_retried_total",
		"Audit events sent again after a failed attempt, once per attempt.", nil, nil)
	spooledDesc = prometheus.NewDesc("auditstore_client_events_spooled_total",
		"Audit events written to the on-disk spool.", nil, nil)
	droppedDesc = prometheus.NewDesc("auditstore_client_events_dropped_total",
		"Audit events given up: buffer_full, closed (emitted after Close), rejected (refused by the store), undelivered (Close's deadline passed without room in a spool).",
		[]string{"reason"}, nil)
	bufferedDesc = prometheus.NewDesc("auditstore_client_events_buffered",
		"Audit events in memory, not yet sent.", nil, nil)
	spoolBytesDesc = prometheus.NewDesc("auditstore_client_spool_bytes",
		"Bytes of audit events in the on-disk spool.", nil, nil)
)

// Describe implements prometheus.Collector.
func (e *Emitter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{emittedDesc, sentDesc, retriedDesc, spooledDesc, droppedDesc, bufferedDesc, spoolBytesDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Emitter) Collect(ch chan<- prometheus.Metric) {
	s := e.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(emittedDesc, s.Emitted)
	counter(sentDesc, s.Sent)
	counter(retriedDesc, s.Retried)
	counter(spooledDesc, s.Spooled)
	for _, r := range dropReasons {
		counter(droppedDesc, s.Dropped[r], r)
	}
	ch <- prometheus.MustNewConstMetric(bufferedDesc, prometheus.GaugeValue, float64(s.Buffered))
	ch <- prometheus.MustNewConstMetric(spoolBytesDesc, prometheus.GaugeValue, float64(s.SpoolBytes))
}
