package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	// Hash recomputes the event hash of a stored event that has none (written before tamper
	// evidence existed, or by a bulk path that does not hash).
	Hash func(audit.Event) (integrity.Hash, error)
	// Sign signs the new checkpoint; nil stores it unsigned.
	Sign func(integrity.Checkpoint) integrity.Checkpoint
}

// SealResult says what one Seal did.
type SealResult struct {
	// Sealed counts the events appended to the log.
	Sealed int
	// Checkpoint is the checkpoint written, if any (Sealed > 0, or the log had none).
	Checkpoint *integrity.Checkpoint
	// Lags are, for each sealed event, the time from its first sight to its seal.
	Lags []time.Duration
}

// sealCandidate is an unsealed key. Ids are [16]byte, which pgx encodes and decodes in binary;
// a uuid.UUID goes through its text form (see copy.go).
type sealCandidate struct {
	id        [16]byte
	ts        time.Time
	class     int
	hash      []byte
	version   int
	leaf      *int64
	firstSeen time.Time
}

// Seal appends up to p.Limit unsealed events to the log, in event_id order, with their nodes,
// marks their keys sealed and writes a checkpoint of the new size, all in one transaction:
// the log and its checkpoints never disagree. It returns ErrSealing while another sealer runs.
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
	var size int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(leaf_index) + 1, 0) FROM audit_log_leaves`).Scan(&size); err != nil {
		return res, fmt.Errorf("seal: log size: %w", interpretError(err))
	}
	var haveCheckpoint bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_checkpoints)`).Scan(&haveCheckpoint); err != nil {
		return res, fmt.Errorf("seal: %w", interpretError(err))
	}

	// The key carries the event hash the write path computed (it is written in the event's own
	// transaction, so the event is there); only keys without one send the sealer to the row.
	rows, err := tx.Query(ctx, `
SELECT k.event_id, k.event_timestamp, k.retention_days, k.event_hash, l.leaf_index, k.first_seen
FROM (SELECT event_id, event_timestamp, retention_days, event_hash, first_seen FROM audit_event_keys
      WHERE leaf_index IS NULL ORDER BY first_seen, event_id LIMIT $1) k
LEFT JOIN audit_log_leaves l
       ON l.event_id = k.event_id AND l.event_timestamp = k.event_timestamp AND l.retention_days = k.retention_days`, p.Limit)
	if err != nil {
		return res, fmt.Errorf("seal: unsealed events: %w", interpretError(err))
	}
	cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sealCandidate, error) {
		var c sealCandidate
		err := r.Scan(&c.id, &c.ts, &c.class, &c.hash, &c.leaf, &c.firstSeen)
		c.version = integrity.HashVersion
		return c, err
	})
	if err != nil {
		return res, fmt.Errorf("seal: unsealed events: %w", interpretError(err))
	}

	// Keys whose event is already in the log (a key re-created after pruning) or was never
	// stored (its insert met an existing row) are marked, not sealed again.
	var doneIDs [][16]byte
	var doneLeaves []int64
	var fresh []sealCandidate
	var missingHash []int
	for _, c := range cands {
		switch {
		case c.leaf != nil:
			doneIDs, doneLeaves = append(doneIDs, c.id), append(doneLeaves, *c.leaf)
		default:
			if c.hash == nil {
				missingHash = append(missingHash, len(fresh))
			}
			fresh = append(fresh, c)
		}
	}
	if len(missingHash) > 0 {
		if err := s.hashStored(ctx, tx, fresh, missingHash, p.Hash); err != nil {
			return res, err
		}
		// A key whose event is not stored (its insert met a row already there) seals nothing.
		kept := fresh[:0]
		for _, c := range fresh {
			if c.hash == nil {
				doneIDs, doneLeaves = append(doneIDs, c.id), append(doneLeaves, -1)
				continue
			}
			kept = append(kept, c)
		}
		fresh = kept
	}
	// The order within a seal is the event ids' order: fixed now, and checkable later.
	slices.SortFunc(fresh, func(a, b sealCandidate) int { return bytes.Compare(a.id[:], b.id[:]) })

	frontier, err := s.frontier(ctx, tx, uint64(size))
	if err != nil {
		return res, err
	}
	n := len(fresh)
	leafIdx := make([]int64, n)
	ids := make([][16]byte, n)
	tss := make([]time.Time, n)
	classes := make([]int32, n)
	hashes := make([][]byte, n)
	versions := make([]int16, n)
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
	for i, c := range fresh {
		h, err := integrity.HashFromBytes(c.hash)
		if err != nil {
			return res, fmt.Errorf("seal: event %s: stored event_hash: %w", uuid.UUID(c.id), err)
		}
		leafIdx[i] = size + int64(i)
		ids[i], tss[i], classes[i], hashes[i], versions[i] = c.id, c.ts, int32(c.class), c.hash, int16(c.version)
		frontier.Append(integrity.LeafHash(h), emit)
		res.Lags = append(res.Lags, now.Sub(c.firstSeen))
	}
	if n > 0 {
		if _, err := tx.Exec(ctx, `
INSERT INTO audit_log_leaves (leaf_index, event_id, event_timestamp, retention_days, event_hash, hash_version)
SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::integer[], $5::bytea[], $6::smallint[])`,
			leafIdx, ids, tss, classes, hashes, versions); err != nil {
			return res, fmt.Errorf("seal: leaves: %w", interpretError(err))
		}
		if len(nodeIdx) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO audit_log_nodes (level, node_index, hash)
SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`, nodeLevels, nodeIdx, nodeHashes); err != nil {
				return res, fmt.Errorf("seal: nodes: %w", interpretError(err))
			}
		}
		doneIDs = append(doneIDs, ids...)
		doneLeaves = append(doneLeaves, leafIdx...)
	}
	if len(doneIDs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE audit_event_keys k SET leaf_index = d.leaf_index
FROM unnest($1::uuid[], $2::bigint[]) AS d(event_id, leaf_index) WHERE k.event_id = d.event_id`, doneIDs, doneLeaves); err != nil {
			return res, fmt.Errorf("seal: keys: %w", interpretError(err))
		}
	}
	if n > 0 || !haveCheckpoint {
		cp := integrity.Checkpoint{TreeSize: frontier.Size, RootHash: frontier.Root(), Timestamp: p.Now.UTC().Truncate(time.Microsecond)}
		if p.Sign != nil {
			cp = p.Sign(cp)
		}
		var keyID *string
		if cp.KeyID != "" {
			keyID = &cp.KeyID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (tree_size, root_hash, created_at, key_id, signature)
VALUES ($1, $2, $3, $4, $5)`, int64(cp.TreeSize), cp.RootHash[:], cp.Timestamp, keyID, cp.Signature); err != nil {
			return res, fmt.Errorf("seal: checkpoint: %w", interpretError(err))
		}
		res.Checkpoint = &cp
	}
	if err := tx.Commit(ctx); err != nil {
		return SealResult{}, fmt.Errorf("seal: commit: %w", interpretError(err))
	}
	res.Sealed = n
	return res, nil
}

// hashStored fills in the hash of fresh[idx] from their stored rows.
func (s *Store) hashStored(ctx context.Context, db DBTX, fresh []sealCandidate, idx []int, hash func(audit.Event) (integrity.Hash, error)) error {
	if hash == nil {
		return errors.New("seal: an event has no stored hash and SealParams.Hash is nil")
	}
	ids := make([][16]byte, len(idx))
	tss := make([]time.Time, len(idx))
	classes := make([]int32, len(idx))
	pos := make(map[[16]byte]int, len(idx))
	for j, i := range idx {
		ids[j], tss[j], classes[j] = fresh[i].id, fresh[i].ts, int32(fresh[i].class)
		pos[fresh[i].id] = i
	}
	rows, err := db.Query(ctx, `SELECT `+selectColumns+` FROM audit_events
WHERE (event_id, event_timestamp, retention_days) IN (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::integer[]))`, ids, tss, classes)
	if err != nil {
		return fmt.Errorf("seal: stored events: %w", interpretError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var e audit.Event
		if err := scanEvent(rows, &e); err != nil {
			return fmt.Errorf("seal: stored events: %w", interpretError(err))
		}
		h, err := hash(e)
		if err != nil {
			return fmt.Errorf("seal: hash of event %s: %w", e.EventID, err)
		}
		i := pos[e.EventID]
		fresh[i].hash, fresh[i].version = h[:], integrity.HashVersion
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
		rows, err := db.Query(ctx, `SELECT level, node_index, hash FROM audit_log_nodes
WHERE (level, node_index) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))`, levels, idx)
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
		rows, err := db.Query(ctx, `SELECT leaf_index, event_hash FROM audit_log_leaves WHERE leaf_index = ANY($1)`, leaves)
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

// LeavesOf returns the leaves sealing the events with these ids (usually one each).
func (s *Store) LeavesOf(ctx context.Context, ids []uuid.UUID) ([]Leaf, error) {
	rows, err := s.db.Query(ctx, `SELECT `+leafColumns+`
FROM audit_log_leaves WHERE event_id = ANY($1) ORDER BY leaf_index`, ids)
	if err != nil {
		return nil, fmt.Errorf("leaves: %w", interpretError(err))
	}
	out, err := pgx.CollectRows(rows, scanLeaf)
	if err != nil {
		return nil, fmt.Errorf("leaves: %w", interpretError(err))
	}
	return out, nil
}

// leafColumns reads a leaf in scanLeaf's order.
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
	rows, err := s.db.Query(ctx, `SELECT `+leafColumns+`
FROM audit_log_leaves WHERE leaf_index >= $1 ORDER BY leaf_index`, int64(from))
	if err != nil {
		return fmt.Errorf("leaves: %w", interpretError(err))
	}
	defer rows.Close()
	for rows.Next() {
		l, err := scanLeaf(rows)
		if err != nil {
			return fmt.Errorf("leaves: %w", interpretError(err))
		}
		if err := fn(l); err != nil {
			return err
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

// eventColumnNames name selectColumns' outputs, for a subquery that joins on them.
const eventColumnNames = `event_id, version, event_timestamp, event_type, event_category,
	event_action, event_outcome, correlation_id, actor_type, actor_id, actor_ip, resource_type,
	resource_id, resource_name, parent_event_id, trace_id, span_id, namespace, cluster_id,
	severity, duration_ms, error_code, error_message, retention_days, is_sensitive, event_data,
	received_at, submitted_by, content_hash, event_hash, hash_version`

// CompareLog streams every stored event next to its leaf of the log, then every leaf whose
// event is not stored, for a verifier to recompute and compare.
func (s *Store) CompareLog(ctx context.Context, fn func(AuditRow) error) error {
	rows, err := s.db.Query(ctx, `
SELECT e.*, l.leaf_index, l.event_id, l.event_timestamp, l.retention_days, l.event_hash, l.hash_version, l.sealed_at,
       k.event_id IS NOT NULL AND k.leaf_index IS NULL
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

// MaxSealedKey returns the largest leaf index an idempotency key records, or -1: keys outlive
// a truncation of the log's newest leaves for the idempotency window.
func (s *Store) MaxSealedKey(ctx context.Context) (int64, error) {
	var m int64
	if err := s.db.QueryRow(ctx, `SELECT coalesce(max(leaf_index), -1) FROM audit_event_keys`).Scan(&m); err != nil {
		return 0, fmt.Errorf("max sealed key: %w", interpretError(err))
	}
	return m, nil
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
	var first, end *int64
	if err := s.db.QueryRow(ctx, `SELECT min(leaf_index), max(leaf_index) + 1 FROM audit_log_leaves
WHERE retention_days = $1 AND event_timestamp >= $2 AND event_timestamp < $3 AND leaf_index < $4`,
		class, from, to, int64(cp.TreeSize)).Scan(&first, &end); err != nil {
		return rp, fmt.Errorf("log range: %w", interpretError(err))
	}
	if first == nil {
		return rp, nil
	}
	rp.First, rp.End = uint64(*first), uint64(*end)
	spans, err := integrity.RangeSpans(rp.First, rp.End, cp.TreeSize)
	if err != nil {
		return rp, err
	}
	if rp.Proof, err = s.SpanHashes(ctx, spans); err != nil {
		return rp, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+leafColumns+`
FROM audit_log_leaves WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index`, *first, *end)
	if err != nil {
		return rp, fmt.Errorf("log range: %w", interpretError(err))
	}
	defer rows.Close()
	next := rp.First
	for rows.Next() {
		l, err := scanLeaf(rows)
		if err != nil {
			return rp, fmt.Errorf("log range: %w", interpretError(err))
		}
		if l.Index != next {
			return rp, fmt.Errorf("log range: leaf %d is missing", next)
		}
		next++
		if err := fn(integrity.LogLeaf{Index: l.Index, EventID: l.EventID, EventTimestamp: l.EventTimestamp,
			RetentionDays: l.RetentionDays, EventHash: l.EventHash}); err != nil {
			return rp, err
		}
	}
	if err := rows.Err(); err != nil {
		return rp, fmt.Errorf("log range: %w", interpretError(err))
	}
	if next != rp.End {
		return rp, fmt.Errorf("log range: leaf %d is missing", next)
	}
	return rp, nil
}
