package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
)

// EmitterConfig configures an Emitter. Zero fields take their defaults.
type EmitterConfig struct {
	// BatchSize is the most events sent in one request (default 100, at most 1000).
	BatchSize int
	// MaxBatchAge is how long an event waits for its batch to fill before the batch is sent
	// anyway (default 200 ms).
	MaxBatchAge time.Duration
	// BufferSize bounds the events held in memory (default 10000); BufferBytes bounds their
	// encoded size (default 64 MiB). When either is reached, Emit refuses events with
	// ErrBufferFull. With a SpoolDir, events go to disk long before that: once the buffer is
	// half full.
	BufferSize  int
	BufferBytes int64
	// Senders is how many batches are sent at once (default 2).
	Senders int
	// SpoolDir, when set, is a directory (created if missing; one Emitter at a time) where
	// events are kept while they cannot be sent: when the buffer is half full, when the store
	// has been failing for SpoolAfter, and at Close. Spooled events are sent as soon as the
	// store answers, also by the next Emitter on the same directory after a restart.
	SpoolDir string
	// SpoolMaxBytes bounds the spool (default 256 MiB); beyond it events stay in memory.
	SpoolMaxBytes int64
	// SpoolAfter is how long the store must have been failing before batches go to the spool
	// instead of being retried in memory (default 10 s).
	SpoolAfter time.Duration
	// OnError is called with a *DeliveryError for events the store refused or that were
	// dropped, from the Emitter's goroutines: it must not block for long. Default: log them.
	OnError func(error)
	// Logger logs the store becoming unavailable and available again (default slog.Default()).
	Logger *slog.Logger
}

// Errors Emit returns.
var (
	// ErrBufferFull: the event was dropped because the buffer is full.
	ErrBufferFull = errors.New("client: the emitter's buffer is full; event dropped")
	// ErrClosed: the event was dropped because the Emitter is closed.
	ErrClosed = errors.New("client: the emitter is closed; event dropped")
)

// Reasons for dropped events, the reason label of the dropped metric.
const (
	DroppedBufferFull  = "buffer_full" // Emit found the buffer full
	DroppedClosed      = "closed"      // Emit after Close
	DroppedRejected    = "rejected"    // the store refused the event (it is invalid or conflicts)
	DroppedUndelivered = "undelivered" // Close's deadline passed, and there was no room in a spool
)

var dropReasons = [...]string{DroppedBufferFull, DroppedClosed, DroppedRejected, DroppedUndelivered}

// Emitter sends events in the background, for services that must not wait for the audit store
// on their hot path: Emit only encodes the event and queues it. Batches go out when they are
// full or MaxBatchAge old; network errors, 429 and 5xx are retried with exponential backoff
// and jitter (honouring Retry-After), other refusals are reported to OnError and not retried.
// Each event carries a client-made UUIDv7 event_id, so a retry of a batch the store did
// store (its answer was lost) is a duplicate, not a second row.
//
// An Emitter is a prometheus.Collector of its counters (register it to export them). It is
// safe for concurrent use; Close it to send what is buffered.
type Emitter struct {
	c     *Client
	cfg   EmitterConfig
	spool *spool
	log   *slog.Logger

	mu            sync.Mutex
	ring          ring
	queued        int64             // bytes in ring
	nextSeq       uint64            // the next event's sequence number
	inflight      map[uint64]uint64 // batch → its lowest sequence number
	nextBatch     uint64
	flushTo       uint64        // events below this sequence number go out without waiting
	changed       chan struct{} // closed and replaced on every change others wait for
	closing       bool
	closedAt      time.Time // when Close began
	downSince     time.Time // when the store began failing; zero while it answers
	spoolErrUntil time.Time // a spool write failed: do not spool before this

	closed chan struct{} // closed by Close
	// fillers are the senders and the spiller, which may still write to the spool during
	// Close; fillersDone is closed when they have all returned, so the replayer drains the
	// spool only after the last batch they spilled.
	fillers     sync.WaitGroup
	fillersDone chan struct{}
	abort       context.Context
	abortFn     context.CancelFunc
	workers     sync.WaitGroup
	done        chan struct{}
	closeErr    error

	emitted, sent, retried, spooled atomic.Uint64
	dropped                         [len(dropReasons)]atomic.Uint64
}

// NewEmitter starts an Emitter that sends through c. With a SpoolDir, events spooled by an
// earlier Emitter on it are sent first.
func NewEmitter(c *Client, cfg EmitterConfig) (*Emitter, error) {
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 100)
	cfg.MaxBatchAge = cmp.Or(cfg.MaxBatchAge, 200*time.Millisecond)
	cfg.BufferSize = cmp.Or(cfg.BufferSize, 10_000)
	cfg.BufferBytes = cmp.Or(cfg.BufferBytes, 64<<20)
	cfg.Senders = cmp.Or(cfg.Senders, 2)
	cfg.SpoolMaxBytes = cmp.Or(cfg.SpoolMaxBytes, 256<<20)
	cfg.SpoolAfter = cmp.Or(cfg.SpoolAfter, 10*time.Second)
	switch {
	case cfg.BatchSize < 1 || cfg.BatchSize > MaxBatch:
		return nil, fmt.Errorf("client: BatchSize must be between 1 and %d", MaxBatch)
	case cfg.MaxBatchAge < 0:
		return nil, errors.New("client: MaxBatchAge must not be negative")
	case cfg.BufferSize < cfg.BatchSize:
		return nil, errors.New("client: BufferSize must be at least BatchSize")
	case cfg.BufferBytes < 1<<20:
		return nil, errors.New("client: BufferBytes must be at least 1 MiB")
	case cfg.Senders < 1 || cfg.Senders > 64:
		return nil, errors.New("client: Senders must be between 1 and 64")
	case cfg.SpoolMaxBytes < 1<<20:
		return nil, errors.New("client: SpoolMaxBytes must be at least 1 MiB")
	case cfg.SpoolAfter < 0:
		return nil, errors.New("client: SpoolAfter must not be negative")
	}
	e := &Emitter{
		c: c, cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()),
		ring: newRing(cfg.BufferSize), nextSeq: 1, inflight: map[uint64]uint64{},
		changed: make(chan struct{}), closed: make(chan struct{}), done: make(chan struct{}),
		fillersDone: make(chan struct{}),
	}
	e.abort, e.abortFn = context.WithCancel(context.Background())
	if cfg.SpoolDir != "" {
		s, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes)
		if err != nil {
			return nil, err
		}
		e.spool = s
		e.workers.Add(2)
		e.fillers.Add(1)
		go e.spiller()
		go e.replayer()
	}
	e.workers.Add(cfg.Senders)
	e.fillers.Add(cfg.Senders)
	for range cfg.Senders {
		go e.sender()
	}
	go func() {
		e.fillers.Wait()
		close(e.fillersDone)
	}()
	return e, nil
}

// Emit queues an event and returns at once. It fills in the event's event_id and
// event_timestamp when it has none (on a copy: the caller's event is not changed) and encodes
// it; the event must not be changed while Emit runs. Emit does not validate the event (the
// builders of package audit do): the store refuses an invalid one, and OnError hears of it.
// It returns ErrBufferFull or ErrClosed when the event was dropped.
func (e *Emitter) Emit(in *audit.Input) error {
	if in == nil {
		return errors.New("client: nil event")
	}
	// Refuse before encoding when the event cannot be taken anyway: a caller that retries on
	// ErrBufferFull should not pay for an encoding each time.
	e.mu.Lock()
	closing, full := e.closing, e.ring.full() || e.queued >= e.cfg.BufferBytes
	e.mu.Unlock()
	switch {
	case closing:
		e.countDrop(DroppedClosed, 1)
		return ErrClosed
	case full:
		e.countDrop(DroppedBufferFull, 1)
		return ErrBufferFull
	}
	cp := *in
	p, err := e.c.encode(&cp, time.Now())
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		e.countDrop(DroppedClosed, 1)
		return ErrClosed
	}
	if e.ring.full() || e.queued+int64(len(p.raw)) > e.cfg.BufferBytes {
		e.mu.Unlock()
		e.countDrop(DroppedBufferFull, 1)
		return ErrBufferFull
	}
	p.seq = e.nextSeq
	e.nextSeq++
	e.ring.push(p)
	half := e.cfg.BufferBytes / 2
	crossed := e.queued < half && e.queued+int64(len(p.raw)) >= half
	e.queued += int64(len(p.raw))
	// Wake the senders when there is something new to wait for: a first event (to time its
	// batch), a full batch, or (for the spiller) a half-full buffer.
	if n := e.ring.len(); n == 1 || n == e.cfg.BatchSize || n == e.cfg.BufferSize/2 || crossed {
		e.broadcastLocked()
	}
	e.mu.Unlock()
	e.emitted.Add(1)
	return nil
}

// Flush sends every event emitted before it without waiting for batches to fill, and returns
// when each has been acknowledged by the store, spooled or dropped, or when ctx ends.
func (e *Emitter) Flush(ctx context.Context) error {
	e.mu.Lock()
	target := e.nextSeq
	if e.flushTo < target {
		e.flushTo = target
		e.broadcastLocked()
	}
	for !e.doneBeforeLocked(target) {
		ch := e.changed
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.mu.Lock()
	}
	e.mu.Unlock()
	return nil
}

// doneBeforeLocked tells whether every event below sequence number target has left the
// Emitter's hands.
func (e *Emitter) doneBeforeLocked(target uint64) bool {
	if e.ring.len() > 0 && e.ring.peek().seq < target {
		return false
	}
	for _, low := range e.inflight {
		if low < target {
			return false
		}
	}
	return true
}

// Close stops taking events and sends what is buffered, and (with a spool) what is spooled
// while the store answers. It returns when all of it is acknowledged, or when ctx ends: what
// is left then goes to the spool, or is dropped and reported without one. Its error counts
// the events the Emitter could not deliver in its life (refused by the store, or dropped at
// Close), which OnError has heard of one by one; events Emit refused are not counted. Later
// calls wait for the first and return its result.
func (e *Emitter) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		<-e.done
		return e.closeErr
	}
	e.closing = true
	e.closedAt = time.Now()
	close(e.closed)
	e.broadcastLocked()
	e.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		e.workers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		e.abortFn() // ends retries and requests: what is left is spooled or dropped
		<-finished
	}
	e.abortFn()
	if e.spool != nil {
		if err := e.spool.close(); err != nil {
			e.log.Warn("audit spool: release lock", "error", err)
		}
	}
	refused, undelivered := e.dropped[dropIndex(DroppedRejected)].Load(), e.dropped[dropIndex(DroppedUndelivered)].Load()
	if refused+undelivered > 0 {
		e.closeErr = fmt.Errorf("client: %d events were not delivered: %d refused by the store, %d undelivered at close",
			refused+undelivered, refused, undelivered)
		if undelivered > 0 && ctx.Err() != nil {
			e.closeErr = fmt.Errorf("%w: %w", e.closeErr, ctx.Err())
		}
	}
	close(e.done)
	return e.closeErr
}

// broadcastLocked wakes everyone waiting for a change.
func (e *Emitter) broadcastLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// take waits for a batch to send: BatchSize events, or fewer when the oldest is MaxBatchAge
// old, Flush or Close asks, or they fill maxBatchBytes. It returns nil when the Emitter is
// closing and nothing is left.
func (e *Emitter) take() ([]pending, uint64) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	e.mu.Lock()
	for {
		wait := time.Duration(-1)
		if n := e.ring.len(); n > 0 {
			head := e.ring.peek()
			age := time.Since(head.at)
			if n >= e.cfg.BatchSize || e.queued >= maxBatchBytes || e.closing || head.seq < e.flushTo || age >= e.cfg.MaxBatchAge {
				batch, id := e.popLocked(e.cfg.BatchSize)
				if rest := e.ring.len(); rest >= e.cfg.BatchSize || (rest > 0 && (e.closing || e.ring.peek().seq < e.flushTo)) {
					e.broadcastLocked() // another batch is ready: wake another sender
				}
				e.mu.Unlock()
				return batch, id
			}
			wait = e.cfg.MaxBatchAge - age
		} else if e.closing {
			e.mu.Unlock()
			return nil, 0
		}
		ch := e.changed
		e.mu.Unlock()
		if wait >= 0 {
			timer.Reset(wait)
			select {
			case <-ch:
			case <-timer.C:
			}
		} else {
			<-ch
		}
		e.mu.Lock()
	}
}

// popLocked takes up to limit of the oldest events (and under maxBatchBytes) as a batch in
// flight.
func (e *Emitter) popLocked(limit int) ([]pending, uint64) {
	batch := e.ring.pop(limit, maxBatchBytes)
	for _, p := range batch {
		e.queued -= int64(len(p.raw))
	}
	e.nextBatch++
	e.inflight[e.nextBatch] = batch[0].seq
	return batch, e.nextBatch
}

// finish marks a batch as out of the Emitter's hands (acknowledged, spooled or dropped).
func (e *Emitter) finish(id uint64) {
	e.mu.Lock()
	delete(e.inflight, id)
	e.broadcastLocked()
	e.mu.Unlock()
}

func (e *Emitter) sender() {
	defer e.workers.Done()
	defer e.fillers.Done()
	for {
		batch, id := e.take()
		if batch == nil {
			return
		}
		e.send(batch)
		e.finish(id)
	}
}

// send delivers a batch, retrying until the store takes it; with a spool, a batch the store
// has not taken for SpoolAfter (or at Close) goes to disk instead. After Close's deadline a
// batch that cannot be spooled is dropped and reported.
func (e *Emitter) send(batch []pending) {
	for {
		if e.spool != nil && e.shouldSpool() && e.spill(batch) {
			return
		}
		batch = e.c.deliver(e.abort, batch, loopHooks{
			delivered: e.onDelivered,
			rejected:  e.onRejected,
			retrying:  e.onRetrying,
			stop:      func(time.Time) bool { return e.spool != nil && e.shouldSpool() },
			interrupt: e.closed,
		})
		if len(batch) == 0 {
			return
		}
		if e.abort.Err() != nil {
			if e.spool == nil || !e.spill(batch) {
				e.drop(DroppedUndelivered, batch, "not delivered before Close's deadline")
			}
			return
		}
	}
}

// shouldSpool tells whether batches should go to disk rather than be retried: the store has
// been failing for SpoolAfter, or since before Close, or Close's deadline has passed.
func (e *Emitter) shouldSpool() bool {
	if e.abort.Err() != nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if e.downSince.IsZero() || now.Before(e.spoolErrUntil) {
		return false
	}
	return e.closing || now.Sub(e.downSince) >= e.cfg.SpoolAfter
}

// spill writes a batch to the spool; when it cannot, spooling pauses for a few seconds (a full
// or failing disk) and the batch stays with the caller.
func (e *Emitter) spill(batch []pending) bool {
	if err := e.spool.write(batch); err != nil {
		e.mu.Lock()
		e.spoolErrUntil = time.Now().Add(5 * time.Second)
		e.mu.Unlock()
		if !errors.Is(err, errSpoolFull) {
			e.log.Error("audit spool: write failed; events stay in memory", "error", err)
		}
		return false
	}
	e.spooled.Add(uint64(len(batch)))
	return true
}

// spiller moves the oldest events to the spool while the buffer is half full or more, so a
// store that is slower than the service, or down, does not make Emit drop events.
func (e *Emitter) spiller() {
	defer e.workers.Done()
	defer e.fillers.Done()
	e.mu.Lock()
	for !e.closing {
		if e.ring.len() > 0 && (e.ring.len() >= e.cfg.BufferSize/2 || e.queued >= e.cfg.BufferBytes/2) && !time.Now().Before(e.spoolErrUntil) {
			batch, id := e.popLocked(MaxBatch) // a spool file is replayed as one request
			e.mu.Unlock()
			if !e.spill(batch) {
				e.send(batch) // no room on disk: this one goes the ordinary way
			}
			e.finish(id)
			e.mu.Lock()
			continue
		}
		ch := e.changed
		var retry <-chan time.Time
		if time.Now().Before(e.spoolErrUntil) {
			retry = time.After(time.Until(e.spoolErrUntil))
		}
		e.mu.Unlock()
		select {
		case <-ch:
		case <-retry:
		}
		e.mu.Lock()
	}
	e.mu.Unlock()
}

// replayer sends spooled batches, oldest first, deleting each file once the store has
// acknowledged or refused every event in it. Its retries are the probe that tells when the
// store is back. During Close it goes on until the senders and the spiller have returned
// and the spool is empty, and stops at the first attempt begun after Close that fails: the
// files stay for the next Emitter on the directory.
func (e *Emitter) replayer() {
	defer e.workers.Done()
	for {
		// Whether the fillers are done is read before looking for a file: a batch they
		// spilled just before returning is then found.
		var fillersDone bool
		select {
		case <-e.fillersDone:
			fillersDone = true
		default:
		}
		name, ok := e.spool.next()
		if !ok {
			if fillersDone {
				return
			}
			select {
			case <-e.spool.ready:
			case <-e.fillersDone:
			}
			continue
		}
		batch, err := e.spool.read(name)
		if err != nil {
			e.spool.quarantine(name)
			e.report(&DeliveryError{Detail: "spool file set aside as .bad: " + err.Error()})
			continue
		}
		rest := e.c.deliver(e.abort, batch, loopHooks{
			delivered: e.onDelivered,
			rejected:  e.onRejected,
			retrying:  e.onRetrying,
			stop:      e.failedSinceClose,
			interrupt: e.closed,
		})
		if len(rest) > 0 {
			e.spool.release(name)
			return // closing, and the store is not answering
		}
		if err := e.spool.remove(name); err != nil {
			e.log.Error("audit spool: remove a delivered batch", "file", name, "error", err)
		}
	}
}

// failedSinceClose tells, of a failed attempt begun at started, whether Close had begun by
// then: an attempt already under way when Close began (the store perhaps just back) does not
// end the draining of the spool.
func (e *Emitter) failedSinceClose(started time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing && !started.Before(e.closedAt)
}

func (e *Emitter) onDelivered(n int) {
	e.sent.Add(uint64(n))
	e.storeAnswers()
}

func (e *Emitter) onRejected(d *DeliveryError) {
	e.countDrop(DroppedRejected, len(d.EventIDs))
	e.storeAnswers()
	e.report(d)
}

func (e *Emitter) onRetrying(n int, err error) {
	e.retried.Add(uint64(n))
	e.mu.Lock()
	first := e.downSince.IsZero()
	if first {
		e.downSince = time.Now()
	}
	e.mu.Unlock()
	if first {
		e.log.Warn("audit store unavailable; retrying", "error", err)
	}
}

// storeAnswers records that the store answered.
func (e *Emitter) storeAnswers() {
	e.mu.Lock()
	was := e.downSince
	e.downSince = time.Time{}
	e.mu.Unlock()
	if !was.IsZero() {
		e.log.Info("audit store available again", "unavailable_for", time.Since(was).Round(time.Millisecond).String())
	}
}

func dropIndex(reason string) int {
	for i, r := range dropReasons {
		if r == reason {
			return i
		}
	}
	panic("client: unknown drop reason " + reason)
}

func (e *Emitter) countDrop(reason string, n int) { e.dropped[dropIndex(reason)].Add(uint64(n)) }

func (e *Emitter) drop(reason string, batch []pending, detail string) {
	e.countDrop(reason, len(batch))
	ids := make([]string, len(batch))
	for i, p := range batch {
		ids[i] = p.id
	}
	e.report(&DeliveryError{EventIDs: ids, Detail: detail})
}

func (e *Emitter) report(err error) {
	if e.cfg.OnError != nil {
		e.cfg.OnError(err)
		return
	}
	e.log.Error("audit events not delivered", "error", err)
}

// Stats are an Emitter's counters since it started.
type Stats struct {
	// Emitted events were taken by Emit.
	Emitted uint64
	// Sent events were acknowledged by the store (stored, or duplicates of stored ones),
	// including spooled events of earlier Emitters.
	Sent uint64
	// Retried counts events sent again after a failed attempt (once per attempt).
	Retried uint64
	// Spooled events were written to the spool.
	Spooled uint64
	// Dropped events, by reason (DroppedBufferFull, ...).
	Dropped map[string]uint64
	// Buffered events are in memory, not yet sent.
	Buffered int
	// SpoolFiles and SpoolBytes are what the spool holds now.
	SpoolFiles int
	SpoolBytes int64
}

// Stats returns the Emitter's counters.
func (e *Emitter) Stats() Stats {
	s := Stats{Emitted: e.emitted.Load(), Sent: e.sent.Load(), Retried: e.retried.Load(), Spooled: e.spooled.Load(),
		Dropped: map[string]uint64{}}
	for i, r := range dropReasons {
		s.Dropped[r] = e.dropped[i].Load()
	}
	e.mu.Lock()
	s.Buffered = e.ring.len()
	e.mu.Unlock()
	if e.spool != nil {
		s.SpoolFiles, s.SpoolBytes = e.spool.state()
	}
	return s
}

// ring is a bounded FIFO of events.
type ring struct {
	buf  []pending
	head int
	n    int
}

func newRing(size int) ring { return ring{buf: make([]pending, size)} }

func (r *ring) len() int         { return r.n }
func (r *ring) full() bool       { return r.n == len(r.buf) }
func (r *ring) peek() *pending   { return &r.buf[r.head] }
func (r *ring) push(p pending)   { r.buf[(r.head+r.n)%len(r.buf)] = p; r.n++ }
func (r *ring) at(i int) pending { return r.buf[(r.head+i)%len(r.buf)] }

// pop removes up to limit of the oldest events, fewer if they would exceed maxBytes (at
// least one).
func (r *ring) pop(limit int, maxBytes int) []pending {
	k, size := 0, 0
	for k < r.n && k < limit {
		size += len(r.at(k).raw) + 1
		if k > 0 && size > maxBytes {
			break
		}
		k++
	}
	out := make([]pending, k)
	for i := range out {
		out[i] = r.buf[r.head]
		r.buf[r.head] = pending{} // let the event's bytes go
		r.head = (r.head + 1) % len(r.buf)
	}
	r.n -= k
	return out
}
