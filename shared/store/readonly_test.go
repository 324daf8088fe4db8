package store_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestReadOnlyDatabase: a write to a database that takes none is ErrReadOnly (so a 503), the
// writer's readiness says so, and a write pool does not keep the connection that met it.
func TestReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, pgtest.Options{})
	ctx := context.Background()
	admin := pgtest.Connect(t, dbURL)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	// Sessions begun from now on are read-only, as on a standby; this test's database only.
	_, err = admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+` SET default_transaction_read_only = on`)
	require.NoError(t, err)

	pool, err := store.Open(ctx, dbURL, store.PoolOptions{MaxConns: 2, Writes: true})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s := store.New(pool)

	_, _, err = s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{audittest.Event(t, nil)}})
	require.ErrorIs(t, err, store.ErrReadOnly)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorIs(t, s.PingWritable(ctx), store.ErrReadOnly)
	require.NoError(t, s.Ping(ctx), "it still answers reads")
	require.NotEqual(t, backend(t, pool), backend(t, pool), "a write pool closes each connection to a read-only server when it is released")

	reads, err := store.Open(ctx, dbURL, store.PoolOptions{MaxConns: 1})
	require.NoError(t, err)
	t.Cleanup(reads.Close)
	require.Equal(t, backend(t, reads), backend(t, reads), "a read pool keeps them")
}

func backend(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var pid int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid))
	return pid
}
