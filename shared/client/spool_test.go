package client

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func batchOf(n, size int) []pending {
	out := make([]pending, n)
	for i := range out {
		id := fmt.Sprintf("00000000-0000-7000-8000-%012d", i)
		raw := fmt.Sprintf(`{"event_id":%q,"pad":"%0*d"}`, id, size, 0)
		out[i] = pending{id: id, raw: []byte(raw)}
	}
	return out
}

func TestSpool(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := openSpool(dir, 1<<20)
	require.NoError(t, err)
	_, err = openSpool(dir, 1<<20)
	require.ErrorContains(t, err, "in use by another emitter")

	first, second := batchOf(3, 10), batchOf(2, 10)
	require.NoError(t, s.write(first))
	require.NoError(t, s.write(second))
	files, size := s.state()
	require.Equal(t, 2, files)
	require.Positive(t, size)

	name, ok := s.next()
	require.True(t, ok)
	got, err := s.read(name)
	require.NoError(t, err)
	require.Len(t, got, 3, "the oldest batch first")
	require.Equal(t, first[2].id, got[2].id)
	require.JSONEq(t, string(first[0].raw), string(got[0].raw))
	_, ok2 := s.next()
	require.True(t, ok2)
	_, ok3 := s.next()
	require.False(t, ok3, "a file being replayed is not handed out twice")
	s.release(name)
	again, ok := s.next()
	require.True(t, ok)
	require.Equal(t, name, again)
	require.NoError(t, s.remove(name))
	files, _ = s.state()
	require.Equal(t, 1, files)

	require.ErrorIs(t, s.write(batchOf(10, 200_000)), errSpoolFull, "bounded by SpoolMaxBytes")
	require.NoError(t, s.close())

	// After a crash: a half-written batch is removed, a whole one kept, an unreadable one set
	// aside by the replayer.
	require.NoError(t, os.WriteFile(filepath.Join(dir, spoolTemp+"123"+spoolSuffix), []byte(`[{"event_id":`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000001-000001"+spoolSuffix), []byte(`not json`), 0o600))
	s, err = openSpool(dir, 1<<20)
	require.NoError(t, err)
	defer s.close()
	_, err = os.Stat(filepath.Join(dir, spoolTemp+"123"+spoolSuffix))
	require.ErrorIs(t, err, os.ErrNotExist)
	files, _ = s.state()
	require.Equal(t, 2, files)
	name, _ = s.next()
	_, err = s.read(name)
	require.ErrorContains(t, err, "not a JSON array of events")
	s.quarantine(name)
	_, err = os.Stat(filepath.Join(dir, name+".bad"))
	require.NoError(t, err)
	files, _ = s.state()
	require.Equal(t, 1, files)
}
