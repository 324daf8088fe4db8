package web

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRefusalPacer: a client's refusals are answered at once up to the burst, then one per
// 1/rate, each held at most maxWait; other clients are not affected, and a bucket refills.
func TestRefusalPacer(t *testing.T) {
	t.Parallel()
	p := newRefusalPacer(10, 3, 500*time.Millisecond)
	now := time.Unix(1000, 0)
	for range 3 {
		require.Zero(t, p.delay("a", 1, now))
	}
	require.Equal(t, 100*time.Millisecond, p.delay("a", 1, now))
	require.Equal(t, 200*time.Millisecond, p.delay("a", 1, now))
	for range 10 {
		require.LessOrEqual(t, p.delay("a", 1, now), 500*time.Millisecond)
	}
	require.Equal(t, 500*time.Millisecond, p.delay("a", 1, now), "a sender that does not wait stays at the bound")
	require.Zero(t, p.delay("b", 1, now), "another client has its own bucket")
	later := now.Add(2 * time.Second)
	require.Zero(t, p.delay("a", 1, later), "the bucket refills at the rate")
	require.Equal(t, 200*time.Millisecond, p.delay("c", 5, now), "a large refusal costs more tokens")
	p.prune(later.Add(time.Minute))
	require.Empty(t, p.clients)
}

func TestIsRefusal(t *testing.T) {
	t.Parallel()
	for _, s := range []int{400, 401, 403, 408, 413, 414, 415, 431} {
		require.True(t, isRefusal(s), s)
	}
	for _, s := range []int{200, 201, 202, 404, 409, 429, 500, 503} {
		require.False(t, isRefusal(s), s)
	}
}
