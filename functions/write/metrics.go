package write

import (
	"regexp"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// serviceLabel is what an envelope's service must look like to become a label value: a short
// lower-case name (gateway, aianalysis). Anything else, an e-mail address or a
// system:serviceaccount: name among them, is counted as "other", so no caller-chosen identity
// or free text becomes a label value.
var serviceLabel = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// maxLabelSets bounds the (service, operation) label pairs of audit_events_total: events of
// pairs beyond it are counted under service and operation "other", so a client inventing event
// types cannot grow the metric without bound.
const maxLabelSets = 500

// metrics are the write function's Prometheus metrics.
type metrics struct {
	events    *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	batchSize prometheus.Histogram
	rejected  *prometheus.CounterVec
	// held is how long requests over the rate limit were held before they went on.
	held prometheus.Histogram
	// deadLetters counts deliveries the broker dead-lettered and the sink stored.
	deadLetters *prometheus.CounterVec

	// byShape caches duration's observer of each shape: WithLabelValues hashes its labels
	// on every call.
	byShape map[shape]prometheus.Observer

	mu   sync.Mutex
	seen map[[2]string]bool
	// counters caches the counter of each admitted (service, operation, outcome).
	counters map[[3]string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_events_total",
			Help: "Audit events newly stored, by service (event_data.service of the envelope, else other), operation (event_type) and outcome.",
		}, []string{"service", "operation", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "audit_write_duration_seconds",
			Help:    "Time from receiving a write request to answering it, by input shape.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"shape"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "audit_write_batch_size",
			Help:    "Events per committed transaction (group commit).",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_write_rejected_total",
			Help: "Write requests refused, by reason.",
		}, []string{"reason"}),
		held: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "audit_write_rate_limit_wait_seconds",
			Help:    "Time write requests over the rate limit were held until their principal's budget admitted them (RATE_LIMIT_MAX_WAIT at most).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 1.5, 2, 3, 5, 10, 30, 60},
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_deadletters_total",
			Help: "Dead-lettered deliveries stored by the dead-letter sink, by the HTTP status of the last failed attempt (knativeerrorcode; none when absent).",
		}, []string{"error_code"}),
		seen:     map[[2]string]bool{},
		counters: map[[3]string]prometheus.Counter{},
		byShape:  map[shape]prometheus.Observer{},
	}
	for _, sh := range []shape{shapeJSON, shapeBatch, shapeHeaders, shapeCE, shapeNotification} {
		m.byShape[sh] = m.duration.WithLabelValues(string(sh))
	}
	if reg != nil {
		reg.MustRegister(m.events, m.duration, m.batchSize, m.rejected, m.held, m.deadLetters)
	}
	return m
}

// stored counts one newly stored event under bounded labels. service is the envelope's
// service ("" when event_data is no envelope); never the actor or the principal, which are
// identities a caller chooses (e-mail addresses, user names).
func (m *metrics) stored(service, eventType, outcome string) {
	m.mu.Lock()
	// The cache holds admitted service names only, so a hit needs no pattern match (the
	// regular expression was the larger part of counting an event of a batch).
	c, ok := m.counters[[3]string{service, eventType, outcome}]
	if !ok && !serviceLabel.MatchString(service) {
		service = "other"
		c, ok = m.counters[[3]string{service, eventType, outcome}]
	}
	if !ok {
		// Kept by the maps and the metric: copies, not views of the request body that would
		// keep it (up to 5 MiB) in memory for good.
		service, eventType, outcome = strings.Clone(service), strings.Clone(eventType), strings.Clone(outcome)
		key := [2]string{service, eventType}
		if !m.seen[key] {
			if len(m.seen) >= maxLabelSets {
				key = [2]string{"other", "other"}
			} else {
				m.seen[key] = true
			}
		}
		c = m.events.WithLabelValues(key[0], key[1], outcome)
		// Cached only under admitted labels (outcome is one of a few, checked before), so
		// the cache stays as bounded as the metric.
		if key[0] != "other" || key[1] != "other" {
			m.counters[[3]string{service, eventType, outcome}] = c
		}
	}
	m.mu.Unlock()
	c.Inc()
}

// observeDuration records how long a request of a shape took.
func (m *metrics) observeDuration(sh shape, seconds float64) {
	if o, ok := m.byShape[sh]; ok {
		o.Observe(seconds)
		return
	}
	m.duration.WithLabelValues(string(sh)).Observe(seconds)
}
