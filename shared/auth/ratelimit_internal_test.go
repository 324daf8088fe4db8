package auth

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// clocked is a limiter on a clock the test moves.
func clocked(perSecond float64, burst int, maxWait time.Duration) (*RateLimiter, *time.Time) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r := NewRateLimiter(perSecond, burst, maxWait)
	r.now = func() time.Time { return now }
	return r, &now
}

// TestRateLimiter_BufferedBurstIsHeldNotRefused: kubernaut's buffered store sends 5,000
// queued events as batches of 1,000, each when the previous one was answered. At the defaults
// (500/s, burst 1,000, 2 s) the first goes on at once and each next one is held until the
// budget admits it: none is refused.
func TestRateLimiter_BufferedBurstIsHeldNotRefused(t *testing.T) {
	t.Parallel()
	r, now := clocked(500, 1000, 2*time.Second)
	const answer = 50 * time.Millisecond // storing a batch and answering it
	for i := range 5 {
		res, retry := r.Reserve("kubernaut", 1000)
		require.NotNil(t, res, "batch %d refused (retry after %s)", i, retry)
		if i == 0 {
			require.Zero(t, res.Delay, "the burst admits the first batch at once")
		} else {
			require.Equal(t, 2*time.Second-answer, res.Delay, "batch %d waits for the 1,000 tokens the last one took", i)
		}
		*now = now.Add(res.Delay + answer)
	}
}

// TestRateLimiter_SustainedOverloadIsRefused: a batch of 1,000 every second is twice the limit;
// the holds grow until one would pass the bound, and from then on about half is refused: over
// a minute no more is admitted than the rate, the burst and one bound's worth.
func TestRateLimiter_SustainedOverloadIsRefused(t *testing.T) {
	t.Parallel()
	r, now := clocked(500, 1000, 2*time.Second)
	admitted, refused := 0, 0
	for range 60 {
		if res, retry := r.Reserve("flood", 1000); res != nil {
			admitted += 1000
		} else {
			require.Greater(t, retry, 2*time.Second, "refused only when the hold would pass the bound")
			refused++
		}
		*now = now.Add(time.Second)
	}
	require.Positive(t, refused)
	require.LessOrEqual(t, admitted, 500*60+1000+1000)
}

// TestRateLimiter_ReservesInOrder: tokens go to requests in the order they came; a small request
// behind a held batch is not let through before it, and a refused request takes nothing.
func TestRateLimiter_ReservesInOrder(t *testing.T) {
	t.Parallel()
	r, now := clocked(500, 1000, 2*time.Second)
	first, _ := r.Reserve("p", 1000)
	require.Zero(t, first.Delay)
	*now = now.Add(100 * time.Millisecond)
	batch, _ := r.Reserve("p", 1000)
	require.NotNil(t, batch)
	small, _ := r.Reserve("p", 1)
	require.NotNil(t, small)
	require.Greater(t, small.Delay, batch.Delay, "the small request waits behind the batch")

	refused, retry := r.Reserve("p", 1000)
	require.Nil(t, refused)
	require.Greater(t, retry, 2*time.Second)
	again, _ := r.Reserve("p", 1)
	require.Equal(t, small.Delay+2*time.Millisecond, again.Delay, "the refused request took nothing")
}

// TestRateLimiter_CancelGivesBack: a held request whose client went away gives its events
// back, so the next request is held no longer than if it had never come.
func TestRateLimiter_CancelGivesBack(t *testing.T) {
	t.Parallel()
	r, now := clocked(500, 1000, 2*time.Second)
	_, _ = r.Reserve("p", 1000)
	*now = now.Add(time.Second)
	half, _ := r.Reserve("p", 500)
	require.Zero(t, half.Delay, "500 tokens came back in a second")
	gone, _ := r.Reserve("p", 500)
	require.Equal(t, time.Second, gone.Delay)
	gone.Cancel()
	next, _ := r.Reserve("p", 500)
	require.Equal(t, time.Second, next.Delay)

	// Wait: a context that ends while held returns its error and gives the events back.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, retry, err := r.Wait(ctx, "p", 100)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, retry)
	after, _ := r.Reserve("p", 100)
	require.Equal(t, time.Second+200*time.Millisecond, after.Delay, "the cancelled wait took nothing")
}
