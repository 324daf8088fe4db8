package web

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestLineWriter_KeepsEveryLineInOrder writes lines from many goroutines, some past the
// pending bound, and after Close; every line arrives whole, each goroutine's in order.
func TestLineWriter_KeepsEveryLineInOrder(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	w := newLineWriter(&out)
	long := strings.Repeat("x", maxPendingLog/4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				line := fmt.Sprintf("g%d %d\n", g, i)
				if i%100 == 0 {
					line = fmt.Sprintf("g%d %d %s\n", g, i, long)
				}
				_, err := w.Write([]byte(line))
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	w.Close()
	_, err := w.Write([]byte("after close\n"))
	require.NoError(t, err)
	next := map[string]int{}
	lines := strings.Split(strings.TrimSuffix(out.b.String(), "\n"), "\n")
	require.Len(t, lines, 8*500+1)
	require.Equal(t, "after close", lines[len(lines)-1])
	for _, l := range lines[:len(lines)-1] {
		var g string
		var i int
		_, err := fmt.Sscanf(l, "%s %d", &g, &i)
		require.NoError(t, err, l)
		require.Equal(t, next[g], i, "%s: lines in order", g)
		next[g]++
	}
}
