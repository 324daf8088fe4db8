package cold

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"gocloud.dev/blob"
)

// Rewritten is a cold file rewritten with some of its events changed: the catalogue row it
// replaces and the files that replace it, written, read back and checked. Nothing names the
// new files until the catalogue swaps them in (store.EraseParams.Swaps, one transaction);
// after that the old file is deleted. Interrupted anywhere, a query reads either the old file
// or the new ones, and what is left over is an object the catalogue does not name, which
// SweepCold deletes.
type Rewritten struct {
	Old store.ColdFile
	New []store.ColdFile
}

// Rewrite reads f whole (checked against the catalogue: a file that no longer reads as it was
// written is an error wrapping archive.ErrVerify) and calls change with each of its events,
// which may alter it and reports whether it did. When none changed it returns ok false and
// writes nothing. Else the events are written as new files of f's class and month by the
// writer that moves months (archive.Cold.WriteMonth), each verified as verify -archive does
// (every event recomputes to the hash stored with it), and checked to hold exactly f's
// events with f's event hashes: a change that would alter what an event hashes to is refused.
func (m *Mover) Rewrite(ctx context.Context, f store.ColdFile, change func(e *audit.Event) (bool, error)) (_ Rewritten, ok bool, err error) {
	var events []audit.Event
	if err := m.Tier.Scan(ctx, file(f), func(r *archive.ColdRow) error {
		events = append(events, r.Event())
		return nil
	}); err != nil {
		return Rewritten{}, false, err
	}
	// Only a file that read back whole as it was written is trusted with a change.
	changed := false
	for i := range events {
		c, err := change(&events[i])
		if err != nil {
			return Rewritten{}, false, err
		}
		changed = changed || c
	}
	if !changed {
		return Rewritten{}, false, nil
	}
	hashes := make(map[uuid.UUID][]byte, len(events))
	for i := range events {
		hashes[events[i].EventID] = events[i].EventHash
	}
	// WriteMonth cuts a month's stream into files in time order, as a move sends it.
	slices.SortFunc(events, func(a, b audit.Event) int { return compareEvents(&a, &b) })
	written, err := m.Tier.WriteMonth(ctx, f.Class, f.Month, func(fn func(*audit.Event) error) (int64, error) {
		for i := range events {
			if err := fn(&events[i]); err != nil {
				return int64(i), err
			}
		}
		return int64(len(events)), nil
	})
	if err != nil {
		return Rewritten{}, false, fmt.Errorf("rewrite cold file %s: %w", f.Key, err)
	}
	rw := Rewritten{Old: f}
	defer func() {
		if err != nil {
			m.deleteFiles(context.WithoutCancel(ctx), written)
		}
	}()
	seen := 0
	for _, nf := range written {
		rep, err := m.Tier.VerifyCold(ctx, nf, nil)
		if err != nil {
			return Rewritten{}, false, fmt.Errorf("rewrite cold file %s: verify %s: %w", f.Key, nf.Key, err)
		}
		if !rep.OK {
			return Rewritten{}, false, fmt.Errorf("rewrite cold file %s: %s does not verify: %s", f.Key, nf.Key, rep.Problems[0].Detail)
		}
		if err := m.Tier.Scan(ctx, nf, func(r *archive.ColdRow) error {
			h, ok := hashes[uuid.UUID(r.EventID)]
			if !ok || !bytes.Equal(h, r.EventHash) {
				return fmt.Errorf("event %s is not one of %s or does not keep its hash", uuid.UUID(r.EventID), f.Key)
			}
			delete(hashes, uuid.UUID(r.EventID))
			seen++
			return nil
		}); err != nil {
			return Rewritten{}, false, fmt.Errorf("rewrite cold file %s: %s: %w", f.Key, nf.Key, err)
		}
		rw.New = append(rw.New, record(nf, f.SourceOID))
	}
	if seen != len(events) || len(hashes) != 0 {
		return Rewritten{}, false, fmt.Errorf("rewrite cold file %s: the new files hold %d of its %d events", f.Key, seen, len(events))
	}
	return rw, true, nil
}

// Discard deletes the new files of rewrites the catalogue did not take (their swap failed).
func (m *Mover) Discard(ctx context.Context, rws []Rewritten) {
	for _, rw := range rws {
		for _, f := range rw.New {
			_ = m.Tier.Delete(ctx, f.Key) // left over, SweepCold deletes it
		}
	}
}

// Retire deletes the old files of rewrites the catalogue swapped out. A query that read the
// catalogue before the swap may still be reading one; it then reads the catalogue again, and a
// stream already under way fails (ErrFileGone, a 503) rather than answering from a file that is
// gone. A file not deleted here is deleted by SweepCold.
func (m *Mover) Retire(ctx context.Context, rws []Rewritten) error {
	var errs []error
	for _, rw := range rws {
		errs = append(errs, m.Tier.Delete(ctx, rw.Old.Key))
	}
	return errors.Join(errs...)
}

func (m *Mover) deleteFiles(ctx context.Context, files []archive.ColdFile) {
	for _, f := range files {
		_ = m.Tier.Delete(ctx, f.Key)
	}
}

// SweepCold deletes the objects of the cold tier the catalogue does not name, with their
// manifests: files a move or an erasure wrote and was interrupted before recording, files an
// erasure swapped out and was interrupted before deleting. The caller holds the maintenance
// lock, under which every move and erasure runs: one in progress writes its files before it
// records them.
func (m *Mover) SweepCold(ctx context.Context) ([]Action, error) {
	files, err := m.Store.ColdFiles(ctx)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(files))
	for _, f := range files {
		known[f.Key] = true
	}
	// Keys only: a manifest names its file by its own key (archive.ColdManifestKey), so the
	// sweep reads no object.
	manifests := archive.ColdPrefix + "/_manifests/"
	var orphans []string
	seen := map[string]bool{}
	it := m.Tier.Bucket().List(&blob.ListOptions{Prefix: archive.ColdPrefix + "/"})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("sweep cold tier: %w", err)
		}
		key := o.Key
		if rel, ok := strings.CutPrefix(key, manifests); ok {
			key = archive.ColdPrefix + "/" + strings.TrimSuffix(rel, ".json") + ".parquet"
		}
		if _, _, ok := archive.ParseColdKey(key); ok && !known[key] && !seen[key] {
			seen[key] = true
			orphans = append(orphans, key)
		}
	}
	var acts []Action
	for _, key := range orphans {
		if err := m.Tier.Delete(ctx, key); err != nil {
			return acts, fmt.Errorf("sweep cold tier: %w", err)
		}
		acts = append(acts, Action{Kind: "cold.swept", Partition: key, Detail: "not in the catalogue: left by an interrupted move or erasure"})
	}
	return acts, nil
}
