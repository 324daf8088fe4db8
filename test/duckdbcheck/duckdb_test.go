// Package duckdbcheck proves the cold tier is one table to an engine that knows nothing of
// auditstore: DuckDB reads the Parquet files under their Hive-style keys and returns, for the
// same filters, exactly the events the query API returns. It is a module of its own because
// DuckDB's Go binding needs CGO, which the service itself does without.
package duckdbcheck

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/coldtest"
	"github.com/auditstore/auditstore/test/pgtest"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDuckDBReadsWhatTheAPIReturns(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	dir := t.TempDir()
	bucket, err := archive.OpenBucket(ctx, "file://"+dir)
	require.NoError(t, err)
	defer bucket.Close()

	now := time.Now().UTC()
	month := func(back int) time.Time {
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -back, 0)
	}
	var events []audit.Event
	for back := 4; back >= 0; back-- {
		for i := range 60 {
			e := audittest.Event(t, &audittest.EventOpts{
				CorrelationID:  fmt.Sprintf("rr-%d", i%7),
				ActorID:        fmt.Sprintf("actor-%d", i%4),
				EventType:      []string{"gateway.signal.received", "workflow.step.done", "workflow.step.failed"}[i%3],
				EventTimestamp: month(back).Add(time.Duration(i*7) * time.Hour),
				RetentionDays:  2557,
			})
			events = append(events, e)
		}
	}
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	mover := &cold.Mover{Store: st, Tier: archive.NewCold(bucket, archive.ColdOptions{FileRows: 50, RowGroupRows: 10})}
	coldtest.Run(t, st, coldtest.Runner(t, st, mover, "1", func() time.Time { return now }))
	api := cold.NewTiered(st, cold.NewReader(bucket, 0))

	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	table := fmt.Sprintf("read_parquet('%s', hive_partitioning = true)", filepath.Join(dir, archive.ColdPrefix, "*", "*", "*.parquet"))
	var classes int
	require.NoError(t, db.QueryRow(`SELECT count(DISTINCT retention_class) FROM `+table).Scan(&classes))
	require.Equal(t, 1, classes, "the Hive partition columns are read from the keys")

	// Every query ends before the hot months: what it finds is in the cold tier alone.
	hotStart := month(1)
	since := month(3).Add(100 * time.Hour)
	cases := []struct {
		name  string
		where string
		args  []any
		f     store.Filter
	}{
		{"correlation", "correlation_id = ?", []any{"rr-3"}, store.Filter{CorrelationIDs: []string{"rr-3"}}},
		{"actor and type prefix", "actor_id IN (?, ?) AND starts_with(event_type, ?)", []any{"actor-1", "actor-2", "workflow."},
			store.Filter{ActorIDs: []string{"actor-1", "actor-2"}, EventTypePrefixes: []string{"workflow."}}},
		{"time range and type", "event_timestamp >= ? AND event_type = ?", []any{since, "gateway.signal.received"},
			store.Filter{Since: &since, EventTypes: []string{"gateway.signal.received"}}},
		{"everything", "true", nil, store.Filter{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.f.Until = &hotStart
			var want []string
			_, err := api.StreamEvents(ctx, store.StreamParams{Filter: c.f, Order: store.Ascending}, func(e *audit.Event) error {
				want = append(want, row(e.EventID.String(), e.EventTimestamp, e.CorrelationID, e.ActorID, e.EventType, string(e.EventData)))
				return nil
			})
			require.NoError(t, err)
			require.NotEmpty(t, want)

			rows, err := db.Query(`SELECT CAST(event_id AS VARCHAR), event_timestamp, correlation_id, actor_id, event_type, CAST(event_data AS VARCHAR)
				FROM `+table+` WHERE `+c.where+` AND event_timestamp < ? ORDER BY event_timestamp, event_id`, append(slices.Clone(c.args), hotStart)...)
			require.NoError(t, err)
			defer rows.Close()
			var got []string
			for rows.Next() {
				var id, cid, actor, typ, data string
				var ts time.Time
				require.NoError(t, rows.Scan(&id, &ts, &cid, &actor, &typ, &data))
				got = append(got, row(id, ts, cid, actor, typ, data))
			}
			require.NoError(t, rows.Err())
			require.Equal(t, want, got)
		})
	}
}

func row(id string, ts time.Time, cid, actor, typ, data string) string {
	return strings.Join([]string{id, ts.UTC().Format(time.RFC3339Nano), cid, actor, typ, data}, " | ")
}
