package kubernaut_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/stretchr/testify/require"
)

// heldRecorder records how long each write request was held by the rate limiter.
type heldRecorder struct {
	write.Limiter
	mu   sync.Mutex
	held []time.Duration
}

func (h *heldRecorder) Wait(ctx context.Context, principal string, n int) (time.Duration, time.Duration, error) {
	held, retry, err := h.Limiter.Wait(ctx, principal, n)
	if err == nil && retry == 0 {
		h.mu.Lock()
		h.held = append(h.held, held)
		h.mu.Unlock()
	}
	return held, retry, err
}

// BenchmarkBufferedBurst is the cost of kubernaut's buffered store at the default rate limit:
// each iteration a principal of its own flushes 5,000 queued events as 5 batches of 1,000, one
// after another (the write and query functions as deployed, over PostgreSQL). It reports the
// extra wait the rate limiter held each batch for (held_p50_ms, held_p99_ms, held_max_ms, over
// every batch: the first of each flush goes through at once) and each batch's time as the
// client saw it (batch_p50_ms, batch_p99_ms); ns/op is one whole flush.
//
//	go test ./test/kubernaut -run '^$' -bench BufferedBurst -benchtime 10x
func BenchmarkBufferedBurst(b *testing.B) {
	rec := &heldRecorder{}
	f := newFixtureWith(b, b.N, func(l write.Limiter) write.Limiter { rec.Limiter = l; return rec })
	var batches []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		events := make([]kubernaut.Event, 5000)
		for j := range events {
			events[j] = gatewayEvent(fmt.Sprintf("rr-bench-%d-%d", i, j%50), j)
		}
		bs := &kubernaut.BufferedStore{Client: f.client(i)}
		b.StartTimer()
		bs.Flush(context.Background(), events)
		b.StopTimer()
		require.Equal(b, 5000, bs.Stored, "%v", bs.Errors)
		batches = append(batches, bs.Latencies...)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rec.mu.Lock()
	defer rec.mu.Unlock()
	b.ReportMetric(ms(percentile(rec.held, 0.50)), "held_p50_ms")
	b.ReportMetric(ms(percentile(rec.held, 0.99)), "held_p99_ms")
	b.ReportMetric(ms(percentile(rec.held, 1)), "held_max_ms")
	b.ReportMetric(ms(percentile(batches, 0.50)), "batch_p50_ms")
	b.ReportMetric(ms(percentile(batches, 0.99)), "batch_p99_ms")
}

// percentile is the nearest-rank percentile p (0..1] of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(k, 0), len(s)-1)]
}
