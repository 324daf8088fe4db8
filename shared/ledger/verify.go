package ledger

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
)

// Kinds of problems a verification finds.
const (
	// ProblemModified: a stored event's fields no longer hash to the hash sealed for it.
	ProblemModified = "modified"
	// ProblemDeleted: the log seals an event that is not stored and had not expired.
	ProblemDeleted = "deleted"
	// ProblemInserted: a stored event that auditstore never wrote (no leaf, no pending key).
	ProblemInserted = "inserted"
	// ProblemTruncated: the log is shorter than a checkpoint says it was.
	ProblemTruncated = "truncated"
	// ProblemReordered: leaves out of the order they were sealed in.
	ProblemReordered = "reordered"
	// ProblemLogAltered: the leaves no longer lead to a signed checkpoint's root.
	ProblemLogAltered = "log_altered"
	// ProblemBadSignature: a checkpoint whose signature does not verify.
	ProblemBadSignature = "bad_signature"
	// ProblemUnsigned: a checkpoint without a signature while keys are configured.
	ProblemUnsigned = "unsigned_checkpoint"
	// ProblemCheckpointMissing: a checkpoint kept outside the database is gone from it.
	ProblemCheckpointMissing = "checkpoint_missing"
	// ProblemCheckpointAltered: a checkpoint differs from its copy outside the database.
	ProblemCheckpointAltered = "checkpoint_altered"
)

// Problem is one finding of a verification, naming what it is about.
type Problem struct {
	Kind      string     `json:"kind"`
	EventID   *uuid.UUID `json:"event_id,omitempty"`
	LeafIndex *uint64    `json:"leaf_index,omitempty"`
	TreeSize  *uint64    `json:"tree_size,omitempty"`
	Detail    string     `json:"detail"`
}

// Report is the outcome of Verify.
type Report struct {
	OK               bool                  `json:"ok"`
	Events           int64                 `json:"events"`
	Sealed           int64                 `json:"sealed"`
	Pending          int64                 `json:"pending"`
	Legacy           int64                 `json:"legacy"`
	Expired          int64                 `json:"expired"`
	Leaves           uint64                `json:"leaves"`
	Checkpoints      int                   `json:"checkpoints"`
	LatestCheckpoint *integrity.Checkpoint `json:"latest_checkpoint,omitempty"`
	Problems         []Problem             `json:"problems"`
	// ProblemCount counts every problem; Problems holds the first MaxProblems.
	ProblemCount int           `json:"problem_count"`
	Duration     time.Duration `json:"duration_ns"`
}

// MaxProblems bounds the problems a report lists (all are counted).
const MaxProblems = 1000

// Add records a problem: counted always, listed up to MaxProblems.
func (r *Report) Add(p Problem) {
	r.ProblemCount++
	if len(r.Problems) < MaxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// VerifyOptions shape Verify.
type VerifyOptions struct {
	// Keys are the trusted checkpoint keys; with none, signatures are not checked (and
	// unsigned checkpoints are not a problem).
	Keys []integrity.PublicKey
	// External are checkpoints kept outside the database (CHECKPOINT_URL): each must be in the
	// database as it is, and the log at least as long.
	External []integrity.Checkpoint
	// Now decides which events had expired (default time.Now()).
	Now time.Time
}

// Verify recomputes every event hash and the whole log from the database, checks every
// checkpoint's signature and root, and reports exactly which events were modified, deleted or
// inserted, which leaves were reordered, and whether the newest were truncated. Events waiting
// for the sealer are counted as pending, not as problems.
func Verify(ctx context.Context, st *store.Store, opts VerifyOptions) (Report, error) {
	began := time.Now()
	now := opts.Now
	if now.IsZero() {
		now = began
	}
	rep := Report{Problems: []Problem{}}
	cps, err := st.Checkpoints(ctx, 0, math.MaxInt64, 0)
	if err != nil {
		return rep, err
	}
	rep.Checkpoints = len(cps)
	bySize := make(map[uint64]store.StoredCheckpoint, len(cps))
	var longest uint64
	for _, cp := range cps {
		size := cp.TreeSize
		bySize[size] = cp
		longest = max(longest, size)
		switch {
		case cp.Signed && len(opts.Keys) > 0:
			if err := cp.Verify(opts.Keys); err != nil {
				rep.Add(Problem{Kind: ProblemBadSignature, TreeSize: &size, Detail: err.Error()})
			}
		case !cp.Signed && len(opts.Keys) > 0:
			rep.Add(Problem{Kind: ProblemUnsigned, TreeSize: &size, Detail: fmt.Sprintf("checkpoint of size %d made at %s is not signed", size, cp.Timestamp.Format(time.RFC3339))})
		}
	}
	if len(cps) > 0 {
		latest := cps[len(cps)-1].Checkpoint
		rep.LatestCheckpoint = &latest
	}
	for _, ext := range opts.External {
		size := ext.TreeSize
		if len(opts.Keys) > 0 {
			if err := ext.Verify(opts.Keys); err != nil {
				rep.Add(Problem{Kind: ProblemBadSignature, TreeSize: &size, Detail: "external copy: " + err.Error()})
				continue
			}
		}
		longest = max(longest, size)
		db, ok := bySize[size]
		switch {
		case !ok:
			rep.Add(Problem{Kind: ProblemCheckpointMissing, TreeSize: &size, Detail: fmt.Sprintf("the checkpoint of size %d made at %s is kept outside the database but missing from it", size, ext.Timestamp.Format(time.RFC3339))})
			cps = append(cps, store.StoredCheckpoint{Checkpoint: ext, Signed: ext.Signature != nil})
			bySize[size] = cps[len(cps)-1]
		case db.RootHash != ext.RootHash:
			rep.Add(Problem{Kind: ProblemCheckpointAltered, TreeSize: &size, Detail: fmt.Sprintf("the checkpoint of size %d has root %s in the database and %s outside it", size, db.RootHash, ext.RootHash)})
			bySize[size] = store.StoredCheckpoint{Checkpoint: ext, Signed: true}
		}
	}
	sizes := make([]uint64, 0, len(bySize))
	for s := range bySize {
		sizes = append(sizes, s)
	}
	slices.Sort(sizes)

	// The log: contiguous, in sealing order within each checkpoint, leading to every root.
	var f integrity.Frontier
	next := 0 // index into sizes of the next checkpoint to reach
	intervalStart := uint64(0)
	var prev *store.Leaf
	gap := false
	// A checkpoint of the empty log (the sealer's first, before any write) is reached before
	// any leaf.
	for next < len(sizes) && sizes[next] == 0 {
		if cp := bySize[0]; cp.RootHash != integrity.EmptyRoot {
			size := uint64(0)
			rep.Add(Problem{Kind: ProblemLogAltered, TreeSize: &size, Detail: "the checkpoint of the empty log has a root other than the empty tree's"})
		}
		next++
	}
	err = st.StreamLeaves(ctx, 0, func(l store.Leaf) error {
		if l.Index != f.Size && !gap {
			idx := f.Size
			rep.Add(Problem{Kind: ProblemTruncated, LeafIndex: &idx, Detail: fmt.Sprintf("leaves %d to %d are missing from the log", f.Size, l.Index-1)})
			gap = true
		}
		if prev != nil && prev.Index >= intervalStart && bytes.Compare(prev.EventID[:], l.EventID[:]) > 0 {
			a, b := prev.Index, l.Index
			id := l.EventID
			rep.Add(Problem{Kind: ProblemReordered, LeafIndex: &a, EventID: &id,
				Detail: fmt.Sprintf("leaf %d (event %s) is sealed after leaf %d (event %s) but sorts before it: leaves were moved", b, l.EventID, a, prev.EventID)})
		}
		f.Append(integrity.LeafHash(l.EventHash), nil)
		rep.Leaves++
		lc := l
		prev = &lc
		for next < len(sizes) && sizes[next] == f.Size {
			cp := bySize[sizes[next]]
			if !gap && f.Root() != cp.RootHash {
				size := cp.TreeSize
				from := uint64(0)
				if next > 0 {
					from = sizes[next-1]
				}
				rep.Add(Problem{Kind: ProblemLogAltered, TreeSize: &size,
					Detail: fmt.Sprintf("the leaves no longer lead to the root of the checkpoint of size %d made at %s: a leaf in [%d, %d) was altered", size, cp.Timestamp.Format(time.RFC3339), from, size)})
			}
			intervalStart = f.Size
			next++
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if longest > f.Size {
		size := longest
		rep.Add(Problem{Kind: ProblemTruncated, TreeSize: &size, Detail: fmt.Sprintf("the log has %d leaves but a checkpoint says it had %d: the newest were removed", f.Size, longest)})
	}
	// The events against the log.
	var firstSeal time.Time
	if len(cps) > 0 {
		firstSeal = cps[0].Timestamp
	}
	err = st.CompareLog(ctx, func(row store.AuditRow) error {
		switch {
		case row.Event != nil && row.Leaf != nil:
			rep.Events++
			rep.Sealed++
			h, err := Recompute(*row.Event)
			if err != nil || h != row.Leaf.EventHash {
				id, idx := row.Event.EventID, row.Leaf.Index
				rep.Add(Problem{Kind: ProblemModified, EventID: &id, LeafIndex: &idx,
					Detail: fmt.Sprintf("event %s no longer hashes to the hash sealed in leaf %d", id, idx)})
			}
		case row.Event != nil:
			rep.Events++
			e := row.Event
			switch {
			case row.KeyUnsealed:
				rep.Pending++
			case e.EventHash == nil && (firstSeal.IsZero() || e.ReceivedAt.Before(firstSeal)):
				rep.Legacy++ // stored before tamper evidence, its key already pruned
			default:
				id := e.EventID
				rep.Add(Problem{Kind: ProblemInserted, EventID: &id,
					Detail: fmt.Sprintf("event %s is stored but was never written through auditstore: it is in no leaf and no write is pending for it", id)})
			}
		case row.Leaf != nil:
			l := row.Leaf
			if !l.EventTimestamp.AddDate(0, 0, l.RetentionDays).After(now) {
				rep.Expired++
				return nil
			}
			id, idx := l.EventID, l.Index
			rep.Add(Problem{Kind: ProblemDeleted, EventID: &id, LeafIndex: &idx,
				Detail: fmt.Sprintf("event %s, sealed in leaf %d and retained until %s, is gone", id, idx, l.EventTimestamp.AddDate(0, 0, l.RetentionDays).Format(time.RFC3339))})
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.OK = rep.ProblemCount == 0
	rep.Duration = time.Since(began)
	return rep, nil
}
