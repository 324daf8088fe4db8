package main

import (
	"context"
	"testing"
	"time"

	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestMigrate_LockTimeout: a migration that cannot have its lock fails within
// MIGRATE_LOCK_TIMEOUT with an error naming it, and applies once the lock is free.
func TestMigrate_LockTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t, pgtest.Options{Empty: true})
	holder := pgtest.Connect(t, dbURL)
	_, err := holder.Exec(ctx, `CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)`)
	require.NoError(t, err)
	// A long transaction holds the version table.
	tx, err := holder.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // released below; a no-op then
	_, err = tx.Exec(ctx, `LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	cfg := config{DatabaseURL: dbURL, LockTimeout: 200 * time.Millisecond, StatementTimeout: time.Minute, Timeout: time.Minute}
	err = run(cfg, false)
	require.ErrorContains(t, err, "MIGRATE_LOCK_TIMEOUT (200ms)")

	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, run(cfg, false))
}
