package store

import (
	"context"
	"fmt"
	"iter"
	"regexp"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/jackc/pgx/v5"
)

// StreamLeaf calls fn for every event of one leaf of audit_events (attached, being detached or
// detached), ordered by event_timestamp and then event_id, as PostgreSQL sends the rows, from
// one snapshot and without a statement timeout: archiving reads a whole month. It stops at fn's
// first error and returns it, and returns how many events fn saw.
func (s *Store) StreamLeaf(ctx context.Context, leaf string, fn func(*audit.Event) error) (int64, error) {
	if !leafName.MatchString(leaf) {
		return 0, fmt.Errorf("stream leaf: %q is not a leaf of audit_events", leaf)
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream leaf %s: %w", leaf, interpretError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return 0, fmt.Errorf("stream leaf %s: %w", leaf, interpretError(err))
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s ORDER BY event_timestamp, event_id`,
		selectColumns, pgx.Identifier{leaf}.Sanitize()))
	if err != nil {
		return 0, fmt.Errorf("stream leaf %s: %w", leaf, interpretError(err))
	}
	defer rows.Close()
	var n int64
	var e audit.Event
	for rows.Next() {
		e = audit.Event{}
		if err := scanEvent(rows, &e); err != nil {
			return n, fmt.Errorf("stream leaf %s: %w", leaf, interpretError(err))
		}
		if err := fn(&e); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("stream leaf %s: %w", leaf, interpretError(err))
	}
	return n, nil
}

// restoreTable is the name a restore table must have: audit_restore_<something>, so it can
// never be taken for (or collide with) a partition of audit_events.
var restoreTable = regexp.MustCompile(`^audit_restore_[a-z0-9_]{1,49}$`)

// RestoreParams are the arguments of RestoreEvents.
type RestoreParams struct {
	// Table is the table to create: audit_restore_ and 1 to 49 of a-z, 0-9, _.
	Table string
	// Events are the events to load, e.g. an archived month (archive.Copy.Events).
	Events iter.Seq2[*audit.Event, error]
	// Rows is how many events there must be; another number rolls the restore back.
	Rows int64
}

// RestoreEvents creates p.Table shaped like audit_events — columns, defaults, checks, primary
// key and indexes — and COPYs p.Events into it, all in one transaction: the table appears with
// every event or not at all. It fails with ErrConflict when the table exists.
//
// The table stands outside the partition tree, so restored events never mix with live ones:
// queries of audit_events, retention and the write path's duplicate checks do not see them, and
// dropping the table when the investigation ends removes nothing else. It carries the same
// immutability triggers as audit_events (no UPDATE, no TRUNCATE, no DELETE of a held event), so
// the copy stays what the archive holds; DROP TABLE disposes of it. auditstore_reader may read it.
func (s *Store) RestoreEvents(ctx context.Context, p RestoreParams) (int64, error) {
	table := p.Table
	if !restoreTable.MatchString(table) {
		return 0, fmt.Errorf("restore: table %q is not audit_restore_ followed by 1 to 49 of a-z, 0-9, _", table)
	}
	t := pgx.Identifier{table}.Sanitize()
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", interpretError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return 0, fmt.Errorf("restore: %w", interpretError(err))
	}
	if exists {
		return 0, fmt.Errorf("restore: %w: table %s already exists; name another or drop it", ErrConflict, table)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
		return 0, fmt.Errorf("restore: %w", interpretError(err))
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING STORAGE)`, t)); err != nil {
		return 0, fmt.Errorf("restore: create %s: %w", table, interpretError(err))
	}
	next, stop := iter.Pull2(p.Events)
	defer stop()
	row := make([]any, len(copyColumns))
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, copyColumns, pgx.CopyFromFunc(func() ([]any, error) {
		e, err, ok := next()
		if !ok || err != nil {
			return nil, err
		}
		return row, eventValues(row, e)
	}))
	if err != nil {
		return 0, fmt.Errorf("restore: copy into %s: %w", table, interpretError(err))
	}
	if n != p.Rows {
		return 0, fmt.Errorf("restore: %d events to load into %s, %d expected: nothing restored", n, table, p.Rows)
	}
	for _, stmt := range []string{
		`CREATE TRIGGER audit_restore_immutable BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION audit_events_guard()`,
		`CREATE TRIGGER audit_restore_no_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION audit_events_guard()`,
		`ALTER TABLE %s ENABLE ALWAYS TRIGGER audit_restore_immutable`,
		`ALTER TABLE %s ENABLE ALWAYS TRIGGER audit_restore_no_truncate`,
		`GRANT SELECT ON %s TO auditstore_reader`,
	} {
		if _, err := tx.Exec(ctx, fmt.Sprintf(stmt, t)); err != nil {
			return 0, fmt.Errorf("restore: %s: %w", table, interpretError(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("restore: %w", interpretError(err))
	}
	return n, nil
}
