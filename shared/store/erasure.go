package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
)

// ErrHeld means an active legal hold covers an event: it may be neither deleted nor erased.
var ErrHeld = errors.New("the event is under legal hold")

// Erasure is one erasure: who erased, why and when.
type Erasure struct {
	ErasureID uuid.UUID `json:"erasure_id"`
	Reason    string    `json:"reason"`
	ErasedBy  string    `json:"erased_by"`
	ErasedAt  time.Time `json:"erased_at"`
}

// ErasedEvent is an event an erasure changed, and the members it erased of it.
type ErasedEvent struct {
	EventID        uuid.UUID `json:"event_id"`
	EventTimestamp time.Time `json:"event_timestamp"`
	Members        []string  `json:"members"`
}

// EraseParams are the arguments of Erase.
type EraseParams struct {
	EventIDs []uuid.UUID
	Reason   string
	ErasedBy string
	// Decide is given each event, read and locked, with the active legal hold that covers it
	// (nil: none), and returns the event as it is to be stored and the members it erased; an
	// error stops the erasure, and nothing of it is stored.
	Decide func(e audit.Event, hold *LegalHold) (audit.Event, []string, error)
	// Record, when set, returns the erasure's own audit event, stored in the same transaction:
	// an erasure is never without its record.
	Record func(Erasure, []ErasedEvent) (audit.Event, error)
}

// Erase changes the events p names as p.Decide says, in one transaction with the erasure's
// rows in audit_erasures and its record. An id that is not stored is ErrNotFound (naming it).
// Only an erasure passes the immutability guard, and only for an event not under legal hold
// (checked again by the guard itself, so a hold placed meanwhile still refuses it: ErrHeld).
func (s *Store) Erase(ctx context.Context, p EraseParams) (Erasure, []ErasedEvent, error) {
	er := Erasure{ErasureID: uuid.Must(uuid.NewV7()), Reason: p.Reason, ErasedBy: p.ErasedBy}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return er, nil, fmt.Errorf("erase: %w", interpretError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&er.ErasedAt); err != nil {
		return er, nil, fmt.Errorf("erase: %w", interpretError(err))
	}
	er.ErasedAt = er.ErasedAt.UTC()
	var out []ErasedEvent
	for _, id := range p.EventIDs {
		var e audit.Event
		if err := scanEvent(tx.QueryRow(ctx, `SELECT `+selectColumns+` FROM audit_events WHERE event_id = $1 FOR UPDATE`, id), &e); err != nil {
			if errors.Is(interpretError(err), ErrNotFound) {
				return er, nil, fmt.Errorf("erase: event %s: %w", id, ErrNotFound)
			}
			return er, nil, fmt.Errorf("erase: event %s: %w", id, interpretError(err))
		}
		hold, err := scanHold(tx.QueryRow(ctx, `SELECT `+holdColumns+` FROM audit_legal_holds h
WHERE h.released_at IS NULL
  AND (h.correlation_id IS NULL OR h.correlation_id = $4)
  AND (h.filter IS NULL OR (SELECT to_jsonb(e) FROM audit_events e
       WHERE e.event_id = $1 AND e.event_timestamp = $2 AND e.retention_days = $3) @> h.filter)
  AND (h.since IS NULL OR $2 >= h.since)
  AND (h.until IS NULL OR $2 < h.until)
ORDER BY h.placed_at LIMIT 1`, id, e.EventTimestamp, e.RetentionDays, e.CorrelationID))
		var held *LegalHold
		switch err = interpretError(err); {
		case err == nil:
			held = &hold
		case !errors.Is(err, ErrNotFound):
			return er, nil, fmt.Errorf("erase: event %s: legal holds: %w", id, err)
		}
		erased, members, err := p.Decide(e, held)
		if err != nil {
			return er, nil, err
		}
		if len(members) == 0 {
			continue
		}
		var data, kept any
		data, kept = string(erased.EventData), string(erased.HashMembers)
		if _, err := tx.Exec(ctx, `SELECT set_config('auditstore.erasing', $1, true)`, id.String()); err != nil {
			return er, nil, fmt.Errorf("erase: %w", interpretError(err))
		}
		_, err = tx.Exec(ctx, `UPDATE audit_events SET event_data = $4::jsonb, actor_id = $5, actor_ip = $6::inet,
	content_hash = $7, hash_salt = $8, hash_members = $9::jsonb
WHERE event_id = $1 AND event_timestamp = $2 AND retention_days = $3`,
			id, e.EventTimestamp, e.RetentionDays, data, erased.ActorID, erased.ActorIP, erased.ContentHash, erased.HashSalt, kept)
		if err != nil {
			return er, nil, fmt.Errorf("erase: event %s: %w", id, interpretError(err))
		}
		// The idempotency key keeps a content hash too (for a retry within its window).
		if _, err := tx.Exec(ctx, `UPDATE audit_event_keys SET content_hash = $2 WHERE event_id = $1`, id, erased.ContentHash); err != nil {
			return er, nil, fmt.Errorf("erase: event %s: key: %w", id, interpretError(err))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_erasures (erasure_id, event_id, event_timestamp, retention_days, members, reason, erased_by, erased_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, er.ErasureID, id, e.EventTimestamp, e.RetentionDays, members, p.Reason, p.ErasedBy, er.ErasedAt); err != nil {
			return er, nil, fmt.Errorf("erase: event %s: record: %w", id, interpretError(err))
		}
		out = append(out, ErasedEvent{EventID: id, EventTimestamp: e.EventTimestamp, Members: members})
	}
	if p.Record != nil && len(out) > 0 {
		rec, err := p.Record(er, out)
		if err != nil {
			return er, nil, fmt.Errorf("erase: record: %w", err)
		}
		if _, _, err := New(tx).InsertEvents(ctx, InsertParams{Events: []audit.Event{rec}}); err != nil {
			return er, nil, fmt.Errorf("erase: record: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return er, nil, fmt.Errorf("erase: %w", interpretError(err))
	}
	return er, out, nil
}

// Erasures lists the erasures of an event, oldest first, with the members each erased.
func (s *Store) Erasures(ctx context.Context, eventID uuid.UUID) ([]Erasure, [][]string, error) {
	rows, err := s.db.Query(ctx, `SELECT erasure_id, reason, erased_by, erased_at, members FROM audit_erasures
WHERE event_id = $1 ORDER BY erased_at, erasure_id`, eventID)
	if err != nil {
		return nil, nil, fmt.Errorf("erasures: %w", interpretError(err))
	}
	defer rows.Close()
	var out []Erasure
	var members [][]string
	for rows.Next() {
		var e Erasure
		var m []string
		if err := rows.Scan(&e.ErasureID, &e.Reason, &e.ErasedBy, &e.ErasedAt, &m); err != nil {
			return nil, nil, fmt.Errorf("erasures: %w", interpretError(err))
		}
		out = append(out, e)
		members = append(members, m)
	}
	return out, members, interpretError(rows.Err())
}
