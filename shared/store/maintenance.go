package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LeafPartition is one leaf of audit_events: a retention class and a month.
type LeafPartition struct {
	Name  string
	Class int
	// Month is the first instant (UTC) of the month the leaf holds.
	Month time.Time
	// DetachPending: a DETACH ... CONCURRENTLY was interrupted; the detach must be finalized.
	DetachPending bool
	// Detached: the table is no longer a partition (a run stopped between DETACH and DROP).
	Detached bool
}

var leafName = regexp.MustCompile(`^audit_events_r([0-9]+)_([0-9]{4})_([0-9]{2})$`)

// parseLeafName reads the class and month (its first instant, UTC) of a leaf audit_partition_name
// made; ok is false for any other name.
func parseLeafName(name string) (class int, month time.Time, ok bool) {
	m := leafName.FindStringSubmatch(name)
	if m == nil {
		return 0, time.Time{}, false
	}
	class, _ = strconv.Atoi(m[1])
	year, _ := strconv.Atoi(m[2])
	mo, _ := strconv.Atoi(m[3])
	return class, time.Date(year, time.Month(mo), 1, 0, 0, 0, 0, time.UTC), true
}

// LeafName is the name of the leaf of class and the month of t.
func LeafName(class int, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("audit_events_r%d_%04d_%02d", class, t.Year(), int(t.Month()))
}

// ListPartitions returns every leaf table: attached to its class parent, being detached, or
// left detached by a run that stopped before dropping it.
func (s *Store) ListPartitions(ctx context.Context) ([]LeafPartition, error) {
	rows, err := s.db.Query(ctx, `
		SELECT c.relname, coalesce(i.inhdetachpending, false), i.inhrelid IS NULL
		FROM pg_class c
		LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
		WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
		  AND c.relname ~ '^audit_events_r[0-9]+_[0-9]{4}_[0-9]{2}$'
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", interpretError(err))
	}
	var out []LeafPartition
	for rows.Next() {
		var name string
		var pending, detached bool
		if err := rows.Scan(&name, &pending, &detached); err != nil {
			return nil, fmt.Errorf("list partitions: %w", interpretError(err))
		}
		class, month, ok := parseLeafName(name)
		if !ok {
			continue // not one of ours: leave it alone
		}
		out = append(out, LeafPartition{Name: name, Class: class, DetachPending: pending, Detached: detached, Month: month})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list partitions: %w", interpretError(err))
	}
	return out, nil
}

// CountPartition counts a leaf's events, and those under an active legal hold.
func (s *Store) CountPartition(ctx context.Context, leaf string) (total, held int64, err error) {
	if !leafName.MatchString(leaf) {
		return 0, 0, fmt.Errorf("count partition: %q is not a leaf of audit_events", leaf)
	}
	err = s.db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), count(*) FILTER (WHERE audit_event_held(to_jsonb(e))) FROM %s e`,
		pgx.Identifier{leaf}.Sanitize())).Scan(&total, &held)
	if err != nil {
		return 0, 0, fmt.Errorf("count partition %s: %w", leaf, interpretError(err))
	}
	return total, held, nil
}

// DeleteUnheld deletes the expired events of a leaf that no legal hold covers, keeping the held
// ones (the delete guard refuses anything else). It is the one DELETE of the lifecycle, for
// the rare leaf that holds held events and so cannot be dropped whole.
func (s *Store) DeleteUnheld(ctx context.Context, leaf string, lockTimeout time.Duration) (int64, error) {
	if !leafName.MatchString(leaf) {
		return 0, fmt.Errorf("delete unheld: %q is not a leaf of audit_events", leaf)
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete unheld: %w", interpretError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := setting(ctx, tx, "lock_timeout", lockTimeout, true); err != nil {
		return 0, fmt.Errorf("delete unheld: %w", err)
	}
	tag, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s e WHERE NOT audit_event_held(to_jsonb(e))
		AND e.event_timestamp + make_interval(days => e.retention_days) <= now()`, pgx.Identifier{leaf}.Sanitize()))
	if err != nil {
		return 0, fmt.Errorf("delete unheld from %s: %w", leaf, interpretError(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("delete unheld: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}

// PruneKeys deletes idempotency keys first seen before olderThan, in batches. A later retry
// of such an event with its original timestamp is still refused by the primary key of
// audit_events (and judged by the stored content hash); one the server timestamps anew is not.
// A key the sealer has not reached yet stays: it is how the sealer finds its event.
func (s *Store) PruneKeys(ctx context.Context, olderThan time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.db.Exec(ctx, `
			DELETE FROM audit_event_keys WHERE event_id IN (
				SELECT event_id FROM audit_event_keys WHERE first_seen < $1
				AND (xid IS NULL OR pg_visible_in_snapshot(xid, (`+sealedSnapshotSQL+`))) LIMIT 10000)`, olderThan)
		if err != nil {
			return total, fmt.Errorf("prune keys: %w", interpretError(err))
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 10000 {
			return total, nil
		}
	}
}

// ErrLocked means another maintenance run holds the lock.
var ErrLocked = errors.New("another maintenance run is in progress")

// Maintenance runs partition DDL on one pinned connection, which also holds the session-level
// advisory lock that keeps runs from overlapping. DETACH ... CONCURRENTLY cannot run inside a
// transaction, so it needs a connection of its own rather than the store's DBTX.
type Maintenance struct {
	conn *pgxpool.Conn
}

// maintenanceLockKey is the advisory lock every maintenance run takes.
const maintenanceLockKey = "auditstore.maintenance"

// BeginMaintenance pins a connection of the store's pool and takes the maintenance lock, or
// returns ErrLocked.
func (s *Store) BeginMaintenance(ctx context.Context) (*Maintenance, error) {
	pool, ok := s.db.(*pgxpool.Pool)
	if !ok {
		return nil, errors.New("maintenance: the store is not over a pool (a run pins a connection of its own)")
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", interpretError(err))
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, maintenanceLockKey).Scan(&locked); err != nil {
		conn.Release()
		return nil, fmt.Errorf("maintenance: %w", interpretError(err))
	}
	if !locked {
		conn.Release()
		return nil, ErrLocked
	}
	return &Maintenance{conn: conn}, nil
}

// End releases the lock and the connection.
func (m *Maintenance) End() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext($1))`, maintenanceLockKey); err != nil {
		// The lock dies with the session: make sure the session dies.
		_ = m.conn.Conn().Close(ctx)
	}
	m.conn.Release()
}

// DetachAndDrop removes a leaf without stalling writers: DETACH ... CONCURRENTLY (SHARE
// UPDATE EXCLUSIVE on the class parent, no ACCESS EXCLUSIVE) under lockTimeout, then DROP of
// the now independent table, which no writer touches. An interrupted detach is finalized.
// Retrying after an error is safe.
func (m *Maintenance) DetachAndDrop(ctx context.Context, p LeafPartition, lockTimeout time.Duration) error {
	if !leafName.MatchString(p.Name) {
		return fmt.Errorf("detach: %q is not a leaf of audit_events", p.Name)
	}
	parent := pgx.Identifier{fmt.Sprintf("audit_events_r%d", p.Class)}.Sanitize()
	leaf := pgx.Identifier{p.Name}.Sanitize()
	if err := setting(ctx, m.conn, "lock_timeout", lockTimeout, false); err != nil {
		return fmt.Errorf("detach %s: %w", p.Name, err)
	}
	defer m.conn.Exec(context.WithoutCancel(ctx), "RESET lock_timeout") //nolint:errcheck
	if !p.Detached {
		mode := "CONCURRENTLY"
		if p.DetachPending {
			mode = "FINALIZE"
		}
		if _, err := m.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DETACH PARTITION %s %s", parent, leaf, mode)); err != nil {
			return fmt.Errorf("detach %s: %w", p.Name, interpretError(err))
		}
	}
	if _, err := m.conn.Exec(ctx, fmt.Sprintf("DROP TABLE %s", leaf)); err != nil {
		return fmt.Errorf("drop %s: %w", p.Name, interpretError(err))
	}
	return nil
}
