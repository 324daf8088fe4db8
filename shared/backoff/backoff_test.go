package backoff_test

import (
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/backoff"
	"github.com/stretchr/testify/require"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff.Backoff{Min: time.Second, Max: time.Minute}
	var loud []int
	for i := 1; i <= 12; i++ {
		d := b.Fail()
		want := min(time.Minute, time.Second<<(i-1))
		require.LessOrEqual(t, d, want, "failure %d", i)
		require.GreaterOrEqual(t, d, want-want/4, "failure %d", i)
		if b.Loud() {
			loud = append(loud, i)
		}
	}
	require.Equal(t, []int{1, 2, 4, 8}, loud)
	require.Equal(t, 12, b.Succeed())
	require.Zero(t, b.Failures())
	require.LessOrEqual(t, b.Fail(), time.Second, "a success starts over")
}
