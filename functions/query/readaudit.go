package query

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/backoff"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Inserter stores events; *store.Store is one.
type Inserter interface {
	InsertEvents(ctx context.Context, p store.InsertParams) ([]store.InsertResult, bool, error)
}

// ReadRecorder writes an auditstore.query.executed event for every read, in batches from a
// goroutine of its own, so the query path only pays for a channel send. When the buffer is full
// (the database is down for long) reads are still answered and the lost records counted in
// audit_read_records_dropped_total and logged: refusing reads would not bring the database back.
type ReadRecorder struct {
	store    Inserter
	ch       chan audit.Event
	classes  []int
	self     string
	dropped  prometheus.Counter
	done     chan struct{}
	stopOnce sync.Once
}

// NewReadRecorder starts a recorder that writes through s as principal self (submitted_by).
func NewReadRecorder(s Inserter, self string, reg prometheus.Registerer) *ReadRecorder {
	r := &ReadRecorder{
		store: s, ch: make(chan audit.Event, 10000), classes: audit.DefaultRetentionClasses, self: self,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "audit_read_records_dropped_total",
			Help: "Read-audit records (auditstore.query.executed) lost because the buffer was full.",
		}),
		done: make(chan struct{}),
	}
	if reg != nil {
		reg.MustRegister(r.dropped)
	}
	go r.run()
	return r
}

// Close writes what is buffered and stops the recorder.
func (r *ReadRecorder) Close() {
	r.stopOnce.Do(func() { close(r.ch) })
	<-r.done
}

// readPayload is the payload of an auditstore.query.executed event.
type readPayload struct {
	Principal string              `json:"principal"`
	Kind      string              `json:"kind"`
	Path      string              `json:"path"`
	Filters   map[string][]string `json:"filters"`
	Rows      int                 `json:"rows"`
	// SensitiveEventIDs name the sensitive events read whole (of an export, a record names at
	// most readAuditChunk; more records follow).
	SensitiveEventIDs []string `json:"sensitive_event_ids,omitempty"`
	// Withheld counts the sensitive events read with their sensitive members withheld.
	Withheld int `json:"withheld,omitempty"`
}

// record writes the record of one read; sens (nil: none) names the sensitive events it read.
func (r *ReadRecorder) record(req *http.Request, kind string, rows int, sens *sensitiveReads) {
	if r == nil {
		return
	}
	var sensitive []string
	withheld := 0
	if sens != nil {
		sensitive = make([]string, len(sens.ids))
		for i, id := range sens.ids {
			sensitive[i] = id.String()
		}
		withheld, sens.withheld = sens.withheld, 0
	}
	p, _ := auth.PrincipalFrom(req.Context())
	filters := map[string][]string{}
	q, err := web.Query(req)
	if err != nil {
		// Handlers refuse such a query before reading: a read is never recorded without the
		// filters it was asked with.
		q = url.Values{"unparsed_query": {req.URL.RawQuery[:min(len(req.URL.RawQuery), 1024)]}}
	}
	for k, v := range q {
		if k != "cursor" { // opaque and long; the filters say what was read
			filters[k] = slices.Clone(v)
		}
	}
	e, err := audit.NewEvent[readPayload]("auditstore", "query.executed").
		WithCorrelationID(uuid.NewString()).
		WithActor("user", cmpOr(p.Name, "anonymous")).
		WithResource("auditevents", "").
		WithPayload(readPayload{Principal: p.Name, Kind: kind, Path: req.URL.Path, Filters: filters, Rows: rows,
			SensitiveEventIDs: sensitive, Withheld: withheld}).
		Prepare(audit.Defaults{Now: time.Now(), Principal: r.self, RetentionClasses: r.classes, Hash: true}, audit.DefaultLimits)
	if err != nil {
		slog.Error("read audit: record", "error", err)
		return
	}
	select {
	case r.ch <- e:
	default:
		r.dropped.Inc()
		slog.Error("read audit: buffer full, record dropped", "principal", p.Name, "kind", kind)
	}
}

func (r *ReadRecorder) run() {
	defer close(r.done)
	var batch []audit.Event
	// flush keeps a batch the database refused and tries again, so an outage loses nothing
	// until the buffer fills; when closing it gives up after a few attempts. While the database
	// is down or read-only the attempts are spaced out (up to a minute apart), and the records
	// arriving meanwhile join the batch, up to the buffer's size.
	retry := backoff.Backoff{Min: time.Second, Max: time.Minute}
	flush := func(closing bool) {
		for attempt := 1; len(batch) > 0; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, _, err := r.store.InsertEvents(ctx, store.InsertParams{Events: batch})
			cancel()
			if err == nil {
				if n := retry.Succeed(); n > 0 {
					slog.Info("read audit: stored again", "failures", n, "records", len(batch))
				}
				batch = batch[:0]
				return
			}
			wait := retry.Fail()
			if retry.Loud() {
				slog.Error("read audit: store", "error", err, "records", len(batch), "failures", retry.Failures(), "retry_in", wait.Round(time.Second).String())
			}
			if closing && attempt >= 3 {
				r.dropped.Add(float64(len(batch)))
				batch = batch[:0]
				return
			}
			if closing {
				time.Sleep(min(wait, time.Second))
				continue
			}
			// Wait, taking in what arrives meanwhile so the buffer does not fill behind the wait.
			deadline := time.After(wait)
		wait:
			for len(batch) < cap(r.ch) {
				select {
				case e, ok := <-r.ch:
					if !ok {
						closing = true
						break wait
					}
					batch = append(batch, e)
				case <-deadline:
					break wait
				}
			}
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-r.ch:
			if !ok {
				flush(true)
				return
			}
			batch = append(batch, e)
			if len(batch) >= 500 {
				flush(false)
			}
		case <-tick.C:
			flush(false)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
