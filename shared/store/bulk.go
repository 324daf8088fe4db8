package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
)

// CopyParams are the arguments of CopyEvents.
type CopyParams struct {
	// Events are complete, prepared events with ids that are not stored yet.
	Events []audit.Event
	// KeysSince: events at or after it also get an idempotency key (what the write path
	// would have left after pruning); zero: no keys.
	KeysSince time.Time
}

// CopyEvents bulk-loads events that are known to be new (a restore from an archive, a seeding
// tool) with COPY in one transaction, creating missing partitions first. It does no duplicate
// detection: an id already stored fails the whole call with ErrConflict.
func (s *Store) CopyEvents(ctx context.Context, p CopyParams) error {
	keys := make(map[partitionKey]struct{})
	for i := range p.Events {
		keys[keyOf(p.Events[i].RetentionDays, p.Events[i].EventTimestamp)] = struct{}{}
	}
	if err := s.ensurePartitions(ctx, keys); err != nil {
		return fmt.Errorf("copy events: %w", err)
	}
	tx, err := s.beginCopy(ctx)
	if err != nil {
		return fmt.Errorf("copy events: %w", err)
	}
	defer tx.end(context.WithoutCancel(ctx))
	all := make([]int, len(p.Events))
	for i := range all {
		all[i] = i
	}
	if err := copyEventRows(ctx, tx, p.Events, all, p.KeysSince.IsZero()); err != nil {
		return fmt.Errorf("copy events: %w", interpretError(err))
	}
	if !p.KeysSince.IsZero() {
		var recent []int
		for i := range p.Events {
			if !p.Events[i].EventTimestamp.Before(p.KeysSince) {
				recent = append(recent, i)
			}
		}
		if err := copyKeys(ctx, tx, p.Events, recent); errors.Is(err, errKeyTaken) {
			return fmt.Errorf("copy events: %w: an event id is already stored", ErrConflict)
		} else if err != nil {
			return fmt.Errorf("copy events: keys: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("copy events: %w", interpretError(err))
	}
	return nil
}
