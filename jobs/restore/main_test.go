package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t, pgtest.Options{})
	pool, err := store.Open(ctx, dbURL, store.PoolOptions{MaxConns: 2})
	require.NoError(t, err)
	defer pool.Close()
	s := store.New(pool)

	// A month archived by maintenance (here directly), then dropped.
	month := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var events []audit.Event
	for i := range 250 {
		events = append(events, audittest.Event(t, &audittest.EventOpts{RetentionDays: 90, EventTimestamp: month.Add(time.Duration(i) * time.Hour)}))
	}
	_, _, err = s.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	archiveURL := "file://" + t.TempDir()
	a, err := archive.Open(ctx, archiveURL, archive.Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer a.Close()
	_, err = a.Write(ctx, archive.PartitionOf(90, month), s)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ALTER TABLE audit_events_r90 DETACH PARTITION audit_events_r90_2025_03`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DROP TABLE audit_events_r90_2025_03`)
	require.NoError(t, err)

	restore := func(args ...string) (summary, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"-archive", archiveURL, "-database", dbURL, "-temp-dir", t.TempDir()}, args...), &out)
		var sum summary
		if err == nil {
			require.NoError(t, json.Unmarshal(out.Bytes(), &sum))
		}
		return sum, err
	}

	sum, err := restore("-partition", "audit_events_r90_2025_03", "-verify-only")
	require.NoError(t, err)
	require.True(t, sum.Verified)
	require.EqualValues(t, 250, sum.ArchivedRows)
	require.Empty(t, sum.Table)

	sum, err = restore("-class", "90", "-month", "2025-03")
	require.NoError(t, err)
	require.Equal(t, "audit_restore_r90_2025_03", sum.Table)
	require.EqualValues(t, 250, sum.LoadedRows)
	var n int
	var data []byte
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit_restore_r90_2025_03`).Scan(&n))
	require.Equal(t, 250, n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT event_data FROM audit_restore_r90_2025_03 WHERE event_id = $1`, events[17].EventID).Scan(&data))
	require.JSONEq(t, string(events[17].EventData), string(data))

	_, err = restore("-partition", "audit_events_r90_2025_03")
	require.ErrorIs(t, err, store.ErrConflict, "the table exists")
	sum, err = restore("-partition", "audit_events_r90_2025_03", "-table", "audit_restore_case_4711")
	require.NoError(t, err)
	require.EqualValues(t, 250, sum.LoadedRows)

	for _, args := range [][]string{
		{},
		{"-partition", "audit_events_r90_2025_04"}, // not archived
		{"-partition", "audit_events"},
		{"-class", "90"},
		{"-partition", "audit_events_r90_2025_03", "-month", "2025-03"},
		{"-partition", "audit_events_r90_2025_03", "-table", "audit_events_r90_2025_03"},
		{"-partition", "audit_events_r90_2025_03", "stray"},
	} {
		_, err := restore(args...)
		require.Error(t, err, "%v", args)
	}
	_, err = restore("-partition", "audit_events_r90_2025_04")
	require.ErrorIs(t, err, archive.ErrNotArchived)
}
