package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/store"
	"github.com/prometheus/client_golang/prometheus"
)

// A streaming replica (QUERY_DATABASE_URL) takes reads off the primary. It holds what the
// primary committed up to its replay position, nothing else, and events never change: what it
// answers is true, only possibly not the newest. So reads go there while its lag is within
// QUERY_MAX_REPLICA_LAG and the answer says how stale it may be (X-Replica-Lag), and a read
// that must see every acknowledged write goes there only once it has replayed the primary's
// current position. The integrity log and the records of reads stay on the primary.

// ReplicaLagHeader is the response header of an answer read from the replica: an upper bound,
// in seconds, of how far behind the primary the replica was when it answered (0: it held every
// write acknowledged before the request).
const ReplicaLagHeader = "X-Replica-Lag"

// lagInterval is how often the replica's lag is measured.
const lagInterval = time.Second

// ReplicaStore is what the query function needs of a replica: the reads, and its replay
// position. *store.Store is one.
type ReplicaStore interface {
	Store
	ReplayPosition(ctx context.Context) (store.Replay, error)
}

// WALPositioner tells the primary's WAL position. *store.Store is one.
type WALPositioner interface {
	WALPosition(ctx context.Context) (store.LSN, error)
}

// WithReplica reads from replica, a streaming replica of primary (the database of the Store
// given to New), where it can: the comment at the top of this file says which reads go where.
func WithReplica(replica ReplicaStore, primary WALPositioner) Option {
	return func(h *Handler) { h.replica = &replicaDB{store: replica, primary: primary} }
}

// replicaDB is the replica of a Handler and what is known of its lag.
type replicaDB struct {
	store   ReplicaStore
	primary WALPositioner
	maxLag  time.Duration
	wait    time.Duration

	lagGauge, upGauge prometheus.Gauge
	reads             *prometheus.CounterVec

	mu       sync.Mutex
	up       bool          // it answered the last measurement (or read)
	known    bool          // lag is known (a bound could be set)
	lag      time.Duration // at measured
	measured time.Time
	samples  []walSample // the primary's WAL positions at the last measurements, oldest first

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// walSample is the primary's WAL position at a time: a standby that has replayed pos holds
// every write acknowledged before at.
type walSample struct {
	at  time.Time
	pos store.LSN
}

// maxSamples bounds the history of WAL positions: minutes at lagInterval.
const maxSamples = 256

func (rp *replicaDB) start(cfg Config, reg prometheus.Registerer) {
	rp.maxLag, rp.wait = cfg.MaxReplicaLag, cfg.ReplicaWait
	rp.lagGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_query_replica_lag_seconds",
		Help: "How far the query replica's replay is behind the primary (an upper bound; +Inf when unknown), measured every second."})
	rp.upGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_query_replica_up",
		Help: "1 while the query replica answers; 0 while reads go to the primary because it does not."})
	rp.reads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "audit_query_reads_total",
		Help: "Reads answered, by the database that answered them: replica or primary."}, []string{"database"})
	rp.lagGauge.Set(math.Inf(1)) // unknown until measured
	if reg != nil {
		reg.MustRegister(rp.lagGauge, rp.upGauge, rp.reads)
	}
	rp.stop, rp.done = make(chan struct{}), make(chan struct{})
	go rp.run()
}

func (rp *replicaDB) close() {
	rp.closeOnce.Do(func() { close(rp.stop) })
	<-rp.done
}

func (rp *replicaDB) run() {
	defer close(rp.done)
	tick := time.NewTicker(lagInterval)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), lagInterval)
		rp.measure(ctx)
		cancel()
		select {
		case <-rp.stop:
			return
		case <-tick.C:
		}
	}
}

// measure reads the primary's WAL position, then the replica's replay position, and bounds the
// lag from above by the least of: 0 when the replica has replayed the position just read; the
// age of the last commit it replayed (what it has not replayed committed later); the age of
// the latest earlier position it has replayed. The last one keeps an idle primary from looking
// like lag: its WAL moves without commits (a checkpoint, a standby snapshot) while the last
// commit ages.
func (rp *replicaDB) measure(ctx context.Context) {
	begin := time.Now()
	pos, perr := rp.primary.WALPosition(ctx)
	rep, rerr := rp.store.ReplayPosition(ctx)
	end := time.Now()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if perr == nil {
		rp.samples = append(rp.samples, walSample{at: begin, pos: pos})
		if len(rp.samples) > maxSamples {
			rp.samples = rp.samples[len(rp.samples)-maxSamples:]
		}
	}
	if rerr != nil {
		rp.up, rp.known = false, false
		rp.upGauge.Set(0)
		return
	}
	rp.up, rp.measured = true, end
	rp.upGauge.Set(1)
	rp.known, rp.lag = true, 0
	switch {
	case !rep.Standby, perr == nil && rep.Replayed >= pos:
	default:
		rp.known = false
		if rep.Committed {
			rp.known, rp.lag = true, rep.SinceCommit
		}
		for i := len(rp.samples) - 1; i >= 0; i-- {
			if s := rp.samples[i]; s.pos <= rep.Replayed {
				if age := end.Sub(s.at); !rp.known || age < rp.lag {
					rp.known, rp.lag = true, age
				}
				break
			}
		}
	}
	if rp.known {
		rp.lagGauge.Set(rp.lag.Seconds())
	} else {
		rp.lagGauge.Set(math.Inf(1))
	}
}

// down marks the replica unreachable after a read it failed, until the next measurement.
func (rp *replicaDB) down() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.up = false
	rp.upGauge.Set(0)
}

// bound is the replica's lag now, at most: the measured lag plus the time since, as what it
// had not replayed then has aged since. ok is false when the replica is down or its lag unknown.
func (rp *replicaDB) bound() (lag time.Duration, within, ok bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if !rp.up || !rp.known {
		return 0, false, false
	}
	return rp.lag + time.Since(rp.measured), rp.lag <= rp.maxLag, true
}

// caughtUp waits up to QUERY_REPLICA_WAIT for the replica to replay what the primary had
// written when it was called, and says whether it did.
func (rp *replicaDB) caughtUp(ctx context.Context) bool {
	pos, err := rp.primary.WALPosition(ctx)
	if err != nil {
		return false
	}
	deadline := time.Now().Add(rp.wait)
	for pause := time.Millisecond; ; pause = min(2*pause, 10*time.Millisecond) {
		rep, err := rp.store.ReplayPosition(ctx)
		if err != nil {
			rp.down()
			return false
		}
		if !rep.Standby || rep.Replayed >= pos {
			return true
		}
		if time.Now().Add(pause).After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
	}
}

// source is the database a read is sent to.
type source struct {
	store   Store
	replica bool
	lag     time.Duration // of the replica, at most
}

// sources are the databases a read tries, in order: the replica when it may answer (for a
// fresh read, one that must see every acknowledged write: once it has caught up), then the
// primary; or the primary, then the replica when it answers at all (saying how stale it is).
func (h *Handler) sources(ctx context.Context, fresh bool) []source {
	primary := source{store: h.store}
	rp := h.replica
	if rp == nil {
		return []source{primary}
	}
	lag, within, ok := rp.bound()
	if !ok {
		return []source{primary}
	}
	replica := source{store: rp.store, replica: true, lag: lag}
	if fresh && rp.caughtUp(ctx) {
		replica.lag = 0
		return []source{replica, primary}
	}
	if !fresh && within {
		return []source{replica, primary}
	}
	return []source{primary, replica}
}

// recentWindow is how close to now a query's since must lie for it to ask what just happened.
const recentWindow = time.Minute

// fresh reports whether a query with f must see every write acknowledged before it: a
// correlation timeline (a service reads back the remediation it is writing, an investigator
// follows one running), or a window of the last minute.
func (h *Handler) fresh(f *store.Filter) bool {
	return len(f.CorrelationIDs) > 0 || f.Since != nil && f.Since.After(h.now().Add(-recentWindow))
}

// errNotReplayed is a lookup the replica found nothing for: what it has not replayed yet may
// hold it, so the primary is asked.
var errNotReplayed = fmt.Errorf("%w: not found on the replica, which may not have replayed it yet", store.ErrUnavailable)

// read runs fn against the first of sources that answers: a database that is unavailable
// passes the read to the next. Before each try it labels the answer with the replica's lag
// (or not). fn writes an answer only once its read succeeded; replica says which one it reads.
func (h *Handler) read(ctx context.Context, w http.ResponseWriter, fresh bool, fn func(st Store, replica bool) error) error {
	var err error
	for _, src := range h.sources(ctx, fresh) {
		if src.replica {
			w.Header().Set(ReplicaLagHeader, strconv.FormatFloat(src.lag.Seconds(), 'f', 3, 64))
		}
		err = fn(src.store, src.replica)
		if err != nil {
			w.Header().Del(ReplicaLagHeader)
		}
		if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			if err == nil && h.replica != nil {
				db := "primary"
				if src.replica {
					db = "replica"
				}
				h.replica.reads.WithLabelValues(db).Inc()
			}
			return err
		}
		if src.replica && !errors.Is(err, errNotReplayed) {
			h.replica.down()
			slog.Warn("query replica: read failed, the primary answers until it is measured up again", "error", err)
		}
	}
	return err
}
