package migrations_test

import (
	"context"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestMigrations_UpDownUp(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, pgtest.Options{Empty: true})
	ctx := context.Background()
	tables := func() []string {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		require.NoError(t, err)
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, `SELECT relname FROM pg_class
			WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition AND relname <> 'schema_migrations'
			ORDER BY relname`)
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return names
	}
	want := []string{"audit_checkpoints", "audit_cold_files", "audit_deadletters", "audit_erasures", "audit_event_keys", "audit_events", "audit_legal_holds", "audit_log_batches", "audit_log_nodes", "audit_retention_policies"}

	require.NoError(t, migrations.Up(url))
	require.Equal(t, want, tables())
	v, dirty, err := migrations.Version(url)
	require.NoError(t, err)
	require.False(t, dirty)
	require.EqualValues(t, latestVersion(t), v)

	require.NoError(t, migrations.Down(url))
	require.Empty(t, tables())

	require.NoError(t, migrations.Up(url))
	require.Equal(t, want, tables())
	require.NoError(t, migrations.Up(url), "applying again is a no-op")
}

func TestMigrations_RejectsOtherURLs(t *testing.T) {
	t.Parallel()
	require.ErrorContains(t, migrations.Up("host=localhost dbname=x"), "postgres:// URL")
}

// latestVersion is the highest version among the embedded migration files.
func latestVersion(t *testing.T) uint {
	t.Helper()
	entries, err := fs.ReadDir(migrations.Files, ".")
	require.NoError(t, err)
	var latest uint
	for _, e := range entries {
		n, err := strconv.ParseUint(strings.SplitN(e.Name(), "_", 2)[0], 10, 32)
		require.NoError(t, err, e.Name())
		latest = max(latest, uint(n))
	}
	return latest
}
