package store

import (
	"context"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
)

// EventKey is where a stored event's row is: its id and partition key, as the integrity log
// records them for each sealed event.
type EventKey struct {
	EventID        uuid.UUID
	EventTimestamp time.Time
	RetentionDays  int
}

// EventsAt returns the events audit_events holds at keys, in one statement whose every row is
// read through its own partition; a key whose row is gone (its month moved to the cold tier or
// expired) has no event in the result.
func (s *Store) EventsAt(ctx context.Context, keys []EventKey) ([]audit.Event, error) {
	ids := make([]uuid.UUID, len(keys))
	ts := make([]time.Time, len(keys))
	classes := make([]int32, len(keys))
	for i, k := range keys {
		ids[i], ts[i], classes[i] = k.EventID, k.EventTimestamp, int32(k.RetentionDays)
	}
	rows, err := s.db.Query(ctx, `SELECT `+selectColumns+` FROM unnest($1::uuid[], $2::timestamptz[], $3::int[]) AS k(id, ts, cls)
JOIN audit_events ON event_id = k.id AND event_timestamp = k.ts AND retention_days = k.cls`, ids, ts, classes)
	if err != nil {
		return nil, fmt.Errorf("events at: %w", interpretError(err))
	}
	defer rows.Close()
	var out []audit.Event
	for rows.Next() {
		var e audit.Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, fmt.Errorf("events at: %w", interpretError(err))
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events at: %w", interpretError(err))
	}
	return out, nil
}
