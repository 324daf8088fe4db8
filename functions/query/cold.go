package query

import (
	"context"
	"fmt"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/store"
)

// WithColdTier makes every read answer across the partitions and the cold tier that r reads
// (months moved to object storage by maintenance, HOT_MONTHS), as Config.ArchiveURL does.
func WithColdTier(r *cold.Reader) Option {
	return func(h *Handler) { h.cold = r }
}

// useColdTier wraps the handler's stores (the primary's and the replica's) so their reads
// cover the cold tier, opening it at Config.ArchiveURL unless WithColdTier gave one. A store
// that has no catalogue (a test double) is left as it is.
func (h *Handler) useColdTier() error {
	if h.cold == nil && h.cfg.ArchiveURL != "" {
		b, err := archive.OpenBucket(context.Background(), h.cfg.ArchiveURL)
		if err != nil {
			return fmt.Errorf("ARCHIVE_URL: %w", err)
		}
		h.cold, h.closeCold = cold.NewReader(b, 0), b.Close
	}
	if h.cold == nil {
		return nil
	}
	if hot, ok := h.store.(cold.Hot); ok {
		h.store = cold.NewTiered(hot, h.cold)
	}
	if h.replica != nil {
		if hot, ok := h.replica.store.(cold.Hot); ok {
			h.replica.store = tieredReplica{Tiered: cold.NewTiered(hot, h.cold), replay: h.replica.store}
		}
	}
	return nil
}

// tieredReplica is a replica's store read across both tiers; its replay position is the
// replica's.
type tieredReplica struct {
	*cold.Tiered
	replay interface {
		ReplayPosition(ctx context.Context) (store.Replay, error)
	}
}

// ReplayPosition is the replica's.
func (t tieredReplica) ReplayPosition(ctx context.Context) (store.Replay, error) {
	return t.replay.ReplayPosition(ctx)
}
