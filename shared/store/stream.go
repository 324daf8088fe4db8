package store

import (
	"context"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
)

// StreamParams are the arguments of StreamEvents.
type StreamParams struct {
	Filter
	Order Order
	// Timeout bounds the whole statement (0: none); an export may run far longer than a page.
	Timeout time.Duration
}

// StreamEvents calls fn for every event matching p, in order, as PostgreSQL sends the rows:
// memory stays constant whatever the result size. It stops at fn's first error and returns it,
// and stops when ctx ends (a client that went away). It returns how many events fn saw.
func (s *Store) StreamEvents(ctx context.Context, p StreamParams, fn func(*audit.Event) error) (int64, error) {
	var args []any
	where := p.where(&args)
	dir := "ASC"
	if p.Order == Descending {
		dir = "DESC"
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream events: %w", interpretError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if err := setting(ctx, tx, "statement_timeout", p.Timeout, true); err != nil {
		return 0, fmt.Errorf("stream events: %w", err)
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s FROM audit_events WHERE %s ORDER BY event_timestamp %s, event_id %s`,
		selectColumns, where, dir, dir), customPlan(args)...)
	if err != nil {
		return 0, fmt.Errorf("stream events: %w", interpretError(err))
	}
	defer rows.Close()
	var n int64
	var e audit.Event
	for rows.Next() {
		e = audit.Event{}
		if err := scanEvent(rows, &e); err != nil {
			return n, fmt.Errorf("stream events: %w", interpretError(err))
		}
		if err := fn(&e); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("stream events: %w", interpretError(err))
	}
	return n, nil
}
