package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstore/auditstore/shared/client"
)

// emitterLoad is the emitter scenario: the events of the batch scenario, emitted by
// goroutines of this process into the client SDK's Emitter (shared/client), which batches
// them as the batch scenario does (-batch-size events a request, -batch-clients requests at
// once). Its rate counts events the store acknowledged, from the first Emit until Close has
// drained the buffer; latency is per request (a batch), as the Emitter's HTTP client saw it.
type emitterLoad struct {
	url       string
	batchSize int
	senders   int
	emitters  int
	// full counts Emit calls refused because the buffer was full (the goroutine then waits a
	// moment and emits the event again: the scenario measures the store, not what is dropped).
	full atomic.Int64
}

func (l *emitterLoad) run(ctx context.Context, t *tally, duration time.Duration, limit int64) (time.Duration, error) {
	tr := &recordingTransport{next: &http.Transport{MaxIdleConnsPerHost: l.senders * 2, DisableCompression: true, IdleConnTimeout: 90 * time.Second}, t: t}
	defer tr.next.CloseIdleConnections()
	c, err := client.New(client.Config{URL: l.url, HTTPClient: &http.Client{Timeout: time.Minute, Transport: tr}})
	if err != nil {
		return 0, err
	}
	em, err := client.NewEmitter(c, client.EmitterConfig{BatchSize: l.batchSize, Senders: l.senders, OnError: func(err error) {
		t.mu.Lock()
		t.statuses["refused or dropped"]++
		if _, seen := t.samples["refused or dropped"]; !seen {
			t.samples["refused or dropped"] = fmt.Sprintf("%.500s", err.Error())
		}
		t.mu.Unlock()
	}})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	deadline := start.Add(duration)
	var next atomic.Int64
	var wg sync.WaitGroup
	var emitErr error
	var errOnce sync.Once
	for range l.emitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if limit > 0 {
					if n >= limit {
						return
					}
				} else if time.Now().After(deadline) {
					return
				}
				// Event n of the batch scenario (its correlation and payload), without an id:
				// the Emitter gives it a fresh UUIDv7 and a timestamp, as for a service. Made
				// here, as a service makes its events.
				in := input(int(n), "", correlationID(int(n)))
				in.EventID = nil
				for {
					err := em.Emit(in)
					if errors.Is(err, client.ErrBufferFull) {
						l.full.Add(1)
						time.Sleep(200 * time.Microsecond)
						continue
					}
					if err != nil {
						errOnce.Do(func() { emitErr = err })
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	closeCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	closeErr := em.Close(closeCtx)
	elapsed := time.Since(start)
	t.mu.Lock()
	t.events = int64(em.Stats().Sent)
	t.mu.Unlock()
	return elapsed, errors.Join(emitErr, closeErr)
}

// recordingTransport records each request's status and latency in a tally.
type recordingTransport struct {
	next *http.Transport
	t    *tally
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := r.next.RoundTrip(req)
	elapsed := time.Since(start)
	status := "transport error"
	if err == nil {
		status = strconv.Itoa(resp.StatusCode)
	}
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	r.t.requests++
	r.t.statuses[status]++
	if err == nil && resp.StatusCode/100 == 2 {
		r.t.latencies = append(r.t.latencies, elapsed)
	} else if _, seen := r.t.samples[status]; !seen && err != nil {
		r.t.samples[status] = fmt.Sprintf("%.500s", err.Error())
	}
	return resp, err
}
