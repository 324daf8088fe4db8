package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/store"
)

// ColdMover moves months to the cold tier (object storage) and expires them there.
type ColdMover interface {
	// MoveCold writes the events of leaf to the cold tier, checks them there and records them
	// in the catalogue, then detaches and drops leaf through ddl; events written to leaf
	// meanwhile move too. Retried after any error, it converges.
	MoveCold(ctx context.Context, leaf store.LeafPartition, ddl cold.DDL, lockTimeout time.Duration) (cold.Moved, error)
	// ExpireCold deletes the cold files of months past their class's retention, except those
	// holding an event an active legal hold covers.
	ExpireCold(ctx context.Context, expired func(class int, month time.Time) bool) ([]cold.Action, error)
	// SweepCold deletes the cold tier's objects the catalogue does not name (left by a move or
	// an erasure that was interrupted); it runs under the maintenance lock.
	SweepCold(ctx context.Context) ([]cold.Action, error)
}

// HotMonths is how many months before the current one stay in PostgreSQL, per retention class
// (HOT_MONTHS). A class it does not name keeps every month hot until the month expires.
type HotMonths map[int]int

// Decode reads HOT_MONTHS: a number for every class ("3"), or class=months pairs
// ("90=1,2557=12"), or both ("6,90=1": 6 for every class but 90). Empty: nothing goes cold.
func (h *HotMonths) Decode(s string) error {
	*h = HotMonths{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		class, months := 0, part
		if k, v, ok := strings.Cut(part, "="); ok {
			c, err := strconv.Atoi(strings.TrimSpace(k))
			if err != nil || c < 1 {
				return fmt.Errorf("%q: a retention class is a number of days", k)
			}
			class, months = c, strings.TrimSpace(v)
		}
		n, err := strconv.Atoi(months)
		if err != nil || n < 1 || n > 120 {
			return fmt.Errorf("%q: hot months must be 1 to 120", part)
		}
		(*h)[class] = n
	}
	return nil
}

// of returns how many months class keeps hot, or 0 when every month stays hot.
func (h HotMonths) of(class int) int {
	if n, ok := h[class]; ok {
		return n
	}
	return h[0]
}

// Cold reports whether p should be in the cold tier at now: not expired, and older than its
// class's hot months.
func (h HotMonths) Cold(p Partition, now time.Time) bool {
	n := h.of(p.Class)
	return n > 0 && !p.Expired(now) && p.Month.Before(MonthOf(now).Add(-n))
}

// moveCold moves every partition that should be cold (oldest first).
func (r *Runner) moveCold(ctx context.Context, ddl DDL, now time.Time, byPartition map[Partition]store.LeafPartition, rep *Report, errs *[]error) {
	if !r.Config.DryRun {
		acts, err := r.Cold.SweepCold(ctx)
		for _, a := range acts {
			rep.Actions = append(rep.Actions, Action(a))
		}
		if err != nil {
			*errs = append(*errs, err)
		}
	}
	var parts []Partition
	for p := range byPartition {
		if r.Config.HotMonths.Cold(p, now) {
			parts = append(parts, p)
		}
	}
	slices.SortFunc(parts, compare)
	for _, p := range parts {
		leaf := byPartition[p]
		if r.Config.DryRun {
			rep.Actions = append(rep.Actions, Action{Kind: "partition.cold", Partition: leaf.Name, Detail: "dry run"})
			continue
		}
		m, err := r.Cold.MoveCold(ctx, leaf, ddl, r.Config.LockTimeout)
		if err != nil {
			if isLockTimeout(err) {
				rep.Retry = append(rep.Retry, leaf.Name)
				continue
			}
			*errs = append(*errs, fmt.Errorf("move %s to the cold tier: %w", leaf.Name, err))
			rep.Actions = append(rep.Actions, Action{Kind: "partition.kept", Partition: leaf.Name, Detail: err.Error()})
			continue
		}
		rep.Actions = append(rep.Actions, Action{Kind: "partition.cold", Partition: leaf.Name, Rows: m.Rows, Bytes: m.Bytes,
			Detail: fmt.Sprintf("%d cold files", m.Files)})
	}
	if r.Config.DryRun {
		return
	}
	acts, err := r.Cold.ExpireCold(ctx, func(class int, month time.Time) bool {
		return Partition{Class: class, Month: MonthOf(month)}.Expired(now)
	})
	for _, a := range acts {
		rep.Actions = append(rep.Actions, Action(a))
	}
	if err != nil {
		*errs = append(*errs, err)
	}
}

// coldTier moves months older than HOT_MONTHS to the cold tier at ARCHIVE_URL for the runner,
// and counts events across both tiers for legal holds. Like archiver, it opens the bucket on
// first use, so a bucket that cannot be opened fails a run (and keeps its partitions), not the
// process.
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

func (c *coldTier) MoveCold(ctx context.Context, leaf store.LeafPartition, ddl cold.DDL, lockTimeout time.Duration) (cold.Moved, error) {
	m, err := c.open(ctx)
	if err != nil {
		return cold.Moved{}, err
	}
	return m.MoveCold(ctx, leaf, ddl, lockTimeout)
}

func (c *coldTier) ExpireCold(ctx context.Context, expired func(class int, month time.Time) bool) ([]cold.Action, error) {
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	return m.ExpireCold(ctx, expired)
}

func (c *coldTier) SweepCold(ctx context.Context) ([]cold.Action, error) {
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	return m.SweepCold(ctx)
}

// ColdMover returns the mover of the cold tier, or nil when no month goes cold (HOT_MONTHS
// unset): an erasure rewrites cold files with it.
func (s *Service) ColdMover(ctx context.Context) (*cold.Mover, error) {
	c, ok := s.runner.Cold.(*coldTier)
	if !ok {
		return nil, nil
	}
	return c.open(ctx)
}

// CountEvents counts the events of both tiers matching f: a legal hold placed on a correlation
// whose events are all cold covers them (expiry keeps their files), so it is not a hold on
// nothing.
func (s *Service) CountEvents(ctx context.Context, f store.Filter) (int64, error) {
	c, ok := s.runner.Cold.(*coldTier)
	if !ok {
		return s.store.CountEvents(ctx, f)
	}
	if _, err := c.open(ctx); err != nil {
		return 0, err
	}
	return c.events.CountEvents(ctx, f)
}
