package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
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
	// Cold are the erasures of events read from cold files (not in EventIDs): each already
	// decided, its file already rewritten into one of Swaps. They are recorded with the rest,
	// each checked again against the legal holds in the transaction.
	Cold []ColdErasure
	// Swaps replace cold files in the catalogue, in the erasure's transaction: a query reads
	// either every old file or every new one, never both and never neither.
	Swaps []ColdSwap
}

// ColdErasure is an erased event of the cold tier: the event as it was read from its file
// (what legal holds are matched against), the members erased of it and its content hash once
// erased.
type ColdErasure struct {
	Event       audit.Event
	Members     []string
	ContentHash []byte
}

// ColdSwap replaces a cold file (known by its key and SHA-256, so a file another erasure or an
// expiry changed meanwhile is a conflict, not overwritten) with the files rewritten from it.
type ColdSwap struct {
	Old ColdFile
	New []ColdFile
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
	if err := eraseCold(ctx, tx, &p, er, &out); err != nil {
		return er, nil, err
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

// eraseCold swaps p's cold files in the catalogue and records p's cold erasures, in tx.
func eraseCold(ctx context.Context, tx pgx.Tx, p *EraseParams, er Erasure, out *[]ErasedEvent) error {
	for _, sw := range p.Swaps {
		tag, err := tx.Exec(ctx, `DELETE FROM audit_cold_files WHERE key = $1 AND sha256 = $2`, sw.Old.Key, sw.Old.SHA256)
		if err != nil {
			return fmt.Errorf("erase: cold file %s: %w", sw.Old.Key, interpretError(err))
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("erase: cold file %s was replaced or expired meanwhile: %w", sw.Old.Key, ErrConflict)
		}
		if err := New(tx).RecordColdFiles(ctx, sw.New); err != nil {
			return fmt.Errorf("erase: %w", err)
		}
	}
	for _, c := range p.Cold {
		e := &c.Event
		doc, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("erase: event %s: %w", e.EventID, err)
		}
		// The hold that refuses it may have been placed since the event was decided.
		var held bool
		if err := tx.QueryRow(ctx, `SELECT audit_event_held(`+heldRow+`)`, string(doc)).Scan(&held); err != nil {
			return fmt.Errorf("erase: event %s: legal holds: %w", e.EventID, interpretError(err))
		}
		if held {
			return fmt.Errorf("erase: event %s: %w", e.EventID, ErrHeld)
		}
		if _, err := tx.Exec(ctx, `UPDATE audit_event_keys SET content_hash = $2 WHERE event_id = $1`, e.EventID, c.ContentHash); err != nil {
			return fmt.Errorf("erase: event %s: key: %w", e.EventID, interpretError(err))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_erasures (erasure_id, event_id, event_timestamp, retention_days, members, reason, erased_by, erased_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, er.ErasureID, e.EventID, e.EventTimestamp, e.RetentionDays, c.Members, p.Reason, p.ErasedBy, er.ErasedAt); err != nil {
			return fmt.Errorf("erase: event %s: record: %w", e.EventID, interpretError(err))
		}
		*out = append(*out, ErasedEvent{EventID: e.EventID, EventTimestamp: e.EventTimestamp, Members: c.Members})
	}
	return nil
}

// heldRow is the row JSON audit_event_held takes, made from an event's JSON ($1) as CountHeld
// makes it.
const heldRow = `to_jsonb(jsonb_populate_record(NULL::audit_events, $1::jsonb - 'event_hash' - 'hash_version' - 'withheld'))`

// HoldOn returns the active legal hold that covers e (the oldest), or nil: for an event read
// from a cold file, which audit_events no longer holds. It asks what audit_event_held asks.
func (s *Store) HoldOn(ctx context.Context, e *audit.Event) (*LegalHold, error) {
	doc, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("legal hold of %s: %w", e.EventID, err)
	}
	h, err := scanHold(s.db.QueryRow(ctx, `WITH ev AS (SELECT `+heldRow+` AS p)
SELECT `+holdColumns+` FROM audit_legal_holds h, ev
WHERE h.released_at IS NULL
  AND (h.correlation_id IS NULL OR h.correlation_id = ev.p->>'correlation_id')
  AND (h.filter IS NULL OR ev.p @> h.filter)
  AND (h.since IS NULL OR (ev.p->>'event_timestamp')::timestamptz >= h.since)
  AND (h.until IS NULL OR (ev.p->>'event_timestamp')::timestamptz < h.until)
ORDER BY h.placed_at LIMIT 1`, string(doc)))
	switch err = interpretError(err); {
	case err == nil:
		return &h, nil
	case errors.Is(err, ErrNotFound):
		return nil, nil
	}
	return nil, fmt.Errorf("legal hold of %s: %w", e.EventID, err)
}

// EventPlace says where a stored event is: its partition key, and whether a partition holds it
// (hot) or only the cold tier may.
type EventPlace struct {
	EventTimestamp time.Time
	RetentionDays  int
	Hot            bool
}

// PlaceEvents returns the place of each of ids that audit_events holds or the integrity log
// sealed (an event is sealed before its month moves to the cold tier); an id in neither is
// not in the map.
func (s *Store) PlaceEvents(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]EventPlace, error) {
	out := make(map[uuid.UUID]EventPlace, len(ids))
	rows, err := s.db.Query(ctx, `SELECT event_id, event_timestamp, retention_days FROM audit_events WHERE event_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("place events: %w", interpretError(err))
	}
	for rows.Next() {
		var id uuid.UUID
		var p EventPlace
		if err := rows.Scan(&id, &p.EventTimestamp, &p.RetentionDays); err != nil {
			rows.Close()
			return nil, fmt.Errorf("place events: %w", interpretError(err))
		}
		p.Hot = true
		out[id] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("place events: %w", interpretError(err))
	}
	var rest []uuid.UUID
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		return out, nil
	}
	leaves, err := s.LeavesOf(ctx, rest)
	if err != nil {
		return nil, fmt.Errorf("place events: %w", err)
	}
	for _, l := range leaves {
		out[l.EventID] = EventPlace{EventTimestamp: l.EventTimestamp.UTC(), RetentionDays: l.RetentionDays}
	}
	return out, nil
}

// JSONBText returns doc as PostgreSQL's jsonb writes it: an event erased in a cold file keeps
// event_data in the form every other event of the tier has.
func (s *Store) JSONBText(ctx context.Context, doc json.RawMessage) (json.RawMessage, error) {
	var out string
	if err := s.db.QueryRow(ctx, `SELECT $1::jsonb::text`, string(doc)).Scan(&out); err != nil {
		return nil, fmt.Errorf("jsonb text: %w", interpretError(err))
	}
	return json.RawMessage(out), nil
}
