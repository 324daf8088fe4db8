package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
)

// State is what the log says of one stored event.
type State int

// The states of an event against the log.
const (
	// Verified: sealed within the latest checkpoint, whose signature verifies; the stored row
	// recomputes to the hash sealed for it, and its inclusion proof leads to the checkpoint's
	// root.
	Verified State = iota + 1
	// Unsealed: written through auditstore and waiting for its seal, or stored before tamper
	// evidence existed. Not verified yet, and no sign of tampering.
	Unsealed
	// Tampered: the stored row no longer hashes to its sealed hash, the log no longer proves
	// it, the checkpoint does not verify, or it was never written through auditstore.
	Tampered
)

// EventCheck is the verdict on one event.
type EventCheck struct {
	State State
	// Sealed is the hash the log sealed for the event (zero when it is not in the log).
	Sealed integrity.Hash
	// Actual is the hash recomputed from the stored row.
	Actual integrity.Hash
	// Detail says why a tampered event is one, or why an event is not verified yet.
	Detail string
}

// CheckEvents checks each event against the latest checkpoint: its hash recomputed from the
// stored row and compared with its leaf, and its inclusion proven. keys are the trusted
// checkpoint keys (none: signatures are not checked). Proofs share their reads: events sealed
// near each other cost little more than one.
func CheckEvents(ctx context.Context, st *store.Store, keys []integrity.PublicKey, events []audit.Event) (map[uuid.UUID]EventCheck, error) {
	out := make(map[uuid.UUID]EventCheck, len(events))
	if len(events) == 0 {
		return out, nil
	}
	cp, err := st.LatestCheckpoint(ctx)
	hasCheckpoint := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	var cpProblem string
	if hasCheckpoint && len(keys) > 0 {
		if !cp.Signed {
			cpProblem = fmt.Sprintf("the latest checkpoint (tree size %d) is not signed", cp.TreeSize)
		} else if err := cp.Verify(keys); err != nil {
			cpProblem = "the latest checkpoint does not verify: " + err.Error()
		}
	}
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.EventID
	}
	leaves, err := st.LeavesOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	leafOf := make(map[uuid.UUID]store.Leaf, len(leaves))
	for _, l := range leaves {
		if _, seen := leafOf[l.EventID]; !seen && hasCheckpoint && l.Index < cp.TreeSize {
			leafOf[l.EventID] = l
		}
	}
	var unsealedIDs []uuid.UUID
	for _, e := range events {
		if _, ok := leafOf[e.EventID]; !ok {
			unsealedIDs = append(unsealedIDs, e.EventID)
		}
	}
	waiting := map[uuid.UUID]bool{}
	var firstSeal *store.StoredCheckpoint
	if len(unsealedIDs) > 0 {
		if waiting, err = st.UnsealedKeys(ctx, unsealedIDs); err != nil {
			return nil, err
		}
		first, err := st.Checkpoints(ctx, 0, 1<<62, 1)
		if err != nil {
			return nil, err
		}
		if len(first) > 0 {
			firstSeal = &first[0]
		}
	}
	// The proofs of every sealed event, their spans resolved in one read.
	spanIndex := map[integrity.Span]int{}
	var spans []integrity.Span
	proofSpans := map[uuid.UUID][]integrity.Span{}
	for id, l := range leafOf {
		ss, err := integrity.InclusionSpans(l.Index, cp.TreeSize)
		if err != nil {
			return nil, err
		}
		proofSpans[id] = ss
		for _, sp := range ss {
			if _, ok := spanIndex[sp]; !ok {
				spanIndex[sp] = len(spans)
				spans = append(spans, sp)
			}
		}
	}
	var spanHashes []integrity.Hash
	if len(spans) > 0 {
		if spanHashes, err = st.SpanHashes(ctx, spans); err != nil {
			return nil, err
		}
	}
	for _, e := range events {
		var c EventCheck
		l, sealed := leafOf[e.EventID]
		version := e.HashVersion
		if sealed {
			version = sealedVersion(&e, l.HashVersion)
		}
		actual, herr := e.ComputeHash(cmp.Or(version, integrity.HashVersion))
		c.Actual = actual
		switch {
		case !sealed && waiting[e.EventID]:
			c.State, c.Detail = Unsealed, "written and waiting for its seal"
		case !sealed && e.EventHash == nil && (firstSeal == nil || e.ReceivedAt.Before(firstSeal.Timestamp)):
			c.State, c.Detail = Unsealed, "stored before tamper evidence: nothing to verify it against"
		case !sealed:
			c.State, c.Detail = Tampered, "stored but never written through auditstore: it is in no leaf of the log and no write of it is pending"
		default:
			c.Sealed = l.EventHash
			path := make([]integrity.Hash, len(proofSpans[e.EventID]))
			for i, sp := range proofSpans[e.EventID] {
				path[i] = spanHashes[spanIndex[sp]]
			}
			switch {
			case herr != nil || actual != l.EventHash:
				c.State, c.Detail = Tampered, fmt.Sprintf("the stored event no longer hashes to the hash sealed in leaf %d", l.Index)+changeDetail(&e, herr)
			case cpProblem != "":
				c.State, c.Detail = Tampered, cpProblem
			case integrity.VerifyInclusion(integrity.LeafHash(l.EventHash), l.Index, cp.TreeSize, path, cp.RootHash) != nil:
				c.State, c.Detail = Tampered, fmt.Sprintf("the log no longer proves leaf %d in the checkpoint of tree size %d", l.Index, cp.TreeSize)
			default:
				c.State, c.Detail = Verified, fmt.Sprintf("sealed in leaf %d, proven in the checkpoint of tree size %d", l.Index, cp.TreeSize)
			}
		}
		out[e.EventID] = c
	}
	return out, nil
}
