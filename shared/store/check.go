package store

import (
	"context"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// UnsealedKeys returns which of the ids have a key waiting for the sealer: events written
// through auditstore and not yet in the log. An event with neither a leaf nor such a key was
// not written through auditstore (or before tamper evidence).
func (s *Store) UnsealedKeys(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	raw := make([][16]byte, len(ids))
	for i, id := range ids {
		raw[i] = id
	}
	return s.idSet(ctx, "unsealed keys", `SELECT event_id FROM audit_event_keys
WHERE event_id = ANY($1::uuid[]) AND xid IS NOT NULL
  AND NOT coalesce(pg_visible_in_snapshot(xid, (`+sealedSnapshotSQL+`)), false)`, raw)
}

// idSet runs a query of event ids and returns them as a set.
func (s *Store) idSet(ctx context.Context, what, sql string, args ...any) (map[uuid.UUID]bool, error) {
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	out := map[uuid.UUID]bool{}
	var id [16]byte
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		out[id] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	return out, nil
}

// HeldEvents returns which of the events an active legal hold covers, decided by the same SQL
// function the delete guard asks, so the answer and the guard cannot disagree.
func (s *Store) HeldEvents(ctx context.Context, events []audit.Event) (map[uuid.UUID]bool, error) {
	if len(events) == 0 {
		return map[uuid.UUID]bool{}, nil
	}
	ids := make([][16]byte, len(events))
	ts := make([]time.Time, len(events))
	classes := make([]int32, len(events))
	for i, e := range events {
		ids[i], ts[i], classes[i] = e.EventID, e.EventTimestamp, int32(e.RetentionDays)
	}
	return s.idSet(ctx, "held events", `SELECT e.event_id FROM audit_events e
JOIN unnest($1::uuid[], $2::timestamptz[], $3::integer[]) AS k(id, ts, class)
  ON e.event_id = k.id AND e.event_timestamp = k.ts AND e.retention_days = k.class
WHERE EXISTS (SELECT 1 FROM audit_legal_holds WHERE released_at IS NULL) AND audit_event_held(to_jsonb(e))`, ids, ts, classes)
}
