package write

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
)

// committer coalesces concurrent requests into shared transactions (group commit). Each of a
// few workers takes the oldest waiting request and every request queued behind it, up to
// maxEvents, optionally waiting up to maxWait for more, and stores them in one InsertEvents
// call. Under load requests queue while the workers are busy, so batches grow by themselves;
// when idle a request is committed at once. A request is answered only after the transaction
// holding its events has committed.
type committer struct {
	store     Store
	queue     chan *pending
	maxEvents int
	maxWait   time.Duration
	timeout   time.Duration
	observe   func(events int)
	wg        sync.WaitGroup
}

// pending is one request's events waiting for a commit.
type pending struct {
	events []audit.Event
	// atomic: any conflict fails the whole request and none of its events is stored (a batch).
	atomic bool
	done   chan outcome
}

type outcome struct {
	results []store.InsertResult
	err     error
}

func newCommitter(s Store, workers, maxEvents int, maxWait, timeout time.Duration, observe func(int)) *committer {
	c := &committer{store: s, queue: make(chan *pending, 4*workers), maxEvents: maxEvents, maxWait: maxWait, timeout: timeout, observe: observe}
	for range workers {
		c.wg.Add(1)
		go c.work()
	}
	return c
}

// submit stores events (atomically or not) in the next group and waits for the outcome. The
// caller's context only bounds the wait for a place in the queue: once queued, the events are
// committed or not with their group, whatever happens to the caller.
func (c *committer) submit(ctx context.Context, events []audit.Event, atomic bool) ([]store.InsertResult, error) {
	p := pendings.Get().(*pending)
	p.events, p.atomic = events, atomic
	select {
	case c.queue <- p:
	default:
		// The queue is full: wait for a place, or for the caller to give up. Only then is
		// ctx.Done asked for, which makes the request's context a channel.
		select {
		case c.queue <- p:
		case <-ctx.Done():
			p.events = nil
			pendings.Put(p)
			return nil, ctx.Err()
		}
	}
	o := <-p.done
	// A worker is done with p once it has sent the outcome: p and its channel serve the
	// next request.
	p.events = nil
	pendings.Put(p)
	return o.results, o.err
}

// pendings keeps the pending of finished requests, each with its channel, for the next.
var pendings = sync.Pool{New: func() any { return &pending{done: make(chan outcome, 1)} }}

// close stops the workers after the queue is drained.
func (c *committer) close() {
	close(c.queue)
	c.wg.Wait()
}

func (c *committer) work() {
	defer c.wg.Done()
	var carry *pending
	for {
		first := carry
		carry = nil
		if first == nil {
			var ok bool
			if first, ok = <-c.queue; !ok {
				return
			}
		}
		group, n := []*pending{first}, len(first.events)
		var timer <-chan time.Time
		if c.maxWait > 0 {
			timer = time.After(c.maxWait)
		}
	collect:
		for n < c.maxEvents {
			var p *pending
			var ok bool
			if timer == nil {
				select {
				case p, ok = <-c.queue:
				default:
					break collect
				}
			} else {
				select {
				case p, ok = <-c.queue:
				case <-timer:
					break collect
				}
			}
			if !ok {
				break collect
			}
			if n+len(p.events) > c.maxEvents {
				carry = p
				break collect
			}
			group, n = append(group, p), n+len(p.events)
		}
		c.commit(group)
	}
}

// commit stores a group. An atomic request with a conflict is taken out and the rest stored
// again, so one request's conflict never fails another's events; a database refusal that only
// one request's data can cause is isolated the same way, by storing each request alone.
func (c *committer) commit(group []*pending) {
	for len(group) > 0 {
		n := 0
		for _, p := range group {
			n += len(p.events)
		}
		events := make([]audit.Event, 0, n)
		for _, p := range group {
			events = append(events, p.events...)
		}
		var failed map[*pending]bool
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		params := store.InsertParams{Events: events}
		// Only an atomic request can need the veto; without one the store may take its
		// cheaper path without an explicit transaction.
		if slices.ContainsFunc(group, func(p *pending) bool { return p.atomic }) {
			params.Commit = func(results []store.InsertResult) bool {
				failed = nil
				off := 0
				for _, p := range group {
					if p.atomic && hasConflict(results[off:off+len(p.events)]) {
						if failed == nil {
							failed = map[*pending]bool{}
						}
						failed[p] = true
					}
					off += len(p.events)
				}
				return len(failed) == 0
			}
		}
		results, committed, err := c.store.InsertEvents(ctx, params)
		cancel()
		switch {
		case err != nil && errors.Is(err, store.ErrInvalid) && len(group) > 1:
			for _, p := range group {
				c.commit([]*pending{p})
			}
			return
		case err != nil:
			for _, p := range group {
				p.done <- outcome{err: err}
			}
			return
		case committed:
			if c.observe != nil {
				c.observe(len(events))
			}
			off := 0
			for _, p := range group {
				// p is not touched once answered: its request may reuse it at once.
				n := len(p.events)
				p.done <- outcome{results: results[off : off+n]}
				off += n
			}
			return
		}
		// Vetoed: answer the failed requests with their results (nothing of theirs is stored)
		// and store the others again.
		off, rest := 0, group[:0:0]
		for _, p := range group {
			n := len(p.events)
			if failed[p] {
				p.done <- outcome{results: results[off : off+n]}
			} else {
				rest = append(rest, p)
			}
			off += n
		}
		group = rest
	}
}

func hasConflict(results []store.InsertResult) bool {
	for _, r := range results {
		if r.Status == store.Conflict {
			return true
		}
	}
	return false
}
