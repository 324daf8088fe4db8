package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// load is one scenario's traffic: where it goes and what it sends.
type load struct {
	url       string
	templates []*template
	pool      *connPool
	poolOnce  sync.Once
	poolErr   error
	// first numbers the events, so correlation ids run on from request to request.
	first atomic.Int64
	next  atomic.Int64 // the next template
}

// tally is what the responses of a scenario came to.
type tally struct {
	mu        sync.Mutex
	events    int64 // events of 2xx responses
	requests  int64
	latencies []time.Duration
	statuses  map[string]int    // "201", "503", "transport error", ...
	samples   map[string]string // the first body or error of every non-2xx outcome
	lag       []time.Duration   // paced: how late each request was sent
}

func newTally() *tally {
	return &tally{statuses: map[string]int{}, samples: map[string]string{}}
}

// errors is the number of requests without a 2xx response.
func (t *tally) errors() int {
	n := 0
	for k, v := range t.statuses {
		if len(k) != 3 || k[0] != '2' {
			n += v
		}
	}
	return n
}

// connections returns the pool of connections to l.url, made on first use.
func (l *load) connections() (*connPool, error) {
	l.poolOnce.Do(func() { l.pool, l.poolErr = newConnPool(l.url) })
	return l.pool, l.poolErr
}

// close closes the connections kept for reuse.
func (l *load) close() {
	if p, err := l.connections(); err == nil {
		p.close()
	}
}

// send makes one request of l and records it in t (latency from start, which for a paced
// run is the time it was due, not the time it went out).
func (l *load) send(ctx context.Context, t *tally, start time.Time, lat *[]time.Duration) {
	tp := l.templates[int(l.next.Add(1)-1)%len(l.templates)]
	first := int(l.first.Add(int64(tp.events)) - int64(tp.events))
	pool, err := l.connections()
	if err != nil {
		panic(err) // the URL is ours
	}
	c := pool.get()
	c.req = tp.appendRequest(c.req[:0], pool.host, pool.path, first)
	code, err := c.do(ctx, pool.host)
	var status, sample string
	if err != nil {
		status, sample = "transport error", err.Error()
	} else {
		status = strconv.Itoa(code)
		if code/100 != 2 {
			sample = string(c.body[:min(len(c.body), 4096)])
		}
	}
	pool.put(c)
	elapsed := time.Since(start)
	ok := len(status) == 3 && status[0] == '2'
	if ok {
		*lat = append(*lat, elapsed)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests++
	t.statuses[status]++
	if ok {
		t.events += int64(tp.events)
	} else if _, seen := t.samples[status]; !seen {
		t.samples[status] = fmt.Sprintf("%.500s", sample)
	}
}

// closedLoop runs clients that each send their next request when the last one is answered,
// until the duration is over or limit events have been sent (limit > 0). It returns the
// wall time from the first request to the last answer.
func (l *load) closedLoop(ctx context.Context, t *tally, clients int, duration time.Duration, limit int64) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(duration)
	var claimed atomic.Int64
	per := int64(l.templates[0].events)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			defer func() {
				t.mu.Lock()
				t.latencies = append(t.latencies, lat...)
				t.mu.Unlock()
			}()
			for ctx.Err() == nil {
				if limit > 0 {
					if claimed.Add(per) > limit {
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				l.send(ctx, t, time.Now(), &lat)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// paced sends rate requests a second, each at its own due time whether or not earlier ones
// have been answered (an open loop), for the duration or until limit events (limit > 0).
// Latency counts from the due time, so a stalled server shows as latency instead of as fewer
// requests (no coordinated omission). At most maxInFlight requests are outstanding; beyond
// that sending waits, and the wait counts as latency too.
func (l *load) paced(ctx context.Context, t *tally, rate int, duration time.Duration, limit int64, maxInFlight int) time.Duration {
	interval := time.Second / time.Duration(rate)
	n := int64(duration / interval)
	if limit > 0 {
		n = limit / int64(l.templates[0].events)
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	lags := make([]time.Duration, 0, n)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		lags = append(lags, time.Since(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var lat []time.Duration
			l.send(ctx, t, due, &lat)
			if len(lat) > 0 {
				t.mu.Lock()
				t.latencies = append(t.latencies, lat...)
				t.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.lag = lags
	return time.Since(start)
}

// percentile returns the p-th percentile (0..100) of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sorted(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}
