package ledger_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	pool   *pgxpool.Pool
	st     *store.Store
	sealer *ledger.Sealer
	keys   []integrity.PublicKey
	events []audit.Event
}

// setup stores a varied set of events — unicode, numbers in several spellings, an IPv6 actor,
// a late event three weeks old, a duplicate — and seals them in two checkpoints.
func setup(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	f := &fixture{pool: pool, st: store.New(pool), keys: []integrity.PublicKey{pub}}
	f.sealer = &ledger.Sealer{Store: f.st, Signer: integrity.NewSigner(priv), Limit: 7}
	ctx := context.Background()
	// The sealer's first round finds nothing: a checkpoint of the empty log.
	_, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	var batch []audit.Event
	for i := range 20 {
		opts := &audittest.EventOpts{CorrelationID: "rem-1", EventType: fmt.Sprintf("gateway.step.s%d", i)}
		switch i {
		case 3:
			opts.EventData = json.RawMessage(`{"n": 1.50, "big": 12345678901234567890, "e": 1E2, "s": "caf\u00e9 \ud83d\ude00 <script>", "nested": {"b": [1, 2.0, {"z": null}], "a": true}}`)
		case 5:
			opts.EventTimestamp = time.Now().Add(-21 * 24 * time.Hour) // a late event
		}
		e := audittest.Event(t, opts)
		if i == 7 {
			ip := "2001:db8::1"
			e.ActorIP = &ip
		}
		require.NoError(t, ledger.Hash(&e))
		batch = append(batch, e)
	}
	f.insert(t, batch[:12])
	_, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	f.insert(t, batch[12:])
	f.insert(t, batch[2:3]) // a retry: a duplicate, not a second leaf
	_, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	f.events = batch
	return f
}

func (f *fixture) insert(t *testing.T, events []audit.Event) {
	t.Helper()
	_, committed, err := f.st.InsertEvents(context.Background(), store.InsertParams{Events: events})
	require.NoError(t, err)
	require.True(t, committed)
}

func (f *fixture) verify(t *testing.T, external ...integrity.Checkpoint) ledger.Report {
	t.Helper()
	rep, err := ledger.Verify(context.Background(), f.st, ledger.VerifyOptions{Keys: f.keys, External: external})
	require.NoError(t, err)
	return rep
}

// attack runs SQL as a superuser who first switches the guard triggers off (and leaves them so).
func (f *fixture) attack(t *testing.T, sql string, args ...any) {
	t.Helper()
	pgtest.Tamper(t, f.pool, sql, args...)
}

// cutLog removes the leaves from index from on, as an attacker would: batches beyond it go, the
// batch it falls in is cut short.
func (f *fixture) cutLog(t *testing.T, from int) {
	t.Helper()
	f.attack(t, `DELETE FROM audit_log_batches WHERE first_leaf >= $1 AND leaf_count > 0`, from)
	f.attack(t, `UPDATE audit_log_batches SET leaf_count = $1 - first_leaf, leaves = substring(leaves FOR ($1 - first_leaf) * 60)
		WHERE first_leaf < $1 AND first_leaf + leaf_count > $1`, from)
}

// cutEvents removes the events sealed from leaf index from on, with their keys, and returns
// the checkpoints as they were before: the copies kept outside the database (CHECKPOINT_URL).
func (f *fixture) cutEvents(t *testing.T, from int) []integrity.Checkpoint {
	t.Helper()
	cps, err := f.st.Checkpoints(context.Background(), 0, 1<<40, 0)
	require.NoError(t, err)
	var external []integrity.Checkpoint
	for _, c := range cps {
		external = append(external, c.Checkpoint)
	}
	f.attack(t, `WITH gone AS (SELECT event_id FROM audit_log_leaves WHERE leaf_index >= $1),
		ev AS (DELETE FROM audit_events WHERE event_id IN (SELECT event_id FROM gone))
		DELETE FROM audit_event_keys WHERE event_id IN (SELECT event_id FROM gone)`, from)
	return external
}

func kinds(rep ledger.Report) map[string][]string {
	out := map[string][]string{}
	for _, p := range rep.Problems {
		name := ""
		if p.EventID != nil {
			name = p.EventID.String()
		} else if p.TreeSize != nil {
			name = fmt.Sprint("size ", *p.TreeSize)
		} else if p.LeafIndex != nil {
			name = fmt.Sprint("leaf ", *p.LeafIndex)
		}
		out[p.Kind] = append(out[p.Kind], name)
	}
	return out
}

func TestUntouchedStoreVerifiesClean(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	rep := f.verify(t)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 20, rep.Events)
	require.EqualValues(t, 20, rep.Sealed)
	require.EqualValues(t, 20, rep.Leaves)
	require.Equal(t, 5, rep.Checkpoints, "the empty log, then 12 events in 7+5, then 8 in 7+1")

	// Every stored hash is the one the write path computed, and the row says so.
	got, err := f.st.GetEvent(ctx, f.events[3].EventID)
	require.NoError(t, err)
	require.Equal(t, f.events[3].EventHash, got.EventHash)
	require.Equal(t, ledger.DefaultHashVersion, got.HashVersion)

	// Proofs verify against the signed checkpoint with the RFC 9162 algorithm.
	ids := make([]uuid.UUID, len(f.events))
	for i, e := range f.events {
		ids[i] = e.EventID
	}
	cp, proofs, err := ledger.Proofs(ctx, f.st, ids)
	require.NoError(t, err)
	require.NoError(t, cp.Verify(f.keys))
	require.Len(t, proofs, 20)
	for _, e := range f.events {
		p := proofs[e.EventID]
		h, err := integrity.HashFromBytes(e.EventHash)
		require.NoError(t, err)
		require.Equal(t, h, p.EventHash)
		require.NoError(t, integrity.VerifyInclusion(integrity.LeafHash(h), p.LeafIndex, p.TreeSize, p.AuditPath, cp.RootHash))
	}

	// Every checkpoint extends the ones before it.
	cps, err := f.st.Checkpoints(ctx, 0, 1<<40, 0)
	require.NoError(t, err)
	for i := 1; i < len(cps); i++ {
		proof, err := ledger.ConsistencyProof(ctx, f.st, cps[i-1].TreeSize, cps[i].TreeSize)
		require.NoError(t, err)
		require.NoError(t, integrity.VerifyConsistency(cps[i-1].TreeSize, cps[i].TreeSize, proof, cps[i-1].RootHash, cps[i].RootHash))
	}

	// A new write is pending until sealed, never a problem.
	late := audittest.Event(t, &audittest.EventOpts{EventTimestamp: time.Now().Add(-40 * 24 * time.Hour)})
	require.NoError(t, ledger.Hash(&late))
	// An event written without its hash (WRITE_EVENT_HASH=false, a bulk load) is hashed by
	// the sealer from its row.
	unhashed := audittest.Event(t, nil)
	f.insert(t, []audit.Event{late, unhashed})
	rep = f.verify(t)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 2, rep.Pending)
	_, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	rep = f.verify(t)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 0, rep.Pending)
	require.EqualValues(t, 22, rep.Leaves)
	_, proofs, err = ledger.Proofs(ctx, f.st, []uuid.UUID{unhashed.EventID})
	require.NoError(t, err)
	want, err := ledger.Recompute(unhashed)
	require.NoError(t, err)
	require.Equal(t, want, proofs[unhashed.EventID].EventHash)
}

func TestRetentionDropIsNoAlarm(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	old := time.Now().Add(-100 * 24 * time.Hour)
	e := audittest.Event(t, &audittest.EventOpts{EventTimestamp: old, Now: old, RetentionDays: 90})
	require.NoError(t, ledger.Hash(&e))
	f.insert(t, []audit.Event{e})
	_, err := f.sealer.SealAll(ctx)
	require.NoError(t, err)
	// Retention deletes the expired row as maintenance would (the guard allows it).
	_, err = f.pool.Exec(ctx, `DELETE FROM audit_events WHERE event_id = $1`, e.EventID)
	require.NoError(t, err)
	rep := f.verify(t)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 1, rep.Expired)
}

func TestTamperingIsDetectedAndNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("modify one field", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		victim := f.events[4].EventID
		f.attack(t, `UPDATE audit_events SET event_outcome = 'unknown', event_hash = NULL WHERE event_id = $1`, victim)
		rep := f.verify(t)
		require.False(t, rep.OK)
		require.Equal(t, map[string][]string{ledger.ProblemModified: {victim.String()}}, kinds(rep))
	})
	t.Run("modify event_data and its stored hash", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		victim := f.events[3]
		forged := victim
		forged.EventData = json.RawMessage(`{"n":2}`)
		require.NoError(t, ledger.Hash(&forged))
		f.attack(t, `UPDATE audit_events SET event_data = '{"n":2}', event_hash = $2 WHERE event_id = $1`, victim.EventID, []byte(forged.EventHash))
		require.Equal(t, map[string][]string{ledger.ProblemModified: {victim.EventID.String()}}, kinds(f.verify(t)))
	})
	t.Run("delete one event", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		victim := f.events[9].EventID
		f.attack(t, `DELETE FROM audit_events WHERE event_id = $1`, victim)
		require.Equal(t, map[string][]string{ledger.ProblemDeleted: {victim.String()}}, kinds(f.verify(t)))
	})
	t.Run("insert a forged event", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		forged := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rem-1", EventOutcome: "success"})
		require.NoError(t, ledger.Hash(&forged))
		// Straight into the table, as an attacker with database access would: no key, no leaf.
		f.attack(t, `INSERT INTO audit_events (event_id, event_timestamp, retention_days, received_at, version, event_type,
			event_category, event_action, event_outcome, correlation_id, actor_type, actor_id, submitted_by, content_hash, event_data, event_hash, hash_version)
			VALUES ($1, $2, $3, $4, '1.0', 'gateway.step.forged', 'gateway', 'forged', 'success', 'rem-1', 'service', 'gateway', 'test-writer', $5, '{}', $6, 1)`,
			forged.EventID, forged.EventTimestamp, forged.RetentionDays, forged.ReceivedAt, forged.ContentHash, []byte(forged.EventHash))
		require.Equal(t, map[string][]string{ledger.ProblemInserted: {forged.EventID.String()}}, kinds(f.verify(t)))
	})
	t.Run("truncate the newest events and their leaves", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.attack(t, `DELETE FROM audit_events WHERE event_id IN (SELECT event_id FROM audit_log_leaves WHERE leaf_index >= 17)`)
		f.cutLog(t, 17)
		got := kinds(f.verify(t))
		require.Equal(t, []string{"size 20"}, got[ledger.ProblemTruncated])
		require.Len(t, got, 1, "%v", got)
	})
	t.Run("truncate events, leaves, keys and checkpoints", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		external := f.cutEvents(t, 13)
		f.cutLog(t, 13)
		f.attack(t, `DELETE FROM audit_checkpoints WHERE tree_size > 13`)
		f.attack(t, `DELETE FROM audit_log_nodes WHERE (node_index + 1) * (1 << level) > 13`)
		require.True(t, f.verify(t).OK, "without an outside copy the cut is invisible: what the outside copy is for")
		// The log and the database's checkpoints agree: sealed events are lost, as after a
		// failover, and verify says so (how many, since which checkpoint), not that a leaf changed.
		rep := f.verify(t, external...)
		require.Equal(t, map[string][]string{ledger.ProblemFork: {"size 20"}}, kinds(rep))
		require.Contains(t, rep.Problems[0].Detail, "up to 8 sealed events, sealed after the checkpoint of size 12")
		require.Contains(t, rep.Problems[0].Detail, "acknowledged events lost after a failover")
	})
	t.Run("a fork: the log sealed anew after a cut", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		// What a failover to a standby without the last seals and the newest events leaves: the
		// log, its nodes and checkpoints end at 7, and new events are sealed into the same sizes.
		external := f.cutEvents(t, 13)
		f.attack(t, `DELETE FROM audit_log_batches WHERE first_leaf >= 7 AND leaf_count > 0`)
		f.attack(t, `DELETE FROM audit_checkpoints WHERE tree_size > 7`)
		f.attack(t, `DELETE FROM audit_log_nodes WHERE (node_index + 1) * (1 << level) > 7`)
		f.attack(t, `DELETE FROM audit_log_batches WHERE seal_no > (SELECT max(seal_no) FROM audit_log_batches WHERE first_leaf + leaf_count <= 7 AND leaf_count > 0)`)
		var newer []audit.Event
		for range 20 {
			e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rem-2"})
			require.NoError(t, ledger.Hash(&e))
			newer = append(newer, e)
		}
		f.insert(t, newer)
		for range 2 { // the round the cut left unfinished, then the new events
			_, err := f.sealer.SealAll(ctx)
			require.NoError(t, err)
		}
		rep := f.verify(t, external...)
		require.Greater(t, rep.Leaves, uint64(20), "the new log passed the sizes of the old checkpoints, with other roots")
		require.Equal(t, map[string][]string{ledger.ProblemFork: {"size 20"}}, kinds(rep))
		require.Contains(t, rep.Problems[0].Detail, "up to 8 sealed events, sealed after the checkpoint of size 12")
	})
	t.Run("swap two events", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		a, b := f.events[0].EventID, f.events[1].EventID
		f.attack(t, `UPDATE audit_events e SET event_data = o.event_data, event_type = o.event_type
			FROM audit_events o WHERE (e.event_id, o.event_id) IN (($1::uuid, $2::uuid), ($2::uuid, $1::uuid))`, a, b)
		got := kinds(f.verify(t))
		require.ElementsMatch(t, []string{a.String(), b.String()}, got[ledger.ProblemModified])
		require.Len(t, got, 1)
	})
	t.Run("swap two leaves", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		// Leaves 1 and 3 (60-byte records in the batch from leaf 0) change places.
		f.attack(t, `UPDATE audit_log_batches SET leaves = overlay(overlay(leaves PLACING substring(leaves FROM 3 * 60 + 1 FOR 60) FROM 1 * 60 + 1)
			PLACING substring(leaves FROM 1 * 60 + 1 FOR 60) FROM 3 * 60 + 1) WHERE first_leaf = 0 AND leaf_count > 0`)
		got := kinds(f.verify(t))
		require.NotEmpty(t, got[ledger.ProblemReordered], "%v", got)
		require.Equal(t, []string{"size 7"}, got[ledger.ProblemLogAltered][:1])
	})
	t.Run("re-sign with another key", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		_, other, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		forged := integrity.NewSigner(other).Sign(integrity.Checkpoint{TreeSize: 20, RootHash: integrity.EmptyRoot, Timestamp: time.Now()})
		f.attack(t, `UPDATE audit_checkpoints SET root_hash = $1, key_id = $2, signature = $3 WHERE tree_size = 20`, forged.RootHash[:], forged.KeyID, forged.Signature)
		got := kinds(f.verify(t))
		require.Equal(t, []string{"size 20"}, got[ledger.ProblemBadSignature])
	})
}

func TestArchiveVerifiesOffline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := setup(t)
	p := archive.PartitionOf(f.events[0].RetentionDays, f.events[0].EventTimestamp)
	inPartition := 0
	for _, e := range f.events {
		if archive.PartitionOf(e.RetentionDays, e.EventTimestamp) == p {
			inPartition++
		}
	}
	arch, err := archive.Open(ctx, "file://"+t.TempDir(), archive.Options{})
	require.NoError(t, err)
	defer arch.Close()
	m, err := arch.Write(ctx, p, f.st)
	require.NoError(t, err)
	require.NotNil(t, m.Log)

	rep, err := arch.Verify(ctx, p, f.keys)
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, inPartition, rep.Events)
	require.EqualValues(t, inPartition, rep.Sealed)

	// An archive taken after an attacker changed one event and removed another names both.
	f.attack(t, `UPDATE audit_events SET error_message = 'nothing happened' WHERE event_id = $1`, f.events[6].EventID)
	f.attack(t, `DELETE FROM audit_events WHERE event_id = $1`, f.events[8].EventID)
	tampered, err := archive.Open(ctx, "file://"+t.TempDir(), archive.Options{})
	require.NoError(t, err)
	defer tampered.Close()
	_, err = tampered.Write(ctx, p, f.st)
	require.NoError(t, err)
	rep, err = tampered.Verify(ctx, p, f.keys)
	require.NoError(t, err)
	require.Equal(t, map[string][]string{
		ledger.ProblemModified: {f.events[6].EventID.String()},
		ledger.ProblemDeleted:  {f.events[8].EventID.String()},
	}, kinds(rep))

	// A checkpoint signed by another key is refused.
	_, other, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rep, err = arch.Verify(ctx, p, []integrity.PublicKey{other.Public().(ed25519.PublicKey)})
	require.NoError(t, err)
	require.Equal(t, []string{"size 20"}, kinds(rep)[ledger.ProblemBadSignature])
}

// A write that commits after a seal began (its transaction started earlier, its xid is older
// than that of writes sealed meanwhile) is sealed by the next seal: visibility, not xid order,
// decides, so it is never skipped and never sealed twice.
func TestLateCommitIsSealedNext(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	late := audittest.Event(t, nil)
	require.NoError(t, ledger.Hash(&late))
	tx, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, _, err = store.New(tx).InsertEvents(ctx, store.InsertParams{Events: []audit.Event{late}})
	require.NoError(t, err)

	early := audittest.Event(t, nil)
	require.NoError(t, ledger.Hash(&early))
	f.insert(t, []audit.Event{early})
	rep, err := f.sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Sealed, "the committed write only")

	require.NoError(t, tx.Commit(ctx))
	vrep := f.verify(t)
	require.True(t, vrep.OK, "%+v", vrep.Problems)
	require.EqualValues(t, 1, vrep.Pending)
	rep, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Sealed, "the late commit, once")
	rep, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Zero(t, rep.Sealed)
	vrep = f.verify(t)
	require.True(t, vrep.OK, "%+v", vrep.Problems)
	require.EqualValues(t, 22, vrep.Leaves)
	require.EqualValues(t, 0, vrep.Pending)
}

// A round of exactly the batch limit ends with the next seal, which seals what came since.
func TestRoundOfExactlyTheLimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	var batch []audit.Event
	for range 7 {
		e := audittest.Event(t, nil)
		require.NoError(t, ledger.Hash(&e))
		batch = append(batch, e)
	}
	f.insert(t, batch)
	rep, err := f.sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 7, rep.Sealed)
	f.insert(t, batch[:1]) // a duplicate: no new key
	more := audittest.Event(t, nil)
	require.NoError(t, ledger.Hash(&more))
	f.insert(t, []audit.Event{more})
	rep, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Sealed)
	vrep := f.verify(t)
	require.True(t, vrep.OK, "%+v", vrep.Problems)
	require.EqualValues(t, 28, vrep.Leaves)
}

// After the idempotency window keys are pruned: proofs still answer (the log, not the keys,
// knows the leaves), and a retry then is a duplicate that the sealer does not seal again.
func TestRetryAfterKeysArePruned(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	pruned, err := f.st.PruneKeys(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 20, pruned, "every key is sealed")

	ids := make([]uuid.UUID, len(f.events))
	for i, e := range f.events {
		ids[i] = e.EventID
	}
	cp, proofs, err := ledger.Proofs(ctx, f.st, ids)
	require.NoError(t, err)
	require.Len(t, proofs, 20)
	for _, p := range proofs {
		require.NoError(t, integrity.VerifyInclusion(integrity.LeafHash(p.EventHash), p.LeafIndex, p.TreeSize, p.AuditPath, cp.RootHash))
	}

	res, committed, err := f.st.InsertEvents(ctx, store.InsertParams{Events: f.events[4:5]})
	require.NoError(t, err)
	require.True(t, committed)
	require.Equal(t, store.Duplicate, res[0].Status)
	rep, err := f.sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Zero(t, rep.Sealed)
	vrep := f.verify(t)
	require.True(t, vrep.OK, "%+v", vrep.Problems)
	require.EqualValues(t, 20, vrep.Leaves)
	require.EqualValues(t, 0, vrep.Pending)
}
