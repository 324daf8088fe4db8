package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// A log sealed in migration 000002's layout (a row per leaf, the leaf index on each key) stays
// verifiable after 000004 packs it into batches: the same leaves, roots and proofs, keys still
// waiting are sealed next, and going down restores the rows.
func TestLogSealedBeforeBatchesVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, pgtest.Options{Empty: true})
	require.NoError(t, migrations.Steps(url, 3))
	pool := pgtest.Connect(t, url)
	st := store.New(pool)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer := integrity.NewSigner(priv)

	// Events of that time: version 1, written before the columns of 000007, which the
	// store's insert names (added for the insert only).
	events := make([]audit.Event, 23)
	for i := range events {
		events[i] = audittest.Event(t, nil)
		require.NoError(t, events[i].SetHash())
	}
	_, err = pool.Exec(ctx, `ALTER TABLE audit_events ADD COLUMN hash_salt bytea, ADD COLUMN hash_members jsonb`)
	require.NoError(t, err)
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ALTER TABLE audit_events DROP COLUMN hash_salt, DROP COLUMN hash_members`)
	require.NoError(t, err)

	// Two seals as 000002's sealer made them: 12 then 8 leaves, each in event_id order, the
	// nodes of 16 leaves and up, a signed checkpoint each. The last 3 events wait.
	var f integrity.Frontier
	for _, seal := range [][]audit.Event{events[:12], events[12:20]} {
		seal = slices.Clone(seal)
		slices.SortFunc(seal, func(a, b audit.Event) int { return bytes.Compare(a.EventID[:], b.EventID[:]) })
		for _, e := range seal {
			idx := f.Size
			h, err := integrity.HashFromBytes(e.EventHash)
			require.NoError(t, err)
			f.Append(integrity.LeafHash(h), func(n integrity.Node, h integrity.Hash) {
				if n.Level >= 4 {
					_, err := pool.Exec(ctx, `INSERT INTO audit_log_nodes VALUES ($1, $2, $3)`, int16(n.Level), int64(n.Index), h[:])
					require.NoError(t, err)
				}
			})
			_, err = pool.Exec(ctx, `INSERT INTO audit_log_leaves (leaf_index, event_id, event_timestamp, retention_days, event_hash, hash_version)
				VALUES ($1, $2, $3, $4, $5, 1)`, int64(idx), e.EventID, e.EventTimestamp, e.RetentionDays, []byte(e.EventHash))
			require.NoError(t, err)
			_, err = pool.Exec(ctx, `UPDATE audit_event_keys SET leaf_index = $2 WHERE event_id = $1`, e.EventID, int64(idx))
			require.NoError(t, err)
		}
		cp := signer.Sign(integrity.Checkpoint{TreeSize: f.Size, RootHash: f.Root(), Timestamp: time.Now().UTC().Truncate(time.Microsecond)})
		_, err = pool.Exec(ctx, `INSERT INTO audit_checkpoints VALUES ($1, $2, $3, $4, $5)`, int64(cp.TreeSize), cp.RootHash[:], cp.Timestamp, cp.KeyID, cp.Signature)
		require.NoError(t, err)
	}

	// Up to the latest: the store reads the columns of every migration (000004 is the one
	// this is about).
	require.NoError(t, migrations.Up(url))
	keys := []integrity.PublicKey{pub}
	rep, err := ledger.Verify(ctx, st, ledger.VerifyOptions{Keys: keys})
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 20, rep.Sealed)
	require.EqualValues(t, 3, rep.Pending)
	require.EqualValues(t, 20, rep.Leaves)

	cp, proofs, err := ledger.Proofs(ctx, st, []uuid.UUID{events[5].EventID, events[15].EventID})
	require.NoError(t, err)
	require.EqualValues(t, 20, cp.TreeSize)
	require.Len(t, proofs, 2)
	for _, p := range proofs {
		require.NoError(t, integrity.VerifyInclusion(integrity.LeafHash(p.EventHash), p.LeafIndex, p.TreeSize, p.AuditPath, cp.RootHash))
	}

	sealer := &ledger.Sealer{Store: st, Signer: signer}
	srep, err := sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, srep.Sealed, "the keys waiting at the migration")
	rep, err = ledger.Verify(ctx, st, ledger.VerifyOptions{Keys: keys})
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 23, rep.Sealed)
	require.EqualValues(t, 0, rep.Pending)

	// Down again to 000003: a row per leaf, and every key knows its leaf.
	v, _, err := migrations.Version(url)
	require.NoError(t, err)
	require.NoError(t, migrations.Steps(url, -(int(v)-3)))
	var leaves, unsealed int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit_log_leaves`).Scan(&leaves))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit_event_keys WHERE leaf_index IS NULL`).Scan(&unsealed))
	require.Equal(t, 23, leaves)
	require.Zero(t, unsealed)
}
