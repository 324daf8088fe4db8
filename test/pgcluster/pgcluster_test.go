package pgcluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// start starts a server or skips the test when this machine has neither a
// Docker engine nor PostgreSQL server binaries; every other failure fails.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Logf = t.Logf
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	srv, err := Start(ctx, opts)
	if errors.Is(err, ErrNoServer) {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
	return srv
}

func query(t *testing.T, url, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&n))
	return n
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func TestThrowaway(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	srv := start(t, Options{})
	started := time.Now()
	t.Cleanup(func() { _ = srv.Stop() })
	require.NotContains(t, srv.URL, ":5432/", "must not use the system server's port")

	require.Equal(t, 1, query(t, srv.URL, "select 1"))

	require.NoError(t, srv.Stop())
	t.Logf("throwaway start %s, stop %s", started.Sub(begin).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	require.NoError(t, srv.Stop(), "a second Stop is harmless")
	if srv.dir != "" { // a container has no directory
		_, err := os.Stat(srv.dir)
		require.ErrorIs(t, err, os.ErrNotExist, "Stop must remove %s", srv.dir)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := pgx.Connect(ctx, srv.URL)
	require.Error(t, err, "the server must be down after Stop")
}

func TestPersistent(t *testing.T) {
	t.Parallel()
	if _, err := findBinaries(); err != nil {
		t.Skipf("skipping: persistent clusters need the PostgreSQL server binaries: %v", err)
	}

	// As root, t.TempDir is mode 0700 and so out of reach of the server
	// account, which exercises the relocation to /var/lib/pgcluster; a
	// 0755 directory under the temp dir exercises the plain layout. For a
	// non-root user both are the plain layout.
	reachable, err := os.MkdirTemp("", "pgcluster-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(reachable, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(reachable) })

	for name, parent := range map[string]string{"private parent": t.TempDir(), "reachable parent": reachable} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(parent, ".data", "postgres")
			t.Cleanup(func() { require.NoError(t, RemovePersistent(dataDir)) })

			first := start(t, Options{DataDir: dataDir})
			execSQL(t, first.URL, "create table kept (n int)")
			execSQL(t, first.URL, "insert into kept values (42)")
			require.NoError(t, first.Stop())
			require.Equal(t, 42, query(t, first.URL, "select n from kept"), "Stop must leave a persistent server running")

			second := start(t, Options{DataDir: dataDir})
			require.Equal(t, first.URL, second.URL, "a running cluster is reused")
			require.Equal(t, 42, query(t, second.URL, "select n from kept"))

			require.NoError(t, StopPersistent(dataDir))
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := pgx.Connect(ctx, first.URL)
			require.Error(t, err, "StopPersistent must stop the server")

			third := start(t, Options{DataDir: dataDir})
			require.Equal(t, first.URL, third.URL, "a restarted cluster keeps its port")
			require.Equal(t, 42, query(t, third.URL, "select n from kept"))
		})
	}
}
