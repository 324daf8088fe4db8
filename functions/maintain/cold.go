package maintain

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
)

// coldTier moves months older than HOT_MONTHS to the cold tier at ARCHIVE_URL for the runner.
// Like archiver, it opens the bucket on first use, so a bucket that cannot be opened fails a
// run (and keeps its partitions), not the process.
type coldTier struct {
	url   string
	store *store.Store

	mu     sync.Mutex
	mover  *cold.Mover
	events *cold.Tiered
}

func (c *coldTier) open(ctx context.Context) (*cold.Mover, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mover == nil {
		b, err := archive.OpenBucket(ctx, c.url)
		if err != nil {
			return nil, fmt.Errorf("ARCHIVE_URL: %w", err)
		}
		c.mover = &cold.Mover{Store: c.store, Tier: archive.NewCold(b, archive.ColdOptions{})}
		c.events = cold.NewTiered(c.store, cold.NewReader(b, 0))
	}
	return c.mover, nil
}

// countEvents counts the events of both tiers matching f: a legal hold placed on a
// correlation whose events are all cold covers them (expiry keeps their files), so it is not
// a hold on nothing.
func (s *Service) countEvents(ctx context.Context, f store.Filter) (int64, error) {
	c, ok := s.runner.Cold.(*coldTier)
	if !ok {
		return s.store.CountEvents(ctx, f)
	}
	if _, err := c.open(ctx); err != nil {
		return 0, err
	}
	return c.events.CountEvents(ctx, f)
}

func (c *coldTier) MoveCold(ctx context.Context, leaf store.LeafPartition, ddl lifecycle.DDL, lockTimeout time.Duration) (lifecycle.Moved, error) {
	m, err := c.open(ctx)
	if err != nil {
		return lifecycle.Moved{}, err
	}
	return m.MoveCold(ctx, leaf, ddl, lockTimeout)
}

func (c *coldTier) ExpireCold(ctx context.Context, expired func(class int, month time.Time) bool) ([]lifecycle.Action, error) {
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	return m.ExpireCold(ctx, expired)
}

// coldMonths tells the sealed events whose class and month are in the cold tier: verify counts
// them as cold (verify -archive checks them in their files), not as deleted.
func (s *Service) coldMonths(ctx context.Context) (func(store.Leaf) bool, error) {
	files, err := s.store.ColdFiles(ctx)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	type month struct {
		class int
		month time.Time
	}
	cold := map[month]bool{}
	for _, f := range files {
		cold[month{f.Class, f.Month}] = true
	}
	return func(l store.Leaf) bool {
		t := l.EventTimestamp.UTC()
		return cold[month{l.RetentionDays, time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)}]
	}, nil
}
