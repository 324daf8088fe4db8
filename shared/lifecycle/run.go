package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/auditstore/auditstore/shared/store"
)

// Store is what a run needs of the store.
type Store interface {
	ListPartitions(ctx context.Context) ([]store.LeafPartition, error)
	CreatePartitions(ctx context.Context, from, to time.Time, classes []int) ([]string, error)
	CountPartition(ctx context.Context, leaf string) (total, held int64, err error)
	DeleteUnheld(ctx context.Context, leaf string, lockTimeout time.Duration) (int64, error)
	PruneKeys(ctx context.Context, olderThan time.Time) (int64, error)
}

// DDL runs the statements that need the run's pinned connection.
type DDL interface {
	DetachAndDrop(ctx context.Context, p store.LeafPartition, lockTimeout time.Duration) error
}

// Config is a run's settings, read from the environment.
type Config struct {
	// PremakeMonths is how many months after the current one must have partitions.
	PremakeMonths int `envconfig:"PREMAKE_MONTHS" default:"3"`
	// LockTimeout bounds every wait for a lock, so DDL never stalls writers longer; what
	// times out is retried by the next run.
	LockTimeout time.Duration `envconfig:"LOCK_TIMEOUT" default:"2s"`
	// IdempotencyWindow is how long idempotency keys are kept.
	IdempotencyWindow time.Duration `envconfig:"IDEMPOTENCY_WINDOW" default:"168h"`
	// DryRun reports what a run would do, and does nothing.
	DryRun bool `envconfig:"DRY_RUN" default:"false"`
}

// Action is one thing a run did (or, dry, would do).
type Action struct {
	Kind      string `json:"kind"` // partition.created, partition.dropped, partition.cleared, partition.kept, keys.pruned
	Partition string `json:"partition,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// Report is what a run did.
type Report struct {
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	DryRun      bool      `json:"dry_run"`
	Actions     []Action  `json:"actions"`
	MonthsAhead int       `json:"months_ahead"`
	// StrayRows is always 0: there is no default partition for rows to stray into.
	StrayRows int64 `json:"stray_rows"`
	// Retry lists what timed out waiting for a lock; the next run does it.
	Retry []string `json:"retry,omitempty"`
}

// Runner performs maintenance runs.
type Runner struct {
	Store   Store
	Config  Config
	Classes []int
	// Now is the clock (tests inject one).
	Now func() time.Time
}

// Run does one maintenance run with ddl (the pinned, locked connection): make missing
// partitions, remove expired ones (clearing, not dropping, a partition that holds events under
// legal hold), prune idempotency keys. Killed at any point, the next run converges: every
// step is idempotent.
func (r *Runner) Run(ctx context.Context, ddl DDL) (Report, error) {
	now := r.Now()
	rep := Report{Started: now, DryRun: r.Config.DryRun}
	leaves, err := r.Store.ListPartitions(ctx)
	if err != nil {
		return rep, err
	}
	existing := make([]Partition, 0, len(leaves))
	byPartition := map[Partition]store.LeafPartition{}
	for _, l := range leaves {
		p := Partition{Class: l.Class, Month: MonthOf(l.Month)}
		existing = append(existing, p)
		byPartition[p] = l
	}
	plan := PlanPartitions(now, existing, Policy{Classes: r.Classes, PremakeMonths: r.Config.PremakeMonths})

	var errs []error
	for _, p := range plan.Create {
		name := store.LeafName(p.Class, p.Month.Start())
		if r.Config.DryRun {
			rep.Actions = append(rep.Actions, Action{Kind: "partition.created", Partition: name, Detail: "dry run"})
			continue
		}
		created, err := r.Store.CreatePartitions(ctx, p.Month.Start(), p.Month.Start(), []int{p.Class})
		if err != nil {
			if isLockTimeout(err) {
				rep.Retry = append(rep.Retry, name)
				continue
			}
			errs = append(errs, err)
			continue
		}
		for _, c := range created {
			rep.Actions = append(rep.Actions, Action{Kind: "partition.created", Partition: c})
		}
		existing = append(existing, p)
	}

	for _, p := range plan.Expired {
		leaf := byPartition[p]
		total, held, err := r.Store.CountPartition(ctx, leaf.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case r.Config.DryRun:
			kind := "partition.dropped"
			if held > 0 {
				kind = "partition.cleared"
			}
			rep.Actions = append(rep.Actions, Action{Kind: kind, Partition: leaf.Name, Rows: total - held, Detail: "dry run"})
		case held > 0:
			// Held events survive: delete the others, keep the partition until the holds go.
			n, err := r.Store.DeleteUnheld(ctx, leaf.Name, r.Config.LockTimeout)
			if err != nil {
				if isLockTimeout(err) {
					rep.Retry = append(rep.Retry, leaf.Name)
					continue
				}
				errs = append(errs, err)
				continue
			}
			rep.Actions = append(rep.Actions, Action{Kind: "partition.cleared", Partition: leaf.Name, Rows: n,
				Detail: fmt.Sprintf("%d events under legal hold kept", held)})
		default:
			if err := ddl.DetachAndDrop(ctx, leaf, r.Config.LockTimeout); err != nil {
				if isLockTimeout(err) {
					rep.Retry = append(rep.Retry, leaf.Name)
					continue
				}
				errs = append(errs, err)
				continue
			}
			rep.Actions = append(rep.Actions, Action{Kind: "partition.dropped", Partition: leaf.Name, Rows: total})
		}
	}

	if !r.Config.DryRun {
		n, err := r.Store.PruneKeys(ctx, now.Add(-r.Config.IdempotencyWindow))
		if err != nil {
			errs = append(errs, err)
		} else if n > 0 {
			rep.Actions = append(rep.Actions, Action{Kind: "keys.pruned", Rows: n})
		}
	}
	rep.MonthsAhead = MonthsAhead(now, existing, r.Classes)
	rep.Finished = r.Now()
	for _, a := range rep.Actions {
		slog.Info("maintenance", "action", a.Kind, "partition", a.Partition, "rows", a.Rows, "detail", a.Detail, "dry_run", rep.DryRun)
	}
	return rep, errors.Join(errs...)
}

func isLockTimeout(err error) bool {
	return errors.Is(err, store.ErrLockTimeout) || isSQLState(err, "55P03")
}

func isSQLState(err error, code string) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && pgErr.SQLState() == code
}

// Validate checks the settings, naming the variable at fault.
func (c Config) Validate() error {
	switch {
	case c.PremakeMonths < 1 || c.PremakeMonths > 24:
		return errors.New("PREMAKE_MONTHS must be between 1 and 24")
	case c.LockTimeout < 10*time.Millisecond || c.LockTimeout > time.Minute:
		return errors.New("LOCK_TIMEOUT must be between 10ms and 1m")
	case c.IdempotencyWindow < time.Hour:
		return errors.New("IDEMPOTENCY_WINDOW must be at least 1h")
	}
	return nil
}
