package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/google/uuid"
)

// ProblemColdFile: a cold file that does not read back as its manifest describes it (missing,
// other bytes, other rows).
const ProblemColdFile = "cold_file_altered"

// Cold returns the cold tier in the archive's bucket (closed with the Archive).
func (a *Archive) Cold(opts ColdOptions) *Cold { return NewCold(a.bucket, opts) }

// LeafHashes returns the event hash the integrity log sealed for each of ids it holds: the
// database's log (ledger.Proofs' leaves), when verify can reach it.
type LeafHashes func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]integrity.Hash, error)

// VerifyCold verifies one cold file: its bytes and rows against its manifest, every event
// against the hash stored with it, and, with sealed, against the hash the integrity log sealed
// for it. Every problem names the file's key.
func (c *Cold) VerifyCold(ctx context.Context, f ColdFile, sealed LeafHashes) (ledger.Report, error) {
	began := time.Now()
	rep := ledger.Report{Problems: []ledger.Problem{}}
	type row struct {
		id   uuid.UUID
		hash integrity.Hash
	}
	var batch []row
	check := func() error {
		if sealed == nil || len(batch) == 0 {
			batch = batch[:0]
			return nil
		}
		ids := make([]uuid.UUID, len(batch))
		for i, r := range batch {
			ids[i] = r.id
		}
		got, err := sealed(ctx, ids)
		if err != nil {
			return err
		}
		for _, r := range batch {
			h, ok := got[r.id]
			switch {
			case !ok:
				rep.Pending++
			case h != r.hash:
				id := r.id
				rep.Add(ledger.Problem{Kind: ledger.ProblemModified, EventID: &id,
					Detail: fmt.Sprintf("event %s in cold file %s no longer hashes to the hash sealed in the log", id, f.Key)})
			default:
				rep.Sealed++
			}
		}
		batch = batch[:0]
		return nil
	}
	err := c.Scan(ctx, f, func(r *ColdRow) error {
		rep.Events++
		e := r.Event()
		h, err := ledger.Recompute(e)
		if err != nil || (len(e.EventHash) > 0 && (len(e.EventHash) != len(h) || integrity.Hash(e.EventHash) != h)) {
			id := e.EventID
			rep.Add(ledger.Problem{Kind: ledger.ProblemModified, EventID: &id,
				Detail: fmt.Sprintf("event %s in cold file %s no longer hashes to the hash written with it", id, f.Key) + ledger.ChangeDetail(&e, err)})
		}
		batch = append(batch, row{e.EventID, h})
		if len(batch) == 1000 {
			return check()
		}
		return nil
	})
	if err == nil {
		err = check()
	}
	if errors.Is(err, ErrVerify) {
		rep.Add(ledger.Problem{Kind: ProblemColdFile, Detail: err.Error()})
		err = nil
	}
	rep.OK = rep.ProblemCount == 0
	rep.Duration = time.Since(began)
	return rep, err
}
