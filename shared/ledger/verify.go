package ledger

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
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
	// ProblemFork: the log no longer extends a checkpoint kept outside the database, while it
	// agrees with every checkpoint in the database: sealed events were lost and the log sealed
	// anew from an earlier point — what a failover to a standby that had not received them
	// leaves (or a cut of the log with its checkpoints). An alarm, but not an altered leaf.
	ProblemFork = "fork"
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
	OK      bool  `json:"ok"`
	Events  int64 `json:"events"`
	Sealed  int64 `json:"sealed"`
	Pending int64 `json:"pending"`
	Legacy  int64 `json:"legacy"`
	Expired int64 `json:"expired"`
	// Cold counts sealed events of months in the cold tier, which verify -archive checks.
	Cold             int64                 `json:"cold,omitempty"`
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
	// Cold, when set, tells a sealed event that is not stored but lives in the cold tier
	// (its class and month have cold files): counted as cold, not as deleted.
	Cold func(l store.Leaf) bool
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
	for _, cp := range cps {
		size := cp.TreeSize
		bySize[size] = cp
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
	external := map[uint64]integrity.Checkpoint{}
	for _, ext := range opts.External {
		size := ext.TreeSize
		if len(opts.Keys) > 0 {
			if err := ext.Verify(opts.Keys); err != nil {
				rep.Add(Problem{Kind: ProblemBadSignature, TreeSize: &size, Detail: "external copy: " + err.Error()})
				continue
			}
		}
		external[size] = ext
	}
	sizes := make([]uint64, 0, len(bySize)+len(external))
	for s := range bySize {
		sizes = append(sizes, s)
	}
	for s := range external {
		if _, ok := bySize[s]; !ok {
			sizes = append(sizes, s)
		}
	}
	slices.Sort(sizes)

	// The log: contiguous, in sealing order within each checkpoint; its root at every size a
	// checkpoint names is compared with the checkpoints afterwards.
	var f integrity.Frontier
	roots := map[uint64]integrity.Hash{}
	next := 0 // index into sizes of the next checkpoint to reach
	intervalStart := uint64(0)
	var prev *store.Leaf
	gap := false
	for next < len(sizes) && sizes[next] == 0 {
		roots[0] = integrity.EmptyRoot
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
			if !gap {
				roots[f.Size] = f.Root()
			}
			intervalStart = f.Size
			next++
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	checkCheckpoints(&rep, sizes, bySize, external, roots, f.Size)
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
			h, err := row.Event.ComputeHash(sealedVersion(row.Event, row.Leaf.HashVersion))
			if err != nil || h != row.Leaf.EventHash {
				id, idx := row.Event.EventID, row.Leaf.Index
				rep.Add(Problem{Kind: ProblemModified, EventID: &id, LeafIndex: &idx,
					Detail: fmt.Sprintf("event %s no longer hashes to the hash sealed in leaf %d", id, idx) + changeDetail(row.Event, err)})
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
			if opts.Cold != nil && opts.Cold(*l) {
				rep.Cold++
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

// checkCheckpoints compares the log (its size, and its roots at the sizes checkpoints name) with
// the database's checkpoints and their copies outside it. A copy the log no longer extends,
// while the database's own checkpoints all agree with the log, is a fork: reported once, by
// the newest such copy, with how many sealed events it covers beyond the last checkpoint both
// histories share. Anything else that disagrees is reported as it is (an altered leaf, an
// altered or missing checkpoint, a truncation).
func checkCheckpoints(rep *Report, sizes []uint64, db map[uint64]store.StoredCheckpoint, external map[uint64]integrity.Checkpoint, roots map[uint64]integrity.Hash, logSize uint64) {
	extends := func(size uint64, root integrity.Hash) bool {
		r, ok := roots[size]
		return ok && r == root
	}
	var problems []Problem // those the database's own checkpoints raise
	var forked []uint64    // sizes of outside copies the log does not extend
	shared := uint64(0)    // the largest size before the fork at which an outside copy and the log agree
	var longest uint64
	for i, size := range sizes {
		cp, inDB := db[size]
		ext, outside := external[size]
		longest = max(longest, size)
		switch {
		case outside && extends(size, ext.RootHash):
			if len(forked) == 0 {
				shared = size // copies past the fork, of the log sealed anew, agree too
			}
			if !inDB {
				rep.Add(Problem{Kind: ProblemCheckpointMissing, TreeSize: &size, Detail: fmt.Sprintf("the checkpoint of size %d made at %s is kept outside the database but missing from it", size, ext.Timestamp.Format(time.RFC3339))})
			} else if cp.RootHash != ext.RootHash {
				rep.Add(Problem{Kind: ProblemCheckpointAltered, TreeSize: &size, Detail: fmt.Sprintf("the checkpoint of size %d has root %s in the database and %s outside it", size, cp.RootHash, ext.RootHash)})
			}
		case outside:
			forked = append(forked, size)
		}
		if inDB && !(outside && extends(size, ext.RootHash)) {
			if _, reached := roots[size]; reached && !extends(size, cp.RootHash) {
				from := uint64(0)
				if i > 0 {
					from = sizes[i-1]
				}
				detail := fmt.Sprintf("the leaves no longer lead to the root of the checkpoint of size %d made at %s: a leaf in [%d, %d) was altered", size, cp.Timestamp.Format(time.RFC3339), from, size)
				if size == 0 {
					detail = "the checkpoint of the empty log has a root other than the empty tree's"
				}
				problems = append(problems, Problem{Kind: ProblemLogAltered, TreeSize: &size, Detail: detail})
			}
		}
	}
	dbLongest := uint64(0)
	for size := range db {
		dbLongest = max(dbLongest, size)
	}
	if dbLongest > logSize {
		problems = append(problems, Problem{Kind: ProblemTruncated, TreeSize: &dbLongest, Detail: fmt.Sprintf("the log has %d leaves but a checkpoint says it had %d: the newest were removed", logSize, dbLongest)})
	}
	if len(forked) > 0 && len(problems) == 0 {
		newest := external[forked[len(forked)-1]]
		size, since := newest.TreeSize, "the log began"
		if base, ok := external[shared]; ok && shared > 0 {
			since = fmt.Sprintf("the checkpoint of size %d made at %s, the last the log still extends", shared, base.Timestamp.Format(time.RFC3339))
		} else if base, ok := db[shared]; ok && shared > 0 {
			since = fmt.Sprintf("the checkpoint of size %d made at %s", shared, base.Timestamp.Format(time.RFC3339))
		}
		rep.Add(Problem{Kind: ProblemFork, TreeSize: &size, Detail: fmt.Sprintf(
			"acknowledged events lost after a failover (a log fork): the log no longer extends the checkpoint of size %d made at %s, kept outside the database; "+
				"up to %d sealed events, sealed after %s, are not in the log as they were sealed (the log now has %d leaves and agrees with every checkpoint in the database). "+
				"No leaf was altered: the database lost what it had sealed and sealed anew, as a failover to a standby that had not received them does",
			size, newest.Timestamp.Format(time.RFC3339), size-shared, since, logSize)})
		return
	}
	for _, p := range problems {
		rep.Add(p)
	}
	// Without a fork's consistent log, every outside copy it does not extend is what it looks
	// like: a checkpoint missing or altered, leaves altered, or the newest cut.
	for _, size := range forked {
		size := size
		cp, inDB := db[size]
		ext := external[size]
		switch {
		case !inDB:
			rep.Add(Problem{Kind: ProblemCheckpointMissing, TreeSize: &size, Detail: fmt.Sprintf("the checkpoint of size %d made at %s is kept outside the database but missing from it", size, ext.Timestamp.Format(time.RFC3339))})
		case cp.RootHash != ext.RootHash:
			rep.Add(Problem{Kind: ProblemCheckpointAltered, TreeSize: &size, Detail: fmt.Sprintf("the checkpoint of size %d has root %s in the database and %s outside it", size, cp.RootHash, ext.RootHash)})
		}
		if _, reached := roots[size]; reached {
			rep.Add(Problem{Kind: ProblemLogAltered, TreeSize: &size, Detail: fmt.Sprintf("the leaves no longer lead to the root of the checkpoint of size %d made at %s, kept outside the database: a leaf before it was altered", size, ext.Timestamp.Format(time.RFC3339))})
		}
	}
	if longest > logSize && longest > dbLongest {
		rep.Add(Problem{Kind: ProblemTruncated, TreeSize: &longest, Detail: fmt.Sprintf("the log has %d leaves but a checkpoint kept outside the database says it had %d: the newest were removed", logSize, longest)})
	}
}

// sealedVersion is the encoding an event is recomputed in: the version stored with its hash (a
// batch of the log holds events of both versions), else its leaf's, the batch's version in
// which the seal hashed a stored event that had no hash.
func sealedVersion(e *audit.Event, leafVersion int) int {
	return cmp.Or(e.HashVersion, leafVersion, integrity.HashVersion)
}
