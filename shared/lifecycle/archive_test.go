package lifecycle_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// archiveSetup is what the archive tests share: a database with one expired month of events
// (class 90, eight months ago) and a maintenance service that archives to a directory.
type archiveSetup struct {
	pool   *pgxpool.Pool
	store  *store.Store
	svc    *lifecycle.Service
	cfg    lifecycle.Config
	dir    string
	leaf   string
	part   archive.Partition
	events []audit.Event
}

func setupArchive(t *testing.T, n int) *archiveSetup {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	dir := t.TempDir()
	cfg := testConfig
	cfg.ArchiveURL = "file://" + dir
	month := lifecycle.MonthOf(time.Now().UTC().AddDate(0, -8, 0))
	events := expiredEvents(t, month, n)
	for batch := range slices.Chunk(events, 500) {
		_, _, err := s.InsertEvents(context.Background(), store.InsertParams{Events: batch})
		require.NoError(t, err)
	}
	part := archive.PartitionOf(90, month.Start())
	return &archiveSetup{pool: pool, store: s, svc: lifecycle.NewService(s, cfg, []int{90}, nil), cfg: cfg,
		dir: dir, leaf: store.LeafName(90, month.Start()), part: part, events: events}
}

// expiredEvents makes n events of class 90 spread over month; every seventh has every optional
// field set, so nulls and values of every column go through the archive.
func expiredEvents(t *testing.T, month lifecycle.Month, n int) []audit.Event {
	t.Helper()
	step := month.End().Sub(month.Start()) / time.Duration(n+1)
	var out []audit.Event
	for i := range n {
		ts := month.Start().Add(step * time.Duration(i+1))
		opts := &audittest.EventOpts{RetentionDays: 90, EventTimestamp: ts, Now: ts.Add(15 * time.Millisecond)}
		if i%7 != 0 {
			out = append(out, audittest.Event(t, opts))
			continue
		}
		in := audittest.Input(t, opts)
		str := func(v string) *string { return &v }
		d, sensitive := int64(i), true
		parent := "00000000-0000-0000-0000-000000000000"
		if i > 0 {
			parent = out[len(out)-1].EventID.String()
		}
		in.ActorIP, in.ResourceName, in.TraceID, in.SpanID = str(fmt.Sprintf("10.0.%d.%d", i/256%256, i%256)), str("checkout ✓"), str("4bf92f3577b34da6a3ce929d0e0e4736"), str("00f067aa0ba902b7")
		if i%2 == 0 {
			in.ActorIP = str("2001:db8::17")
		}
		in.ClusterID, in.ErrorCode, in.ErrorMessage = str("prod-eu-west-1"), str("E42"), str("it \"broke\"\n\tbadly")
		in.DurationMS, in.IsSensitive, in.ParentEventID = &d, &sensitive, &parent
		e, errs := in.Prepare(audit.Defaults{Now: ts, Principal: "test-writer", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
		require.Empty(t, errs)
		e.ReceivedAt = ts.Add(15 * time.Millisecond).Truncate(time.Microsecond)
		out = append(out, e)
	}
	return out
}

// stored returns every event of the setup as the store returns it, in the archive's order.
func (as *archiveSetup) stored(t *testing.T) []audit.Event {
	t.Helper()
	var out []audit.Event
	for _, e := range as.events {
		got, err := as.store.GetEvent(context.Background(), e.EventID)
		require.NoError(t, err)
		out = append(out, got)
	}
	slices.SortFunc(out, func(a, b audit.Event) int {
		if c := a.EventTimestamp.Compare(b.EventTimestamp); c != 0 {
			return c
		}
		return strings.Compare(string(a.EventID[:]), string(b.EventID[:]))
	})
	return out
}

// archived returns the events the archive holds, after verifying it.
func (as *archiveSetup) archived(t *testing.T) []audit.Event {
	t.Helper()
	ctx := context.Background()
	a, err := archive.Open(ctx, as.cfg.ArchiveURL, archive.Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer a.Close()
	c, err := a.Fetch(ctx, as.part)
	require.NoError(t, err)
	defer c.Close()
	var out []audit.Event
	for e, err := range c.Events() {
		require.NoError(t, err)
		out = append(out, *e)
	}
	return out
}

func (as *archiveSetup) leafExists(t *testing.T) bool {
	t.Helper()
	var exists bool
	require.NoError(t, as.pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, as.leaf).Scan(&exists))
	return exists
}

func actionsOf(rep lifecycle.Report, leaf string) []lifecycle.Action {
	var out []lifecycle.Action
	for _, a := range rep.Actions {
		if a.Partition == leaf {
			out = append(out, a)
		}
	}
	return out
}

func kinds(actions []lifecycle.Action) []string {
	var out []string
	for _, a := range actions {
		out = append(out, a.Kind)
	}
	return out
}

// TestArchive_ExpiredMonthIsArchivedThenDropped: with ARCHIVE_URL set, an expired month is
// written to the archive, read back and checked, and only then dropped; the archive holds
// exactly the events that were stored, every field of every one.
func TestArchive_ExpiredMonthIsArchivedThenDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	as := setupArchive(t, 1200)
	before := as.stored(t)

	// A dry run says it would archive, and writes nothing.
	dryCfg := as.cfg
	dryCfg.DryRun = true
	rep, err := lifecycle.NewService(as.store, dryCfg, []int{90}, nil).Run(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"partition.archived", "partition.dropped"}, kinds(actionsOf(rep, as.leaf)))
	_, err = os.Stat(filepath.Join(as.dir, as.part.Dir()))
	require.ErrorIs(t, err, os.ErrNotExist)

	rep, err = as.svc.Run(ctx)
	require.NoError(t, err)
	acts := actionsOf(rep, as.leaf)
	require.Equal(t, []string{"partition.archived", "partition.dropped"}, kinds(acts), "archived first, then dropped")
	require.EqualValues(t, 1200, acts[0].Rows)
	require.Positive(t, acts[0].Bytes)
	require.Equal(t, "audit_events/r90/"+as.part.Month.Format("2006/01")+"/manifest.json", acts[0].Detail)
	require.EqualValues(t, 1200, acts[1].Rows)
	require.False(t, as.leafExists(t))
	t.Logf("archive: %d bytes for %d events (%.0f bytes/event)", acts[0].Bytes, acts[0].Rows, float64(acts[0].Bytes)/float64(acts[0].Rows))

	require.Equal(t, before, as.archived(t), "the archive reads back exactly what was stored")

	// The archive's action is itself an audit event, with rows and bytes.
	page, err := as.store.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.partition.archived"}}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	require.Contains(t, string(page.Events[0].EventData), `"bytes":`)

	// A second run finds nothing left to do for the month.
	rep, err = as.svc.Run(ctx)
	require.NoError(t, err)
	require.Empty(t, actionsOf(rep, as.leaf))
}

// TestArchive_CorruptArchiveKeepsThePartition: a run that archived a month and stopped before
// the drop left an archive behind; a byte of it has since flipped. The next run reads it back,
// finds the checksum wrong and keeps the partition (and says so); once the file is whole again,
// the run reuses the archive and drops the month.
func TestArchive_CorruptArchiveKeepsThePartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	as := setupArchive(t, 300)
	a, err := archive.Open(ctx, as.cfg.ArchiveURL, archive.Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer a.Close()
	m, err := a.Write(ctx, as.part, as.store)
	require.NoError(t, err)
	require.EqualValues(t, 300, m.RowCount)

	file := filepath.Join(as.dir, as.part.Dir(), m.Files[0].Name)
	good, err := os.ReadFile(file)
	require.NoError(t, err)
	bad := slices.Clone(good)
	bad[len(bad)/3] ^= 0x01
	require.NoError(t, os.WriteFile(file, bad, 0o644))

	rep, err := as.svc.Run(ctx)
	require.ErrorIs(t, err, archive.ErrVerify)
	acts := actionsOf(rep, as.leaf)
	require.Equal(t, []string{"partition.kept"}, kinds(acts))
	require.Contains(t, acts[0].Detail, "SHA-256")
	require.True(t, as.leafExists(t), "a partition whose archive does not verify is not dropped")
	_, err = as.store.GetEvent(ctx, as.events[0].EventID)
	require.NoError(t, err)
	// The refusal is an audit event too.
	page, err := as.store.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.partition.kept"}}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)

	require.NoError(t, os.WriteFile(file, good, 0o644))
	rep, err = as.svc.Run(ctx)
	require.NoError(t, err)
	acts = actionsOf(rep, as.leaf)
	require.Equal(t, []string{"partition.archived", "partition.dropped"}, kinds(acts))
	require.Contains(t, acts[0].Detail, "earlier run")
	require.False(t, as.leafExists(t))
}

// TestArchive_LegalHold: a month with a held event is archived whole before its other events
// are deleted; while the hold lasts nothing more happens to it; once released, the month goes,
// its remaining event checked against the archive taken before the clearing.
func TestArchive_LegalHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	as := setupArchive(t, 50)
	before := as.stored(t)
	heldEvent := as.events[10]
	hold, err := as.store.PlaceHold(ctx, store.LegalHold{CorrelationID: &heldEvent.CorrelationID, Reason: "case 4711", PlacedBy: "legal"})
	require.NoError(t, err)

	rep, err := as.svc.Run(ctx)
	require.NoError(t, err)
	acts := actionsOf(rep, as.leaf)
	require.Equal(t, []string{"partition.archived", "partition.cleared"}, kinds(acts))
	require.EqualValues(t, 50, acts[0].Rows)
	require.EqualValues(t, 49, acts[1].Rows)
	require.Equal(t, before, as.archived(t))

	rep, err = as.svc.Run(ctx)
	require.NoError(t, err)
	require.Empty(t, actionsOf(rep, as.leaf), "only held events left: nothing to archive or clear")

	_, err = as.store.ReleaseHold(ctx, hold.HoldID, "legal", "case closed")
	require.NoError(t, err)
	rep, err = as.svc.Run(ctx)
	require.NoError(t, err)
	acts = actionsOf(rep, as.leaf)
	require.Equal(t, []string{"partition.archived", "partition.dropped"}, kinds(acts))
	require.EqualValues(t, 50, acts[0].Rows, "the archive keeps every event of the month")
	require.False(t, as.leafExists(t))
	require.Equal(t, before, as.archived(t))
}

// TestArchive_Restore: an archived, dropped month loads back into a table of its own with the
// same rows, column for column, outside audit_events.
func TestArchive_Restore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	as := setupArchive(t, 700)
	// Keep a copy of the month to compare with.
	_, err := as.pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE expected AS SELECT %s FROM %s`, restoreCompareColumns, pgx.Identifier{as.leaf}.Sanitize()))
	require.NoError(t, err)
	_, err = as.svc.Run(ctx)
	require.NoError(t, err)
	require.False(t, as.leafExists(t))

	a, err := archive.Open(ctx, as.cfg.ArchiveURL, archive.Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer a.Close()
	c, err := a.Fetch(ctx, as.part)
	require.NoError(t, err)
	defer c.Close()
	table := "audit_restore_" + strings.TrimPrefix(as.leaf, "audit_events_")
	n, err := as.store.RestoreEvents(ctx, store.RestoreParams{Table: table, Events: c.Events(), Rows: c.Manifest.RowCount})
	require.NoError(t, err)
	require.EqualValues(t, 700, n)

	var missing, extra int
	require.NoError(t, as.pool.QueryRow(ctx, fmt.Sprintf(`SELECT
		(SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL SELECT %[1]s FROM %[2]s) m),
		(SELECT count(*) FROM (SELECT %[1]s FROM %[2]s EXCEPT ALL SELECT * FROM expected) x)`, restoreCompareColumns, table)).Scan(&missing, &extra))
	require.Zero(t, missing)
	require.Zero(t, extra)

	// The restored rows are not live events, and are as immutable as them.
	_, err = as.store.GetEvent(ctx, as.events[0].EventID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = as.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET actor_id = 'x'`, table))
	require.ErrorContains(t, err, "immutable")
	_, err = as.pool.Exec(ctx, fmt.Sprintf(`TRUNCATE %s`, table))
	require.ErrorContains(t, err, "immutable")

	// A second restore into the same table is refused, and leaves it as it is.
	_, err = as.store.RestoreEvents(ctx, store.RestoreParams{Table: table, Events: c.Events(), Rows: c.Manifest.RowCount})
	require.ErrorIs(t, err, store.ErrConflict)
	_, err = as.store.RestoreEvents(ctx, store.RestoreParams{Table: "audit_events_r90_2020_01", Events: c.Events()})
	require.Error(t, err, "only audit_restore_ tables")
	// A count other than the manifest's rolls the restore back.
	_, err = as.store.RestoreEvents(ctx, store.RestoreParams{Table: table + "_b", Events: c.Events(), Rows: 699})
	require.Error(t, err)
	var exists bool
	require.NoError(t, as.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table+"_b").Scan(&exists))
	require.False(t, exists)
}

// restoreCompareColumns are every column of audit_events, inet and jsonb compared as values.
const restoreCompareColumns = `event_id, event_timestamp, retention_days, received_at, duration_ms,
	is_sensitive, parent_event_id, actor_ip, version, event_type, event_category, event_action,
	event_outcome, correlation_id, actor_type, actor_id, resource_type, resource_id, resource_name,
	trace_id, span_id, namespace, cluster_id, severity, error_code, error_message, submitted_by,
	content_hash, event_data`

func TestArchive_Config(t *testing.T) {
	t.Parallel()
	cfg := testConfig
	for _, ok := range []string{"", "file:///var/lib/auditstore-archive", "s3://bucket?region=eu-west-1&prefix=audit/", "gs://bucket", "azblob://container"} {
		cfg.ArchiveURL = ok
		require.NoError(t, cfg.Validate(), ok)
	}
	for _, bad := range []string{"ftp://host/dir", "/var/lib/auditstore-archive", "::"} {
		cfg.ArchiveURL = bad
		require.ErrorContains(t, cfg.Validate(), "ARCHIVE_URL", bad)
	}
	// A runner asked to archive without an archiver does nothing rather than drop unarchived.
	cfg.ArchiveURL = "file:///var/lib/auditstore-archive"
	r := &lifecycle.Runner{Config: cfg, Classes: []int{90}, Now: time.Now}
	_, err := r.Run(context.Background(), nil)
	require.ErrorContains(t, err, "no archiver")
}
