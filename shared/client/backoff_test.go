package client

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	c, err := New(Config{URL: "http://x", MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	require.NoError(t, err)
	for range 200 {
		for attempt, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 6: 2 * time.Second, 80: 2 * time.Second} {
			d := c.backoff(attempt, 0)
			require.GreaterOrEqual(t, d, ceiling/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, ceiling, "attempt %d", attempt)
		}
		require.Equal(t, 7*time.Second, c.backoff(1, 7*time.Second), "Retry-After wins when longer")
		require.Equal(t, 10*time.Minute, c.backoff(1, time.Hour), "but not beyond 10 minutes")
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	require.Equal(t, 5*time.Second, retryAfter(http.Header{"Retry-After": {"5"}}))
	require.Zero(t, retryAfter(http.Header{}))
	require.Zero(t, retryAfter(http.Header{"Retry-After": {"soon"}}))
	d := retryAfter(http.Header{"Retry-After": {time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)}})
	require.InDelta(t, time.Minute.Seconds(), d.Seconds(), 2)
	require.True(t, retryable(http.StatusTooManyRequests))
	require.True(t, retryable(http.StatusServiceUnavailable))
	require.True(t, retryable(http.StatusBadGateway))
	require.False(t, retryable(http.StatusBadRequest))
	require.False(t, retryable(http.StatusUnauthorized))
	require.False(t, retryable(http.StatusConflict))
}

func TestRing(t *testing.T) {
	t.Parallel()
	r := newRing(4)
	for i := range 4 {
		r.push(pending{seq: uint64(i), raw: make([]byte, 10)})
	}
	require.True(t, r.full())
	got := r.pop(3, 1<<20)
	require.Len(t, got, 3)
	require.EqualValues(t, 3, r.peek().seq)
	r.push(pending{seq: 4, raw: make([]byte, 10)})
	r.push(pending{seq: 5, raw: make([]byte, 10)})
	got = r.pop(10, 1<<20)
	require.Equal(t, []uint64{3, 4, 5}, []uint64{got[0].seq, got[1].seq, got[2].seq}, "in order across the wrap")
	require.Zero(t, r.len())
	r.push(pending{seq: 6, raw: make([]byte, 100)})
	r.push(pending{seq: 7, raw: make([]byte, 100)})
	require.Len(t, r.pop(10, 150), 1, "bounded by bytes")
	require.Len(t, r.pop(10, 10), 1, "but at least one event")
}
