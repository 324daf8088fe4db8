package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
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

// Archiver copies a leaf to durable storage before it is removed, or finds a copy already
// there that holds every event the leaf now has.
type Archiver interface {
	Archive(ctx context.Context, leaf store.LeafPartition) (Archived, error)
}

// Archived is what an Archiver wrote or found for a leaf.
type Archived struct {
	// Rows and Bytes are the archive's events and size.
	Rows, Bytes int64
	// LeafRows is how many events the leaf held when the archiver read it.
	LeafRows int64
	// Reused: the archive was already there (an earlier run archived the leaf, and stopped or
	// could only clear it).
	Reused bool
	// Location says where the archive is (its manifest's key).
	Location string
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
	// ArchiveURL, when set, is where every expired partition is archived (Parquet and a
	// manifest) before any of its events is removed: a gocloud.dev/blob URL such as
	// file:///var/lib/auditstore-archive, s3://bucket?region=eu-west-1, gs://bucket or
	// azblob://container. A partition whose archive cannot be written and verified is kept, and
	// the next run tries again.
	ArchiveURL string `envconfig:"ARCHIVE_URL"`
}

// Action is one thing a run did (or, dry, would do).
type Action struct {
	Kind      string `json:"kind"` // partition.created, partition.archived, partition.dropped, partition.cleared, partition.kept, keys.pruned
	Partition string `json:"partition,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"` // partition.archived: the archive's size
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
	// Archiver, when set, archives every expired partition before its events are removed. It
	// must be set when Config.ArchiveURL is.
	Archiver Archiver
}

// Run does one maintenance run with ddl (the pinned, locked connection): make missing
// partitions, remove expired ones (clearing, not dropping, a partition that holds events under
// legal hold), prune idempotency keys. Killed at any point, the next run converges: every
// step is idempotent.
func (r *Runner) Run(ctx context.Context, ddl DDL) (Report, error) {
	now := r.Now()
	rep := Report{Started: now, DryRun: r.Config.DryRun}
	if r.Config.ArchiveURL != "" && r.Archiver == nil {
		// Removing partitions unarchived when an archive was asked for would lose them.
		return rep, errors.New("ARCHIVE_URL is set but the run has no archiver: nothing done")
	}
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
			if r.Archiver != nil && (held == 0 || total > held) {
				rep.Actions = append(rep.Actions, Action{Kind: "partition.archived", Partition: leaf.Name, Rows: total, Detail: "dry run"})
			}
			rep.Actions = append(rep.Actions, Action{Kind: kind, Partition: leaf.Name, Rows: total - held, Detail: "dry run"})
		case held > 0:
			// Held events survive: delete the others, keep the partition until the holds go.
			if r.Archiver != nil {
				if total == held {
					// Nothing to clear. Not calling DeleteUnheld at all means a hold released
					// since the count cannot make it delete events no archive holds; the next
					// run archives them first.
					continue
				}
				if !r.archive(ctx, leaf, total, &rep, &errs) {
					continue
				}
			}
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
			if r.Archiver != nil && !r.archive(ctx, leaf, total, &rep, &errs) {
				continue
			}
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
		slog.Info("maintenance", "action", a.Kind, "partition", a.Partition, "rows", a.Rows, "bytes", a.Bytes, "detail", a.Detail, "dry_run", rep.DryRun)
	}
	return rep, errors.Join(errs...)
}

// archive archives leaf, which held total events when counted, and reports whether its events
// may now be removed: only when the archive was written (or found) and verified and holds every
// event the leaf had. Otherwise the leaf is kept, and the next run tries again.
func (r *Runner) archive(ctx context.Context, leaf store.LeafPartition, total int64, rep *Report, errs *[]error) bool {
	a, err := r.Archiver.Archive(ctx, leaf)
	if err == nil && a.LeafRows != total {
		err = fmt.Errorf("archive %s: the archiver read %d events, the partition had %d when counted", leaf.Name, a.LeafRows, total)
	}
	if err != nil {
		err = fmt.Errorf("partition kept, its archive failed: %w", err)
		*errs = append(*errs, err)
		rep.Actions = append(rep.Actions, Action{Kind: "partition.kept", Partition: leaf.Name, Rows: total, Detail: err.Error()})
		return false
	}
	detail := a.Location
	if a.Reused {
		detail += " (archived by an earlier run, verified)"
	}
	rep.Actions = append(rep.Actions, Action{Kind: "partition.archived", Partition: leaf.Name, Rows: a.Rows, Bytes: a.Bytes, Detail: detail})
	return true
}

// isLockTimeout reports whether a step gave up waiting for a lock: the next run retries it.
func isLockTimeout(err error) bool {
	return errors.Is(err, store.ErrLockTimeout)
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
	if c.ArchiveURL != "" {
		u, err := url.Parse(c.ArchiveURL)
		if err != nil || !slices.Contains(archiveSchemes, u.Scheme) {
			return fmt.Errorf("ARCHIVE_URL %q is not a URL of one of the schemes %v (e.g. file:///var/lib/auditstore-archive, s3://bucket?region=eu-west-1)", c.ArchiveURL, archiveSchemes)
		}
	}
	return nil
}

// archiveSchemes are the schemes ARCHIVE_URL may have (the drivers shared/archive links in).
var archiveSchemes = []string{"file", "s3", "gs", "azblob"}
