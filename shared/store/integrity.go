package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// storedLevel is the lowest level of the Merkle log kept in audit_log_nodes: a node of 16
// leaves. Lower nodes are computed from at most 16 leaves when a proof needs them, which keeps
// the node table at 1/16 of the leaf count (about 6 bytes an event) for one extra read.
const storedLevel = 4

// sealLockKey serialises sealers: the log has one order, fixed by one writer at a time.
const sealLockKey = 0x617564_5365616c // "aud" "Seal"

// ErrSealing means another sealer holds the log's lock.
var ErrSealing = errors.New("another sealer is appending to the log")

// SealParams are the arguments of Seal.
type SealParams struct {
	// Limit bounds the events sealed in one transaction (and one checkpoint).
	Limit int
	// Now is the checkpoint's time.
	Now time.Time
	// Signer signs the new checkpoint; nil stores it unsigned. (A stored event without an event
	// hash, written before tamper evidence existed or by a bulk path that does not hash, is
	// hashed by Seal itself, in the current version of the encoding.)
	Signer *integrity.Signer
	// Replicas are the standbys that must have flushed a new round's events before they are
	// sealed: the round's snapshot is taken with the WAL position it lies below, and the seal
	// waits (its transaction open, up to ReplicaWait) until they have flushed that far. A wait
	// that times out seals nothing (SealResult.AwaitingStandbys). Taken and awaited in the
	// seal's own transaction, the snapshot is always of the server the seal writes to, also
	// across a failover.
	Replicas Replicas
	// ReplicaWait bounds the wait for Replicas.
	ReplicaWait time.Duration
}

// SealResult says what one Seal did.
type SealResult struct {
	// Sealed counts the events appended to the log.
	Sealed int
	// More says keys are left that this call did not reach (it met p.Limit): seal again.
	More bool
	// Checkpoint is the checkpoint written, if any (Sealed > 0, or the log had none).
	Checkpoint *integrity.Checkpoint
	// Lags are, for each sealed event, the time from its first sight to its seal.
	Lags []time.Duration
	// AwaitingStandbys says the standbys had not flushed the new round's events within
	// SealParams.ReplicaWait: nothing was sealed.
	AwaitingStandbys bool
}

// sealCandidate is a key not sealed yet. Ids are [16]byte, which pgx encodes and decodes in
// binary; a uuid.UUID goes through its text form (see copy.go).
type sealCandidate struct {
	id        [16]byte
	ts        time.Time
	class     int
	hash      []byte
	firstSeen time.Time
	xid       string
}

// noSnapshot is a snapshot that sees no transaction: the base of the first round.
const noSnapshot = "1:1:"

// sealRound is the part of the keys one Seal works through: those visible to snapshot and not
// to prev, in (xid, event_id) order after (afterXID, afterID) when afterXID is set.
type sealRound struct {
	snapshot, prev    string
	afterXID, afterID *string
}

// sealedSnapshotSQL is the snapshot of the last complete round: every key it sees is sealed
// (NULL before the first). Keys sealed under migration 000002 have no xid.
const sealedSnapshotSQL = `SELECT snapshot FROM audit_log_batches WHERE after_xid IS NULL ORDER BY seal_no DESC LIMIT 1`

// candidatesSQL reads the next keys of a round. A key made again after pruning, for an event
// stored (and so sealed) before, has no xid (see resolvePruned): it is not sealed twice.
const candidatesSQL = `
SELECT event_id, event_timestamp, retention_days, event_hash, first_seen, xid::text
FROM audit_event_keys
WHERE xid >= pg_snapshot_xmin($2::pg_snapshot) AND xid < pg_snapshot_xmax($1::pg_snapshot)
  AND (xid, event_id) > (coalesce($3::xid8, '0'::xid8), coalesce($4::uuid, '00000000-0000-0000-0000-000000000000'::uuid))
  AND pg_visible_in_snapshot(xid, $1::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, $2::pg_snapshot)
ORDER BY xid, event_id LIMIT $5`

// Seal appends up to p.Limit new events to the log, in event_id order, with their nodes, and
// writes a checkpoint of the new size, all in one transaction: the log and its checkpoints
// never disagree. It returns ErrSealing while another sealer runs.
//
// New events are found by transaction visibility, not by marking their keys: every batch
// records the snapshot its round ran to, and a round seals the keys visible to its snapshot
// and not to the previous round's. A writer that commits after a round's snapshot is in the
// next round, however its xid compares, so no key is skipped and none is written twice;
// sealing writes one batch row, not a row per event.
func (s *Store) Seal(ctx context.Context, p SealParams) (SealResult, error) {
	var res SealResult
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("seal: %w", interpretError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, int64(sealLockKey)).Scan(&locked); err != nil {
		return res, fmt.Errorf("seal: %w", interpretError(err))
	}
	if !locked {
		return res, ErrSealing
	}
	var (
		sealNo, size   int64
		round          sealRound
		haveCheckpoint bool
	)
	err = tx.QueryRow(ctx, `
SELECT coalesce(b.seal_no + 1, 0), coalesce(b.first_leaf + b.leaf_count, 0), coalesce(b.snapshot::text, $1),
       coalesce(b.prev_snapshot::text, $1), b.after_xid::text, b.after_id::text, EXISTS (SELECT 1 FROM audit_checkpoints)
FROM (SELECT 1) one LEFT JOIN (SELECT * FROM audit_log_batches ORDER BY seal_no DESC LIMIT 1) b ON true`, noSnapshot).
		Scan(&sealNo, &size, &round.snapshot, &round.prev, &round.afterXID, &round.afterID, &haveCheckpoint)
	if err != nil {
		return res, fmt.Errorf("seal: log state: %w", interpretError(err))
	}
	// newRound begins the round after the last: from its snapshot to now, once the standbys
	// (p.Replicas) have flushed what that snapshot sees.
	newRound := func() (bool, error) {
		next := sealRound{prev: round.snapshot}
		var pos string
		// The WAL position is read as the statement runs, after its snapshot was taken: every
		// commit the snapshot sees lies below it (asynchronous ones too: a commit record is
		// inserted before the transaction becomes visible).
		if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text`).Scan(&next.snapshot, &pos); err != nil {
			return false, fmt.Errorf("seal: %w", interpretError(err))
		}
		lsn, err := ParseLSN(pos)
		if err != nil {
			return false, err
		}
		if ok, err := awaitStandbys(ctx, tx, p.Replicas, lsn, p.ReplicaWait); !ok || err != nil {
			res.AwaitingStandbys = err == nil
			return false, err
		}
		round = next
		return true, nil
	}
	if round.afterXID == nil {
		// The last round is complete: the next begins.
		if ok, err := newRound(); !ok {
			return res, err
		}
	}
	cands, err := sealCandidates(ctx, tx, round, p.Limit)
	if err != nil {
		return res, err
	}
	if len(cands) == 0 && round.afterXID != nil {
		// The unfinished round had exactly p.Limit keys: it ends here, and the next begins.
		if ok, err := newRound(); !ok {
			return res, err
		}
		if cands, err = sealCandidates(ctx, tx, round, p.Limit); err != nil {
			return res, err
		}
	}
	if len(cands) == 0 {
		// Nothing new. The round is not recorded: the next starts from the same snapshot and
		// sees all that this one would have.
		return res, s.sealCheckpointOnly(ctx, tx, haveCheckpoint, size, p, &res)
	}
	if len(cands) == p.Limit {
		last := cands[len(cands)-1]
		id := uuid.UUID(last.id).String()
		round.afterXID, round.afterID, res.More = &last.xid, &id, true
	} else {
		round.afterXID, round.afterID = nil, nil
	}

	// The key carries the event hash the write path computed (it is written in the event's own
	// transaction, so the event is there); only keys without one send the sealer to the row.
	// A key whose event was never stored (its insert met an existing row) seals nothing.
	fresh := cands
	var missingHash []int
	for i, c := range fresh {
		if c.hash == nil {
			missingHash = append(missingHash, i)
		}
	}
	if len(missingHash) > 0 {
		if err := s.hashStored(ctx, tx, fresh, missingHash); err != nil {
			return res, err
		}
		fresh = slices.DeleteFunc(slices.Clone(fresh), func(c sealCandidate) bool { return c.hash == nil })
	}
	// The order within a seal is the event ids' order: fixed now, and checkable later.
	slices.SortFunc(fresh, func(a, b sealCandidate) int { return bytes.Compare(a.id[:], b.id[:]) })

	frontier, err := s.frontier(ctx, tx, uint64(size))
	if err != nil {
		return res, err
	}
	n := len(fresh)
	records := make([]byte, 0, n*integrity.LeafRecordSize)
	partitions := map[string]bool{}
	seconds := map[int64]bool{}
	lastClass, lastYear, lastMonth := 0, 0, time.Month(0)
	var nodeLevels []int16
	var nodeIdx []int64
	var nodeHashes [][]byte
	emit := func(node integrity.Node, h integrity.Hash) {
		if node.Level >= storedLevel {
			nodeLevels = append(nodeLevels, int16(node.Level))
			nodeIdx = append(nodeIdx, int64(node.Index))
			nodeHashes = append(nodeHashes, h[:])
		}
	}
	now := time.Now()
	for _, c := range fresh {
		h, err := integrity.HashFromBytes(c.hash)
		if err != nil {
			return res, fmt.Errorf("seal: event %s: stored event_hash: %w", uuid.UUID(c.id), err)
		}
		records = integrity.LogLeaf{EventID: c.id, EventTimestamp: c.ts, RetentionDays: c.class, EventHash: h}.AppendRecord(records)
		// Most leaves share a partition and a second with the one before: no formatting then.
		if y, m, _ := c.ts.UTC().Date(); c.class != lastClass || y != lastYear || m != lastMonth {
			lastClass, lastYear, lastMonth = c.class, y, m
			partitions[partitionName(c.class, c.ts)] = true
		}
		seconds[idSecond(c.id)] = true
		frontier.Append(integrity.LeafHash(h), emit)
		res.Lags = append(res.Lags, now.Sub(c.firstSeen))
	}
	if _, err := tx.Exec(ctx, `
INSERT INTO audit_log_batches (seal_no, first_leaf, leaf_count, hash_version, snapshot, prev_snapshot, after_xid, after_id, partitions, id_seconds, leaves)
VALUES ($1, $2, $3, $4, $5::pg_snapshot, $6::pg_snapshot, $7::xid8, $8::uuid, $9, $10, $11)`,
		sealNo, size, n, int16(integrity.HashVersion), round.snapshot, round.prev, round.afterXID, round.afterID,
		append([]string{}, slices.Sorted(maps.Keys(partitions))...), append([]int64{}, slices.Sorted(maps.Keys(seconds))...), records); err != nil {
		return res, fmt.Errorf("seal: batch: %w", interpretError(err))
	}
	if n > 0 {
		if len(nodeIdx) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO audit_log_nodes (level, node_index, hash)
SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`, nodeLevels, nodeIdx, nodeHashes); err != nil {
				return res, fmt.Errorf("seal: nodes: %w", interpretError(err))
			}
		}
	}
	if n > 0 || !haveCheckpoint {
		if err := s.writeCheckpoint(ctx, tx, frontier, p, &res); err != nil {
			return res, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return SealResult{}, fmt.Errorf("seal: commit: %w", interpretError(err))
	}
	res.Sealed = n
	return res, nil
}

// sealCandidates reads up to limit keys of the round, in (xid, event_id) order.
func sealCandidates(ctx context.Context, tx pgx.Tx, r sealRound, limit int) ([]sealCandidate, error) {
	rows, err := tx.Query(ctx, candidatesSQL, r.snapshot, r.prev, r.afterXID, r.afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("seal: new keys: %w", interpretError(err))
	}
	// Sized for a full round at once: growing a slice of thousands costs more than its rows.
	cands := make([]sealCandidate, 0, min(limit, 1<<16))
	var c sealCandidate
	_, err = pgx.ForEachRow(rows, []any{&c.id, &c.ts, &c.class, &c.hash, &c.firstSeen, &c.xid}, func() error {
		cands = append(cands, c)
		c.hash = nil // the next row's hash gets its own array
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seal: new keys: %w", interpretError(err))
	}
	return cands, nil
}

// sealCheckpointOnly ends a Seal that found nothing new: the log's first checkpoint (of the
// empty log, or of a log migrated without one) is still written.
func (s *Store) sealCheckpointOnly(ctx context.Context, tx pgx.Tx, haveCheckpoint bool, size int64, p SealParams, res *SealResult) error {
	if haveCheckpoint {
		return nil
	}
	frontier, err := s.frontier(ctx, tx, uint64(size))
	if err != nil {
		return err
	}
	if err := s.writeCheckpoint(ctx, tx, frontier, p, res); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("seal: commit: %w", interpretError(err))
	}
	return nil
}

// writeCheckpoint signs and stores the checkpoint of the log the frontier ends.
func (s *Store) writeCheckpoint(ctx context.Context, tx pgx.Tx, f integrity.Frontier, p SealParams, res *SealResult) error {
	cp := integrity.Checkpoint{TreeSize: f.Size, RootHash: f.Root(), Timestamp: p.Now.UTC().Truncate(time.Microsecond)}
	if p.Signer != nil {
		cp = p.Signer.Sign(cp)
	}
	var keyID *string
	if cp.KeyID != "" {
		keyID = &cp.KeyID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (tree_size, root_hash, created_at, key_id, signature)
VALUES ($1, $2, $3, $4, $5)`, int64(cp.TreeSize), cp.RootHash[:], cp.Timestamp, keyID, cp.Signature); err != nil {
		return fmt.Errorf("seal: checkpoint: %w", interpretError(err))
	}
	res.Checkpoint = &cp
	return nil
}

// idSecond is the batch index key of an event id: its first 48 bits (a UUIDv7's Unix time in
// milliseconds) in seconds.
func idSecond(id [16]byte) int64 {
	return int64(binary.BigEndian.Uint64(id[:8])>>16) / 1000
}

// partitionName names the partition of a retention class and month as a batch lists it.
func partitionName(class int, ts time.Time) string {
	ts = ts.UTC()
	return fmt.Sprintf("r%d_%04d_%02d", class, ts.Year(), ts.Month())
}

// hashStored fills in the hash of fresh[idx] from their stored rows.
func (s *Store) hashStored(ctx context.Context, db DBTX, fresh []sealCandidate, idx []int) error {
	ids := make([][16]byte, len(idx))
	tss := make([]time.Time, len(idx))
	classes := make([]int32, len(idx))
	pos := make(map[[16]byte]int, len(idx))
	for j, i := range idx {
		ids[j], tss[j], classes[j] = fresh[i].id, fresh[i].ts, int32(fresh[i].class)
		pos[fresh[i].id] = i
	}
	// Planned with its values each time (an unnamed statement, described first so the arrays
	// go in binary): a generic plan made while the partitions were small joined the ids by a
	// sequential scan of every partition, kept as they grew.
	rows, err := db.Query(ctx, `SELECT `+selectColumns+` FROM audit_events
WHERE (event_id, event_timestamp, retention_days) IN (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::integer[]))`,
		pgx.QueryExecModeDescribeExec, ids, tss, classes)
	if err != nil {
		return fmt.Errorf("seal: stored events: %w", interpretError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var e audit.Event
		if err := scanEvent(rows, &e); err != nil {
			return fmt.Errorf("seal: stored events: %w", interpretError(err))
		}
		h, err := e.ComputeHash(integrity.HashVersion)
		if err != nil {
			return fmt.Errorf("seal: hash of event %s: %w", e.EventID, err)
		}
		i := pos[e.EventID]
		fresh[i].hash = h[:]
	}
	return interpretError(rows.Err())
}

// frontier reads the right edge of the log of the given size.
func (s *Store) frontier(ctx context.Context, db DBTX, size uint64) (integrity.Frontier, error) {
	nodes := integrity.FrontierNodes(size)
	hashes, err := s.logNodes(ctx, db, nodes)
	if err != nil {
		return integrity.Frontier{}, err
	}
	f := integrity.Frontier{Size: size}
	for _, n := range nodes {
		f.Nodes = append(f.Nodes, hashes[n])
	}
	return f, nil
}

// logNodes returns the hashes of perfect subtrees of the log: stored nodes from
// audit_log_nodes, lower ones computed from their leaves. A node that is not there (beyond the
// log, or its rows deleted) is an error naming it.
func (s *Store) logNodes(ctx context.Context, db DBTX, nodes []integrity.Node) (map[integrity.Node]integrity.Hash, error) {
	out := make(map[integrity.Node]integrity.Hash, len(nodes))
	var levels []int16
	var idx []int64
	var leaves []int64
	for _, n := range nodes {
		if n.Level >= storedLevel {
			levels, idx = append(levels, int16(n.Level)), append(idx, int64(n.Index))
			continue
		}
		for i := n.Start(); i < n.End(); i++ {
			leaves = append(leaves, int64(i))
		}
	}
	if len(levels) > 0 {
		// Planned with its values, like hashStored's read: a generic plan made on a small log
		// scanned the whole node table for every seal and proof.
		rows, err := db.Query(ctx, `SELECT level, node_index, hash FROM audit_log_nodes
WHERE (level, node_index) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))`, pgx.QueryExecModeDescribeExec, levels, idx)
		if err != nil {
			return nil, fmt.Errorf("log nodes: %w", interpretError(err))
		}
		var level int16
		var index int64
		var hash []byte
		_, err = pgx.ForEachRow(rows, []any{&level, &index, &hash}, func() error {
			h, err := integrity.HashFromBytes(hash)
			out[integrity.Node{Level: uint8(level), Index: uint64(index)}] = h
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("log nodes: %w", interpretError(err))
		}
	}
	leafHash := make(map[uint64]integrity.Hash, len(leaves))
	if len(leaves) > 0 {
		rows, err := db.Query(ctx, `SELECT i, substring(b.leaves FROM (i - b.first_leaf)::integer * 60 + 29 FOR 32)
FROM unnest($1::bigint[]) i CROSS JOIN LATERAL (`+batchOfLeafSQL+`) b
WHERE i < b.first_leaf + b.leaf_count`, leaves)
		if err != nil {
			return nil, fmt.Errorf("log leaves: %w", interpretError(err))
		}
		var index int64
		var hash []byte
		_, err = pgx.ForEachRow(rows, []any{&index, &hash}, func() error {
			h, err := integrity.HashFromBytes(hash)
			leafHash[uint64(index)] = integrity.LeafHash(h)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("log leaves: %w", interpretError(err))
		}
	}
	for _, n := range nodes {
		if _, ok := out[n]; ok {
			continue
		}
		if n.Level >= storedLevel {
			return nil, fmt.Errorf("log node %d/%d is missing", n.Level, n.Index)
		}
		hs := make([]integrity.Hash, 0, n.End()-n.Start())
		for i := n.Start(); i < n.End(); i++ {
			h, ok := leafHash[i]
			if !ok {
				return nil, fmt.Errorf("log leaf %d is missing", i)
			}
			hs = append(hs, h)
		}
		out[n] = integrity.RootHash(hs)
	}
	return out, nil
}

// SpanHashes resolves the spans of a proof in the log.
func (s *Store) SpanHashes(ctx context.Context, spans []integrity.Span) ([]integrity.Hash, error) {
	var all []integrity.Node
	for _, sp := range spans {
		all = append(all, sp.Nodes()...)
	}
	hashes, err := s.logNodes(ctx, s.db, all)
	if err != nil {
		return nil, err
	}
	out := make([]integrity.Hash, len(spans))
	for i, sp := range spans {
		nodes := sp.Nodes()
		hs := make([]integrity.Hash, len(nodes))
		for j, n := range nodes {
			hs[j] = hashes[n]
		}
		out[i] = sp.HashOf(hs)
	}
	return out, nil
}

// Leaf is one entry of the log.
type Leaf struct {
	Index          uint64
	EventID        uuid.UUID
	EventTimestamp time.Time
	RetentionDays  int
	EventHash      integrity.Hash
	HashVersion    int
	SealedAt       time.Time
}

// batchOfLeafSQL is the batch that holds leaf i (a column of the enclosing query), if any.
const batchOfLeafSQL = `SELECT first_leaf, leaf_count, leaves, hash_version, sealed_at FROM audit_log_batches
WHERE first_leaf <= i AND leaf_count > 0 ORDER BY first_leaf DESC LIMIT 1`

// LeavesOf returns the leaves sealing the events with these ids (usually one each), in log
// order. The batches whose leaves have ids of the same seconds are read whole and searched:
// there is no index entry per event.
func (s *Store) LeavesOf(ctx context.Context, ids []uuid.UUID) ([]Leaf, error) {
	asked := make(map[[16]byte]bool, len(ids))
	var secs []int64
	for _, id := range ids {
		if !asked[id] {
			asked[id] = true
			secs = append(secs, idSecond(id))
		}
	}
	var out []Leaf
	// Planned with its values: a generic plan made while the log had few batches would read
	// them all for every proof, one batch row per seal from then on.
	err := s.forBatches(ctx, `SELECT first_leaf, leaf_count, leaves, hash_version, sealed_at FROM audit_log_batches
WHERE id_seconds && $1 AND leaf_count > 0 ORDER BY first_leaf`, []any{pgx.QueryExecModeDescribeExec, secs}, func(l Leaf) error {
		if asked[l.EventID] {
			out = append(out, l)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("leaves: %w", err)
	}
	return out, nil
}

func leafOf(r integrity.LogLeaf, version int, sealedAt time.Time) Leaf {
	return Leaf{Index: r.Index, EventID: r.EventID, EventTimestamp: r.EventTimestamp, RetentionDays: r.RetentionDays,
		EventHash: r.EventHash, HashVersion: version, SealedAt: sealedAt}
}

// leafColumns reads a leaf of the audit_log_leaves view in scanLeaf's order.
const leafColumns = `leaf_index, event_id, event_timestamp, retention_days, event_hash, hash_version, sealed_at`

func scanLeaf(r pgx.CollectableRow) (Leaf, error) {
	var l Leaf
	var idx int64
	var hash []byte
	if err := r.Scan(&idx, &l.EventID, &l.EventTimestamp, &l.RetentionDays, &hash, &l.HashVersion, &l.SealedAt); err != nil {
		return l, err
	}
	l.Index = uint64(idx)
	l.EventTimestamp = l.EventTimestamp.UTC()
	h, err := integrity.HashFromBytes(hash)
	l.EventHash = h
	return l, err
}

// StreamLeaves calls fn with every leaf from index from on, in order.
func (s *Store) StreamLeaves(ctx context.Context, from uint64, fn func(Leaf) error) error {
	return s.streamLeaves(ctx, from, math.MaxInt64, fn)
}

// streamLeaves calls fn with the leaves of [from, end), in order, unpacking their batches here
// rather than in the database. A leaf missing from a batch is not made up: the gap shows.
func (s *Store) streamLeaves(ctx context.Context, from, end uint64, fn func(Leaf) error) error {
	err := s.forBatches(ctx, `SELECT first_leaf, leaf_count, leaves, hash_version, sealed_at FROM audit_log_batches
WHERE leaf_count > 0 AND first_leaf + leaf_count > $1 AND first_leaf < $2 ORDER BY first_leaf`,
		[]any{int64(from), int64(min(end, math.MaxInt64))}, func(l Leaf) error {
			if l.Index < from || l.Index >= end {
				return nil
			}
			return fn(l)
		})
	if err != nil {
		return fmt.Errorf("leaves: %w", err)
	}
	return nil
}

// forBatches runs sql, which selects first_leaf, leaf_count, leaves, hash_version and sealed_at
// of batches, and calls fn with every leaf of each.
func (s *Store) forBatches(ctx context.Context, sql string, args []any, fn func(Leaf) error) error {
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return interpretError(err)
	}
	defer rows.Close()
	var first int64
	var count, version int
	var leaves []byte
	var sealedAt time.Time
	for rows.Next() {
		if err := rows.Scan(&first, &count, &leaves, &version, &sealedAt); err != nil {
			return interpretError(err)
		}
		if len(leaves) != count*integrity.LeafRecordSize {
			return fmt.Errorf("the batch from leaf %d holds %d bytes, not %d leaves", first, len(leaves), count)
		}
		for i := range count {
			rec := integrity.ParseRecord(uint64(first)+uint64(i), leaves[i*integrity.LeafRecordSize:])
			if err := fn(leafOf(rec, version, sealedAt)); err != nil {
				return err
			}
		}
	}
	return interpretError(rows.Err())
}

// StoredCheckpoint is a checkpoint as stored; Signed says whether it carries a signature.
type StoredCheckpoint struct {
	integrity.Checkpoint
	Signed bool
}

// Checkpoints returns the checkpoints with tree sizes in [fromSize, toSize], oldest first, at
// most limit of them (0: all).
func (s *Store) Checkpoints(ctx context.Context, fromSize, toSize uint64, limit int) ([]StoredCheckpoint, error) {
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.db.Query(ctx, `SELECT tree_size, root_hash, created_at, coalesce(key_id, ''), signature
FROM audit_checkpoints WHERE tree_size BETWEEN $1 AND $2 ORDER BY tree_size LIMIT $3`, int64(fromSize), int64(min(toSize, 1<<62)), lim)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", interpretError(err))
	}
	out, err := pgx.CollectRows(rows, scanCheckpoint)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", interpretError(err))
	}
	return out, nil
}

// LatestCheckpoint returns the checkpoint of the largest tree, or ErrNotFound.
func (s *Store) LatestCheckpoint(ctx context.Context) (StoredCheckpoint, error) {
	rows, err := s.db.Query(ctx, `SELECT tree_size, root_hash, created_at, coalesce(key_id, ''), signature
FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1`)
	if err != nil {
		return StoredCheckpoint{}, fmt.Errorf("latest checkpoint: %w", interpretError(err))
	}
	cp, err := pgx.CollectExactlyOneRow(rows, scanCheckpoint)
	if err != nil {
		return cp, fmt.Errorf("latest checkpoint: %w", interpretError(err))
	}
	return cp, nil
}

func scanCheckpoint(r pgx.CollectableRow) (StoredCheckpoint, error) {
	var c StoredCheckpoint
	var size int64
	var root []byte
	if err := r.Scan(&size, &root, &c.Timestamp, &c.KeyID, &c.Signature); err != nil {
		return c, err
	}
	c.TreeSize = uint64(size)
	c.Timestamp = c.Timestamp.UTC()
	c.Signed = c.Signature != nil
	h, err := integrity.HashFromBytes(root)
	c.RootHash = h
	return c, err
}

// AuditRow is one row of the comparison of stored events with the log: an event with its
// leaf, an event without one, or a leaf without its event.
type AuditRow struct {
	// Event is nil when the leaf's event is not stored.
	Event *audit.Event
	// Leaf is nil when the event is not in the log.
	Leaf *Leaf
	// KeyUnsealed says the event's key is waiting for the sealer.
	KeyUnsealed bool
}

// CompareLog streams every stored event next to its leaf of the log, then every leaf whose
// event is not stored, for a verifier to recompute and compare.
func (s *Store) CompareLog(ctx context.Context, fn func(AuditRow) error) error {
	rows, err := s.db.Query(ctx, `
SELECT e.*, l.leaf_index, l.event_id, l.event_timestamp, l.retention_days, l.event_hash, l.hash_version, l.sealed_at,
       k.event_id IS NOT NULL AND l.leaf_index IS NULL AND k.xid IS NOT NULL
           AND NOT coalesce(pg_visible_in_snapshot(k.xid, (`+sealedSnapshotSQL+`)), false)
FROM (SELECT `+selectColumns+` FROM audit_events) AS e(`+eventColumnNames+`)
LEFT JOIN audit_log_leaves l
       ON l.event_id = e.event_id AND l.event_timestamp = e.event_timestamp AND l.retention_days = e.retention_days
LEFT JOIN audit_event_keys k ON k.event_id = e.event_id AND k.event_timestamp = e.event_timestamp`)
	if err != nil {
		return fmt.Errorf("compare log: %w", interpretError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var e audit.Event
		var row AuditRow
		var l struct {
			idx      *int64
			id       *uuid.UUID
			ts       *time.Time
			class    *int
			hash     []byte
			version  *int
			sealedAt *time.Time
		}
		if err := scanEventWith(rows, &e, &l.idx, &l.id, &l.ts, &l.class, &l.hash, &l.version, &l.sealedAt, &row.KeyUnsealed); err != nil {
			return fmt.Errorf("compare log: %w", interpretError(err))
		}
		row.Event = &e
		if l.idx != nil {
			h, err := integrity.HashFromBytes(l.hash)
			if err != nil {
				return fmt.Errorf("compare log: leaf %d: %w", *l.idx, err)
			}
			row.Leaf = &Leaf{Index: uint64(*l.idx), EventID: *l.id, EventTimestamp: l.ts.UTC(), RetentionDays: *l.class,
				EventHash: h, HashVersion: *l.version, SealedAt: *l.sealedAt}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("compare log: %w", interpretError(err))
	}
	rows, err = s.db.Query(ctx, `SELECT `+leafColumns+`
FROM audit_log_leaves l WHERE NOT EXISTS (SELECT 1 FROM audit_events e
    WHERE e.event_id = l.event_id AND e.event_timestamp = l.event_timestamp AND e.retention_days = l.retention_days)
ORDER BY leaf_index`)
	if err != nil {
		return fmt.Errorf("compare log: %w", interpretError(err))
	}
	defer rows.Close()
	for rows.Next() {
		l, err := scanLeaf(rows)
		if err != nil {
			return fmt.Errorf("compare log: %w", interpretError(err))
		}
		if err := fn(AuditRow{Leaf: &l}); err != nil {
			return err
		}
	}
	return interpretError(rows.Err())
}

// StreamLogRange proves the leaves of one partition (retention class, month from..to) against
// the latest checkpoint: it calls fn with every leaf from the partition's first to its last
// (those of other partitions in between included: the proof needs them all) and returns the
// range proof. A partition with no sealed event has an empty range (First == End).
func (s *Store) StreamLogRange(ctx context.Context, class int, from, to time.Time, fn func(integrity.LogLeaf) error) (integrity.RangeProof, error) {
	var rp integrity.RangeProof
	cp, err := s.LatestCheckpoint(ctx)
	if errors.Is(err, ErrNotFound) {
		return rp, nil
	}
	if err != nil {
		return rp, err
	}
	rp.Checkpoint = cp.Checkpoint
	// The batches that list the partition bound the range; their leaves tell it exactly.
	var lo, hi *int64
	if err := s.db.QueryRow(ctx, `SELECT min(first_leaf), max(first_leaf + leaf_count) FROM audit_log_batches
WHERE $1 = ANY(partitions) AND leaf_count > 0 AND first_leaf < $2`, partitionName(class, from), int64(cp.TreeSize)).Scan(&lo, &hi); err != nil {
		return rp, fmt.Errorf("log range: %w", interpretError(err))
	}
	if lo == nil {
		return rp, nil
	}
	inPartition := func(l Leaf) bool {
		return l.RetentionDays == class && !l.EventTimestamp.Before(from) && l.EventTimestamp.Before(to)
	}
	found := false
	err = s.streamLeaves(ctx, uint64(*lo), min(uint64(*hi), cp.TreeSize), func(l Leaf) error {
		if inPartition(l) {
			if !found {
				rp.First, found = l.Index, true
			}
			rp.End = l.Index + 1
		}
		return nil
	})
	if err != nil {
		return rp, fmt.Errorf("log range: %w", err)
	}
	if !found {
		return integrity.RangeProof{}, nil
	}
	spans, err := integrity.RangeSpans(rp.First, rp.End, cp.TreeSize)
	if err != nil {
		return rp, err
	}
	if rp.Proof, err = s.SpanHashes(ctx, spans); err != nil {
		return rp, err
	}
	next := rp.First
	err = s.streamLeaves(ctx, rp.First, rp.End, func(l Leaf) error {
		if l.Index != next {
			return fmt.Errorf("log range: leaf %d is missing", next)
		}
		next++
		return fn(integrity.LogLeaf{Index: l.Index, EventID: l.EventID, EventTimestamp: l.EventTimestamp,
			RetentionDays: l.RetentionDays, EventHash: l.EventHash})
	})
	if err != nil {
		return rp, err
	}
	if next != rp.End {
		return rp, fmt.Errorf("log range: leaf %d is missing", next)
	}
	return rp, nil
}
