package cold

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
)

// MoverStore is what moving months needs of the store. *store.Store is one.
type MoverStore interface {
	CountPartition(ctx context.Context, leaf string) (total, held int64, err error)
	LeafOID(ctx context.Context, leaf string) (uint32, error)
	StreamLeaf(ctx context.Context, leaf string, fn func(*audit.Event) error) (int64, error)
	ColdFiles(ctx context.Context) ([]store.ColdFile, error)
	RecordColdFiles(ctx context.Context, files []store.ColdFile) error
	ForgetColdFile(ctx context.Context, key string) error
	CountHeld(ctx context.Context, events []audit.Event) (int64, error)
	SetColdLookupFilter(ctx context.Context, key string, filter []byte) error
}

// DDL detaches and drops a partition (the maintenance run's statements, with its lock
// timeout).
type DDL interface {
	DetachAndDrop(ctx context.Context, p store.LeafPartition, lockTimeout time.Duration) error
}

// Moved is what MoveCold did.
type Moved struct {
	Rows, Bytes int64
	Files       int
}

// Action is one thing ExpireCold did or refused to do, in the shape of the maintenance run's
// report (lifecycle.Action).
type Action struct {
	Kind      string `json:"kind"`
	Partition string `json:"partition,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// Mover moves months to the cold tier and expires them there, for the maintenance run
// (lifecycle.ColdMover).
type Mover struct {
	Store MoverStore
	Tier  *archive.Cold
}

// MoveCold moves one partition's events to the cold tier: written, read back and checked,
// recorded in the catalogue (queries keep reading the partition while it is attached), then
// DETACH ... CONCURRENTLY and DROP. Events a writer put into the partition after it was read
// and before it was detached are found in the detached table and moved as a file of their own
// before the drop. A run that stopped anywhere converges: files recorded for the partition are
// not written again.
func (m *Mover) MoveCold(ctx context.Context, leaf store.LeafPartition, ddl DDL, lockTimeout time.Duration) (Moved, error) {
	var moved Moved
	oid, err := m.Store.LeafOID(ctx, leaf.Name)
	if err != nil {
		return moved, err
	}
	all, err := m.Store.ColdFiles(ctx)
	if err != nil {
		return moved, err
	}
	var ids [][16]byte // the events already in the cold tier, sorted
	var mine []store.ColdFile
	for _, f := range all {
		if f.SourceOID == oid {
			mine = append(mine, f)
		}
	}
	if len(mine) > 0 {
		// An earlier run recorded this partition and stopped before its drop: what it wrote
		// is known by the files' event ids.
		for _, f := range mine {
			if err := m.eventIDs(ctx, f, &ids); err != nil {
				return moved, err
			}
		}
		slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	}
	write := func() error {
		var written [][16]byte
		files, err := m.Tier.WriteMonth(ctx, leaf.Class, leaf.Month, func(fn func(*audit.Event) error) (int64, error) {
			var n int64
			_, err := m.Store.StreamLeaf(ctx, leaf.Name, func(e *audit.Event) error {
				if _, found := slices.BinarySearchFunc(ids, [16]byte(e.EventID), func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) }); found {
					return nil
				}
				n++
				written = append(written, e.EventID)
				return fn(e)
			})
			return n, err
		})
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return nil
		}
		recs := make([]store.ColdFile, len(files))
		for i, f := range files {
			recs[i] = record(f, oid)
			moved.Rows += f.Rows
			moved.Bytes += f.Bytes
		}
		if err := m.Store.RecordColdFiles(ctx, recs); err != nil {
			for _, f := range files {
				_ = m.Tier.Delete(context.WithoutCancel(ctx), f.Key)
			}
			return err
		}
		moved.Files += len(files)
		// The files were read back and checked as written: their ids are the ones streamed.
		ids = append(ids, written...)
		slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
		return nil
	}
	if !leaf.Detached {
		if err := write(); err != nil {
			return moved, err
		}
	}
	// Detach only: the drop waits until late arrivals are moved too.
	if err := ddl.DetachAndDrop(ctx, store.LeafPartition{Name: leaf.Name, Class: leaf.Class, Month: leaf.Month,
		DetachPending: leaf.DetachPending, Detached: leaf.Detached, KeepTable: true}, lockTimeout); err != nil {
		return moved, err
	}
	total, _, err := m.Store.CountPartition(ctx, leaf.Name)
	if err != nil {
		return moved, err
	}
	if total != int64(len(ids)) {
		if err := write(); err != nil {
			return moved, err
		}
	}
	if total, _, err = m.Store.CountPartition(ctx, leaf.Name); err != nil {
		return moved, err
	}
	if total != int64(len(ids)) {
		return moved, fmt.Errorf("%s holds %d events, the cold tier %d: the table is kept detached for the next run", leaf.Name, total, len(ids))
	}
	return moved, ddl.DetachAndDrop(ctx, store.LeafPartition{Name: leaf.Name, Class: leaf.Class, Month: leaf.Month, Detached: true}, lockTimeout)
}

// eventIDs appends the event ids of a cold file, checking the file on the way.
func (m *Mover) eventIDs(ctx context.Context, f store.ColdFile, ids *[][16]byte) error {
	return m.Tier.Scan(ctx, file(f), func(r *archive.ColdRow) error {
		*ids = append(*ids, r.EventID)
		return nil
	})
}

// ExpireCold deletes the cold files of expired months unless an event in them is under an
// active legal hold (such a file stays whole until the hold is released). The catalogue forgets
// a file before it is deleted, so no query names a file that is gone.
func (m *Mover) ExpireCold(ctx context.Context, expired func(class int, month time.Time) bool) ([]Action, error) {
	files, err := m.Store.ColdFiles(ctx)
	if err != nil {
		return nil, err
	}
	var acts []Action
	for _, f := range files {
		if !expired(f.Class, f.Month) {
			continue
		}
		var held int64
		var batch []audit.Event
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			n, err := m.Store.CountHeld(ctx, batch)
			held += n
			batch = batch[:0]
			return err
		}
		err := m.Tier.Scan(ctx, file(f), func(r *archive.ColdRow) error {
			batch = append(batch, r.Event())
			if len(batch) == 1000 {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return acts, fmt.Errorf("expire cold file %s: %w", f.Key, err)
		}
		if held > 0 {
			acts = append(acts, Action{Kind: "cold.kept", Partition: f.Key, Rows: f.Rows,
				Detail: fmt.Sprintf("%d events under legal hold", held)})
			continue
		}
		if err := m.Store.ForgetColdFile(ctx, f.Key); err != nil {
			return acts, err
		}
		if err := m.Tier.Delete(ctx, f.Key); err != nil {
			return acts, err
		}
		acts = append(acts, Action{Kind: "cold.deleted", Partition: f.Key, Rows: f.Rows, Bytes: f.Bytes})
	}
	return m.summarize(ctx, files, expired, acts)
}

// record is the catalogue row of a file written from the table oid.
func record(f archive.ColdFile, oid uint32) store.ColdFile {
	return store.ColdFile{Key: f.Key, Class: f.Class, Month: f.MonthStart(), SourceOID: oid, Rows: f.Rows, Bytes: f.Bytes,
		SHA256: f.SHA256, RowsSHA256: f.RowsSHA256, MinEventTimestamp: f.MinEventTimestamp, MaxEventTimestamp: f.MaxEventTimestamp,
		MinCorrelationID: f.MinCorrelationID, MaxCorrelationID: f.MaxCorrelationID, SchemaVersion: f.SchemaVersion, CreatedAt: f.CreatedAt,
		LookupFilter: f.LookupFilter}
}

// file is the archive's description of a catalogue row.
func file(f store.ColdFile) archive.ColdFile {
	return archive.ColdFile{SchemaVersion: f.SchemaVersion, Key: f.Key, Class: f.Class, Month: f.Month.Format(time.DateOnly),
		Rows: f.Rows, Bytes: f.Bytes, SHA256: f.SHA256, RowsSHA256: f.RowsSHA256,
		MinEventTimestamp: f.MinEventTimestamp, MaxEventTimestamp: f.MaxEventTimestamp,
		MinCorrelationID: f.MinCorrelationID, MaxCorrelationID: f.MaxCorrelationID, CreatedAt: f.CreatedAt}
}
