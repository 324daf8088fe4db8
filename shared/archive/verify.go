package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/google/uuid"
)

// ProblemUnproven: an archive that carries no log range, so nothing ties it to the log.
const ProblemUnproven = "unproven_archive"

// The verification is here, beside the archive it reads, rather than in ledger: the write
// path imports ledger to hash events, and must not pull in every blob driver.

type leafKey struct {
	id    uuid.UUID
	ts    int64
	class int
}

// Verify verifies one archived partition offline, without the database: the signature of the
// checkpoint its manifest carries, the leaves of its range against that checkpoint's root, and
// every archived event against its leaf — naming events modified, missing from the archive
// (deleted) or not in the log (inserted).
func (arch *Archive) Verify(ctx context.Context, p Partition, keys []integrity.PublicKey) (ledger.Report, error) {
	began := time.Now()
	rep := ledger.Report{Problems: []ledger.Problem{}}
	m, err := arch.ReadManifest(ctx, p)
	if err != nil {
		return rep, err
	}
	if m.Log == nil {
		if m.RowCount > 0 {
			rep.Add(ledger.Problem{Kind: ProblemUnproven, Detail: fmt.Sprintf("the archive of %s has no log range: it was written before tamper evidence, or none of its events was sealed", p.Name)})
		}
		rep.OK = rep.ProblemCount == 0
		return rep, nil
	}
	cp := m.Log.Checkpoint
	rep.Checkpoints, rep.LatestCheckpoint = 1, &cp
	size := cp.TreeSize
	if len(keys) > 0 {
		if err := cp.Verify(keys); err != nil {
			rep.Add(ledger.Problem{Kind: ledger.ProblemBadSignature, TreeSize: &size, Detail: err.Error()})
		}
	}
	leaves, err := arch.ReadLog(ctx, p, m.Log)
	if err != nil {
		return rep, err
	}
	rep.Leaves = uint64(len(leaves))
	hashes := make([]integrity.Hash, len(leaves))
	mine := make(map[leafKey]integrity.LogLeaf)
	monthEnd := p.Month.AddDate(0, 1, 0)
	for i, l := range leaves {
		hashes[i] = integrity.LeafHash(l.EventHash)
		if l.RetentionDays == p.Class && !l.EventTimestamp.Before(p.Month) && l.EventTimestamp.Before(monthEnd) {
			mine[leafKey{l.EventID, l.EventTimestamp.UnixMicro(), l.RetentionDays}] = l
		}
	}
	if err := m.Log.Verify(hashes); err != nil {
		rep.Add(ledger.Problem{Kind: ledger.ProblemLogAltered, TreeSize: &size, Detail: err.Error()})
	}
	c, err := arch.Fetch(ctx, p)
	if err != nil {
		return rep, err
	}
	defer c.Close()
	for e, err := range c.Events() {
		if err != nil {
			return rep, err
		}
		rep.Events++
		k := leafKey{e.EventID, e.EventTimestamp.UnixMicro(), e.RetentionDays}
		l, ok := mine[k]
		if !ok {
			id := e.EventID
			rep.Add(ledger.Problem{Kind: ledger.ProblemInserted, EventID: &id, Detail: fmt.Sprintf("archived event %s is in no leaf of the archive's log range", id)})
			continue
		}
		delete(mine, k)
		rep.Sealed++
		if h, err := ledger.Recompute(*e); err != nil || h != l.EventHash {
			id, idx := e.EventID, l.Index
			rep.Add(ledger.Problem{Kind: ledger.ProblemModified, EventID: &id, LeafIndex: &idx, Detail: fmt.Sprintf("archived event %s no longer hashes to the hash sealed in leaf %d%s", id, idx, ledger.ChangeDetail(e, err))})
		}
	}
	for _, l := range mine {
		id, idx := uuid.UUID(l.EventID), l.Index
		rep.Add(ledger.Problem{Kind: ledger.ProblemDeleted, EventID: &id, LeafIndex: &idx, Detail: fmt.Sprintf("event %s, sealed in leaf %d, is missing from the archive", id, idx)})
	}
	rep.OK = rep.ProblemCount == 0
	rep.Duration = time.Since(began)
	return rep, nil
}
