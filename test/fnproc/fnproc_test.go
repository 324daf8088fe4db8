package fnproc_test

import (
	"os"
	"testing"
	"time"

	"github.com/auditstore/auditstore/test/fnproc"
	"github.com/stretchr/testify/require"
)

// The disk-wait share is a share of the time where the kernel reports pressure, unknown
// where it does not, and printed as a percentage or "?".
func TestIOStall(t *testing.T) {
	require.Equal(t, "?", fnproc.Percent(-1))
	require.Equal(t, "12.5%", fnproc.Percent(0.125))
	s := fnproc.StartIOStall()
	time.Sleep(5 * time.Millisecond)
	share := s.Share()
	if _, err := os.Stat("/proc/pressure/io"); err != nil {
		require.Equal(t, -1.0, share)
		return
	}
	require.GreaterOrEqual(t, share, 0.0)
	require.LessOrEqual(t, share, 1.5, "at most the wall time, give or take the reading's granularity")
}
