package pgcluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startPair starts a pair or skips the test when this machine has no server binaries.
func startPair(t *testing.T, opts PairOptions) *Pair {
	t.Helper()
	opts.Logf = t.Logf
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := StartPair(ctx, opts)
	if errors.Is(err, ErrNoServer) {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Stop()) })
	return p
}

func TestPair_StallKillPromote(t *testing.T) {
	t.Parallel()
	p := startPair(t, PairOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	require.NoError(t, p.Primary.Exec(ctx, `CREATE TABLE t (n int)`, `INSERT INTO t VALUES (1)`))
	require.NoError(t, p.WaitReplayed(ctx))
	require.Equal(t, 1, query(t, p.Replica.URL, `SELECT count(*) FROM t`), "the replica streams")

	resume, err := p.StallReplication(ctx)
	require.NoError(t, err)
	require.NoError(t, p.Primary.Exec(ctx, `INSERT INTO t VALUES (2)`))
	require.Equal(t, 2, query(t, p.Primary.URL, `SELECT count(*) FROM t`))
	require.Equal(t, 1, query(t, p.Replica.URL, `SELECT count(*) FROM t`), "a stalled WAL sender leaves the replica behind")
	_ = resume // the primary dies stalled: what it did not send is lost, as after a partition

	require.NoError(t, p.Primary.Kill())
	require.NoError(t, p.Replica.Promote(ctx))
	require.NoError(t, p.Replica.Exec(ctx, `INSERT INTO t VALUES (3)`))
	require.Equal(t, 2, query(t, p.Replica.URL, `SELECT count(*) FROM t`), "the promoted replica has what it received, and takes writes")
}

func TestPair_Synchronous(t *testing.T) {
	t.Parallel()
	p := startPair(t, PairOptions{Synchronous: true})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var state string
	require.NoError(t, p.Primary.QueryRow(ctx, `SELECT sync_state FROM pg_stat_replication`, &state))
	require.Equal(t, "sync", state)
	require.NoError(t, p.Primary.Exec(ctx, `CREATE TABLE t (n int)`, `INSERT INTO t VALUES (1)`))
	// A synchronous commit returned once the replica flushed it: after the crash it is there.
	require.NoError(t, p.Primary.Kill())
	require.NoError(t, p.Replica.Promote(ctx))
	require.Equal(t, 1, query(t, p.Replica.URL, `SELECT count(*) FROM t`))

	require.NoError(t, p.Replica.ReadOnly(ctx))
	require.Error(t, p.Replica.Exec(ctx, `INSERT INTO t VALUES (2)`), "a read-only primary refuses writes")
}
