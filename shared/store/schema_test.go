package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// rawInsert inserts one row with plain SQL, bypassing the store's validation, with one column
// overridden: the database's own CHECKs are under test.
func rawInsert(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, column, value string) error {
	cols := map[string]string{
		"event_id": "gen_random_uuid()", "event_timestamp": "now()", "retention_days": "90",
		"version": "'1.0'", "event_type": "'gateway.signal.received'", "event_category": "'gateway'",
		"event_action": "'received'", "event_outcome": "'success'", "correlation_id": "'rr-1'",
		"actor_type": "'service'", "actor_id": "'gateway'", "submitted_by": "'gateway'",
		"content_hash": "sha256('x')", "event_data": `'{"a":1}'`,
	}
	if column != "" {
		cols[column] = value
	}
	var names, values []string
	for k, v := range cols {
		names = append(names, k)
		values = append(values, v)
	}
	_, err := db.Exec(ctx, fmt.Sprintf(`INSERT INTO audit_events (%s) VALUES (%s)`, strings.Join(names, ","), strings.Join(values, ",")))
	return err
}

func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func TestSchema_ChecksRejectBadRows(t *testing.T) {
	t.Parallel()
	_, pool := setup(t)
	ctx := context.Background()

	require.NoError(t, rawInsert(ctx, pool, "", ""), "the baseline row is valid")
	long := func(n int) string { return "'" + strings.Repeat("a", n) + "'" }
	cases := []struct{ column, value, constraint string }{
		{"version", "''", "audit_events_version_len"},
		{"event_type", "'Gateway.Signal'", "audit_events_event_type_format"},
		{"event_type", "'gateway'", "audit_events_event_type_format"},
		{"event_type", "'a.' || repeat('b', 100)", "audit_events_event_type_format"},
		{"event_category", "''", "audit_events_event_category_len"},
		{"event_action", long(101), "audit_events_event_action_len"},
		{"event_outcome", "'ok'", "audit_events_event_outcome_enum"},
		{"correlation_id", "''", "audit_events_correlation_id_len"},
		{"correlation_id", long(256), "audit_events_correlation_id_len"},
		{"actor_type", "''", "audit_events_actor_type_len"},
		{"actor_id", long(256), "audit_events_actor_id_len"},
		{"resource_type", long(101), "audit_events_resource_type_len"},
		{"resource_id", long(256), "audit_events_resource_id_len"},
		{"resource_name", long(256), "audit_events_resource_name_len"},
		{"trace_id", long(256), "audit_events_trace_id_len"},
		{"span_id", long(256), "audit_events_span_id_len"},
		{"namespace", long(254), "audit_events_namespace_len"},
		{"cluster_id", long(254), "audit_events_cluster_id_len"},
		{"severity", "'fatal'", "audit_events_severity_enum"},
		{"duration_ms", "-1", "audit_events_duration_ms_range"},
		{"error_code", long(101), "audit_events_error_code_len"},
		{"error_message", long(4097), "audit_events_error_message_len"},
		{"submitted_by", "''", "audit_events_submitted_by_len"},
		{"content_hash", "'\\x00'::bytea", "audit_events_content_hash_len"},
		{"event_data", `'[1,2]'`, "audit_events_event_data_object"},
	}
	for _, tc := range cases {
		t.Run(tc.column+"="+tc.value[:min(len(tc.value), 20)], func(t *testing.T) {
			err := rawInsert(ctx, pool, tc.column, tc.value)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "23514", pgErr.Code)
			require.Equal(t, tc.constraint, pgErr.ConstraintName)
		})
	}
	// retention_days outside every class has no partition, and outside 90..2557 is refused.
	require.Equal(t, "23514", sqlstate(rawInsert(ctx, pool, "retention_days", "30")))
	require.Equal(t, "23502", sqlstate(rawInsert(ctx, pool, "event_data", "NULL")))
}

func TestSchema_StoredEventsAreImmutable(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()

	fresh := audittest.Event(t, nil)
	expired := audittest.Event(t, &audittest.EventOpts{EventTimestamp: time.Now().AddDate(0, 0, -100), RetentionDays: 90})
	held := audittest.Event(t, &audittest.EventOpts{EventTimestamp: time.Now().AddDate(0, 0, -100), RetentionDays: 90})
	insert(t, s, fresh, expired, held)
	_, err := pool.Exec(ctx, `INSERT INTO audit_legal_holds (hold_id, correlation_id, reason, placed_by) VALUES (gen_random_uuid(), $1, 'litigation', 'admin')`, held.CorrelationID)
	require.NoError(t, err)

	leaf := func(id any) string {
		var name string
		require.NoError(t, pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM audit_events WHERE event_id = $1`, id).Scan(&name))
		return name
	}
	refused := func(t *testing.T, sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.Error(t, err, sql)
		require.Equal(t, "AS001", sqlstate(err), "%s: %v", sql, err)
	}
	for _, role := range []string{"origin", "replica"} {
		t.Run("session_replication_role="+role, func(t *testing.T) {
			// Every statement runs in its own session here: pin one to keep the setting.
			conn, err := pool.Acquire(ctx)
			require.NoError(t, err)
			defer conn.Release()
			_, err = conn.Exec(ctx, "SET session_replication_role = "+role)
			require.NoError(t, err)
			defer conn.Exec(ctx, "RESET session_replication_role") //nolint:errcheck
			refused := func(sql string, args ...any) {
				t.Helper()
				_, err := conn.Exec(ctx, sql, args...)
				require.Error(t, err, sql)
				require.Equal(t, "AS001", sqlstate(err), "%s: %v", sql, err)
			}
			refused(`UPDATE audit_events SET event_outcome = 'failure' WHERE event_id = $1`, fresh.EventID)
			refused(fmt.Sprintf(`UPDATE %s SET event_outcome = 'failure' WHERE event_id = $1`, leaf(fresh.EventID)), fresh.EventID)
			// A cross-partition move is an UPDATE too.
			refused(`UPDATE audit_events SET retention_days = 180 WHERE event_id = $1`, fresh.EventID)
			refused(`DELETE FROM audit_events WHERE event_id = $1`, fresh.EventID)
			refused(`DELETE FROM audit_events WHERE event_id = $1`, held.EventID)
			refused(`TRUNCATE audit_events`)
			refused(fmt.Sprintf(`TRUNCATE %s`, leaf(fresh.EventID)))
		})
	}
	refused(t, `DELETE FROM audit_events WHERE event_id = $1`, fresh.EventID)

	// An expired, unheld event may go.
	tag, err := pool.Exec(ctx, `DELETE FROM audit_events WHERE event_id = $1`, expired.EventID)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	// Releasing the hold lets the held one go too.
	_, err = pool.Exec(ctx, `UPDATE audit_legal_holds SET released_at = now(), released_by = 'admin', release_reason = 'case closed'`)
	require.NoError(t, err)
	tag, err = pool.Exec(ctx, `DELETE FROM audit_events WHERE event_id = $1`, held.EventID)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	require.Equal(t, 1, countRows(t, pool, fresh.EventID))
}

func TestSchema_RolesHoldOnlyTheirRights(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()
	e := audittest.Event(t, nil)
	insert(t, s, e)

	asRole := func(role string, fn func(tx pgx.Tx)) {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, "SET LOCAL ROLE "+role)
		require.NoError(t, err)
		fn(tx)
	}
	denied := func(tx pgx.Tx, sql string, args ...any) {
		t.Helper()
		_, err := tx.Exec(ctx, "SAVEPOINT s")
		require.NoError(t, err)
		_, err = tx.Exec(ctx, sql, args...)
		require.Equal(t, "42501", sqlstate(err), "%s: %v", sql, err) // insufficient_privilege
		_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s")
		require.NoError(t, err)
	}
	now := time.Now().UTC()
	leaf := fmt.Sprintf("audit_events_r2557_%04d_%02d", now.Year(), now.Month())

	asRole("auditstore_writer", func(tx pgx.Tx) {
		require.NoError(t, rawInsert(ctx, tx, "", ""))
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&n))
		require.Equal(t, 2, n)
		// Writers can make a missing month through the owner's function, nothing else.
		_, err := tx.Exec(ctx, `SELECT audit_create_partitions($1::date, $1::date, ARRAY[365])`, now.AddDate(3, 0, 0).Format(time.DateOnly))
		require.NoError(t, err)
		denied(tx, `UPDATE audit_events SET event_outcome = 'failure'`)
		denied(tx, `DELETE FROM audit_events`)
		denied(tx, `TRUNCATE audit_events`)
		denied(tx, "TRUNCATE "+leaf)
		denied(tx, "DROP TABLE "+leaf)
		denied(tx, "ALTER TABLE audit_events_r2557 DETACH PARTITION "+leaf)
		denied(tx, "ALTER TABLE audit_events DISABLE TRIGGER audit_events_immutable")
		denied(tx, "SET session_replication_role = replica")
		denied(tx, `INSERT INTO audit_legal_holds (hold_id, correlation_id, reason, placed_by) VALUES (gen_random_uuid(), 'x', 'r', 'w')`)
	})
	// A month made after the migrations: the reader may read it by name too, as queries do.
	later := now.AddDate(1, 0, 0)
	_, err := s.CreatePartitions(ctx, later, later, []int{90})
	require.NoError(t, err)
	// And, like every month, the larger statistics sample of event_data its plans rely on.
	for _, l := range []string{leaf, fmt.Sprintf("audit_events_r90_%04d_%02d", later.Year(), later.Month())} {
		var target int
		require.NoError(t, pool.QueryRow(ctx, `SELECT attstattarget FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'event_data'`, l).Scan(&target))
		require.Equal(t, 500, target, l)
	}
	asRole("auditstore_reader", func(tx pgx.Tx) {
		var n int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&n))
		require.Equal(t, 1, n)
		for _, l := range []string{leaf, fmt.Sprintf("audit_events_r90_%04d_%02d", later.Year(), later.Month())} {
			require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM `+l).Scan(&n), l)
		}
		page, err := store.New(tx).QueryEvents(ctx, store.QueryParams{Filter: store.Filter{ActorIDs: []string{e.ActorID}}, Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Events, 1)
		denied(tx, `INSERT INTO audit_event_keys (event_id, event_timestamp, retention_days, content_hash) VALUES (gen_random_uuid(), now(), 90, sha256('x'))`)
		require.Equal(t, "42501", sqlstate(rawInsert(ctx, tx, "", "")))
	})
}
