package erasure_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/erasure"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/outsideverify"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// personal is an event_data with personal data: the notifier's recipient (an e-mail address:
// few values, easy to guess from an unsalted digest), the signal's annotations, the raw signal.
const personal = `{"version":"1.0","service":"notification","operation":"message.sent","status":"success",
	"payload":{"recipient":"alice@example.com","channel":"email","annotations":{"summary":"paged alice"},"attempts":2},
	"source_payload":{"from":"alice@example.com"}}`

type fixture struct {
	pool   *pgxpool.Pool
	st     *store.Store
	sealer *ledger.Sealer
	keys   []integrity.PublicKey
	v2, v1 audit.Event // a version 2 event with personal data, a version 1 event
	other  audit.Event // a version 2 event nobody erases
}

func setup(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	f := &fixture{pool: pool, st: store.New(pool), keys: []integrity.PublicKey{pub}}
	f.sealer = &ledger.Sealer{Store: f.st, Signer: integrity.NewSigner(priv)}
	f.v2 = audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-erase", ActorID: "alice@example.com", EventData: json.RawMessage(personal)})
	ip := "192.0.2.7"
	f.v2.ActorIP = &ip
	require.NoError(t, ledger.Hash(&f.v2))
	require.Equal(t, integrity.HashVersionMembers, f.v2.HashVersion, "new events are hashed with version 2")
	f.v1 = audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-v1", ActorID: "bob@example.com", EventData: json.RawMessage(personal)})
	require.NoError(t, f.v1.SetHash())
	f.other = audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-held", ActorID: "carol@example.com", EventData: json.RawMessage(personal)})
	require.NoError(t, ledger.Hash(&f.other))
	_, committed, err := f.st.InsertEvents(context.Background(), store.InsertParams{Events: []audit.Event{f.v2, f.v1, f.other}})
	require.NoError(t, err)
	require.True(t, committed)
	_, err = f.sealer.SealAll(context.Background())
	require.NoError(t, err)
	return f
}

func (f *fixture) verify(t *testing.T) ledger.Report {
	t.Helper()
	rep, err := ledger.Verify(context.Background(), f.st, ledger.VerifyOptions{Keys: f.keys})
	require.NoError(t, err)
	return rep
}

func (f *fixture) erase(t *testing.T, id uuid.UUID, members ...string) (erasure.Result, error) {
	t.Helper()
	return erasure.Erase(context.Background(), f.st, erasure.Request{EventIDs: []uuid.UUID{id}, Members: members,
		Reason: "GDPR art. 17 request 2026-118", By: "dpo-admin"})
}

var erased = []string{"/actor_id", "/actor_ip", "/event_data/payload/annotations", "/event_data/payload/recipient", "/event_data/source_payload"}

func TestErase_ServedDataLacksTheMembersAndVerifyStaysClean(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	require.True(t, f.verify(t).OK)

	res, err := f.erase(t, f.v2.EventID, erased...)
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	require.Equal(t, erased, res.Events[0].Members)
	require.Equal(t, "dpo-admin", res.ErasedBy)

	// Gone from the database: no column of the row holds them, nor the content hash.
	var row string
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT to_jsonb(e)::text FROM audit_events e WHERE event_id = $1`, f.v2.EventID).Scan(&row))
	for _, gone := range []string{"alice", "192.0.2.7", "paged", hex.EncodeToString(f.v2.ContentHash)} {
		require.NotContains(t, row, gone)
	}
	// Gone from what is served: get and query.
	got, err := f.st.GetEvent(ctx, f.v2.EventID)
	require.NoError(t, err)
	served, err := json.Marshal(got)
	require.NoError(t, err)
	require.NotContains(t, string(served), "alice")
	require.NotContains(t, string(served), "192.0.2.7")
	require.Equal(t, erased, got.Erased, "the served event names what was erased")
	require.Equal(t, integrity.ErasedActorID, got.ActorID)
	require.JSONEq(t, `{"version":"1.0","service":"notification","operation":"message.sent","status":"success","payload":{"channel":"email","attempts":2}}`, string(got.EventData))
	page, err := f.st.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{CorrelationIDs: []string{"rr-erase"}}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	require.Equal(t, got.EventData, page.Events[0].EventData)

	// verify, the event's check and its proof still pass.
	rep := f.verify(t)
	require.True(t, rep.OK, "%+v", rep.Problems)
	checks, err := ledger.CheckEvents(ctx, f.st, f.keys, []audit.Event{got})
	require.NoError(t, err)
	require.Equal(t, ledger.Verified, checks[got.EventID].State, checks[got.EventID].Detail)

	// The erasure is recorded: by whom, why, which members.
	records, members, err := f.st.Erasures(ctx, f.v2.EventID)
	require.NoError(t, err)
	require.Len(t, records, 1)
	require.Equal(t, "GDPR art. 17 request 2026-118", records[0].Reason)
	require.Equal(t, erased, members[0])

	// The archive carries what the check needs: an archived row recomputes to the same hash.
	r, err := archive.RowOf(&got)
	require.NoError(t, err)
	back := r.Event()
	h, err := ledger.Recompute(back)
	require.NoError(t, err)
	require.Equal(t, f.v2.EventHash, audit.Digest(h[:]))

	// A second erasure of other members works on what the first kept.
	res, err = f.erase(t, f.v2.EventID, "/event_data/payload/channel", "/actor_id")
	require.NoError(t, err)
	require.Equal(t, []string{"/event_data/payload/channel"}, res.Events[0].Members, "an erased member is skipped")
	require.True(t, f.verify(t).OK)
}

func TestErase_ASecondChangeIsNamed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.erase(t, f.v2.EventID, "/event_data/payload/recipient", "/actor_id")
	require.NoError(t, err)
	require.True(t, f.verify(t).OK)

	// Someone able to pass the guard (a superuser) changes a member the erasure left.
	tamper := func(sql string) {
		t.Helper()
		tx, err := f.pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, `SELECT set_config('auditstore.erasing', $1, true)`, f.v2.EventID.String())
		require.NoError(t, err)
		_, err = tx.Exec(ctx, sql, f.v2.EventID)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
	}
	tamper(`UPDATE audit_events SET event_data = jsonb_set(event_data, '{payload,attempts}', '5') WHERE event_id = $1`)
	rep := f.verify(t)
	require.False(t, rep.OK)
	require.Len(t, rep.Problems, 1)
	require.Equal(t, ledger.ProblemModified, rep.Problems[0].Kind)
	require.Equal(t, f.v2.EventID, *rep.Problems[0].EventID)
	require.Contains(t, rep.Problems[0].Detail, "/event_data/payload/attempts no longer has the value it was committed with")

	// An erased member put back is named too.
	tamper(`UPDATE audit_events SET event_data = jsonb_set(event_data, '{payload,attempts}', '2') WHERE event_id = $1`)
	require.True(t, f.verify(t).OK)
	tamper(`UPDATE audit_events SET event_data = jsonb_set(event_data, '{payload,recipient}', '"mallory@example.com"') WHERE event_id = $1`)
	rep = f.verify(t)
	require.False(t, rep.OK)
	require.Contains(t, rep.Problems[0].Detail, "/event_data/payload/recipient was erased but has a value again")
	tamper(`UPDATE audit_events SET event_data = event_data #- '{payload,recipient}', actor_id = 'mallory' WHERE event_id = $1`)
	rep = f.verify(t)
	require.False(t, rep.OK)
	require.Contains(t, rep.Problems[0].Detail, "/actor_id was erased but has a value again")

	// A field outside the members: the guard refuses even this path, so a superuser turns it off.
	tamper(`UPDATE audit_events SET actor_id = '[erased]' WHERE event_id = $1`)
	_, err = f.pool.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_immutable`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `UPDATE audit_events SET event_outcome = 'failure' WHERE event_id = $1`, f.v2.EventID)
	require.NoError(t, err)
	rep = f.verify(t)
	require.False(t, rep.OK)
	require.Contains(t, rep.Problems[0].Detail, "a field outside them changed")
}

func TestErase_Refusals(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	// Version 1 events keep verifying as before and cannot be erased.
	_, err := f.erase(t, f.v1.EventID, "/actor_id")
	var refused *erasure.RefusedError
	require.ErrorAs(t, err, &refused)
	require.Contains(t, err.Error(), "hashed with version 1")
	got, err := f.st.GetEvent(ctx, f.v1.EventID)
	require.NoError(t, err)
	require.Equal(t, "bob@example.com", got.ActorID)
	require.Equal(t, integrity.HashVersion, got.HashVersion)

	// An event under legal hold: refused, naming the hold; nothing changed.
	corr := "rr-held"
	hold, err := f.st.PlaceHold(ctx, store.LegalHold{CorrelationID: &corr, Reason: "litigation 42", PlacedBy: "legal"})
	require.NoError(t, err)
	_, err = f.erase(t, f.other.EventID, "/actor_id")
	var held *erasure.HeldError
	require.ErrorAs(t, err, &held)
	require.Equal(t, hold.HoldID, held.Hold.HoldID)
	require.Contains(t, err.Error(), "litigation 42")
	got, err = f.st.GetEvent(ctx, f.other.EventID)
	require.NoError(t, err)
	require.Equal(t, "carol@example.com", got.ActorID)

	// The guard refuses it too when the hold comes after the read (the store's own check).
	tx, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT set_config('auditstore.erasing', $1, true)`, f.other.EventID.String())
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE audit_events SET actor_id = 'x' WHERE event_id = $1`, f.other.EventID)
	require.ErrorContains(t, err, "under legal hold: erasure refused")
	require.NoError(t, tx.Rollback(ctx))

	// Members that are no member, or the envelope's own; an event without the member; no reason.
	for _, c := range []struct {
		members []string
		reason  string
		want    string
	}{
		{[]string{"/event_data/service"}, "r", "envelope requires"},
		{[]string{"/event_type"}, "r", "not an erasable member"},
		{[]string{"/event_data/payload/a/b"}, "r", "not an erasable member"},
		{[]string{"/actor_id"}, " ", "reason is required"},
	} {
		_, err := erasure.Erase(ctx, f.st, erasure.Request{EventIDs: []uuid.UUID{f.v2.EventID}, Members: c.members, Reason: c.reason, By: "a"})
		var invalid *erasure.InvalidError
		require.ErrorAs(t, err, &invalid, c.want)
		require.ErrorContains(t, err, c.want)
	}
	_, err = f.erase(t, f.v2.EventID, "/event_data/payload/nothing")
	require.ErrorAs(t, err, &refused)
	require.ErrorContains(t, err, "has no member /event_data/payload/nothing")
	_, err = f.erase(t, uuid.New(), "/actor_id")
	require.ErrorIs(t, err, store.ErrNotFound)

	// Nothing was erased by any of these; verify is clean.
	require.True(t, f.verify(t).OK)

	// An event changed before the erasure is refused: an erasure must not launder a change.
	_, err = f.pool.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_immutable`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `UPDATE audit_events SET event_data = jsonb_set(event_data, '{payload,attempts}', '9') WHERE event_id = $1`, f.v2.EventID)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_immutable`)
	require.NoError(t, err)
	_, err = f.erase(t, f.v2.EventID, "/actor_id")
	require.ErrorAs(t, err, &refused)
	require.ErrorContains(t, err, "no longer recomputes to its event_hash")
}

// TestErase_OutsideVerifier recomputes an erased event's hash and checks its proof the way
// README "Event hash, version 2" tells someone with nothing of auditstore's: the event as
// served, its proof (with the members' salts and the erased members' digests) and the
// standard library. The proof shows exactly which members were erased, and that every other
// member and field is as it was written.
func TestErase_OutsideVerifier(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.erase(t, f.v2.EventID, "/actor_ip", "/event_data/payload/recipient", "/event_data/source_payload")
	require.NoError(t, err)

	proofJSON := func(id uuid.UUID) ([]byte, []byte) {
		e, err := f.st.GetEvent(ctx, id)
		require.NoError(t, err)
		_, proofs, err := ledger.Proofs(ctx, f.st, []uuid.UUID{id})
		require.NoError(t, err)
		p := proofs[id]
		p.Members, err = ledger.MemberProofOf(&e)
		require.NoError(t, err)
		ev, err := json.Marshal(e)
		require.NoError(t, err)
		pj, err := json.Marshal(p)
		require.NoError(t, err)
		return ev, pj
	}
	ev, pj := proofJSON(f.v2.EventID)
	gotErased, err := outsideverify.Verify(ev, pj)
	require.NoError(t, err)
	require.Equal(t, []string{"/actor_ip", "/event_data/payload/recipient", "/event_data/source_payload"}, gotErased,
		"the proof names exactly the erased members")

	// Nothing erased: every member is proven by its value.
	ev2, pj2 := proofJSON(f.other.EventID)
	gotErased, err = outsideverify.Verify(ev2, pj2)
	require.NoError(t, err)
	require.Empty(t, gotErased)

	// Any other change fails: a member's value, a member claimed erased that was not, a field.
	for name, change := range map[string]func(ev, pj map[string]any){
		"member value": func(ev, _ map[string]any) {
			ev["event_data"].(map[string]any)["payload"].(map[string]any)["channel"] = "sms"
		},
		"field": func(ev, _ map[string]any) { ev["event_outcome"] = "failure" },
		"erased claim": func(ev, pj map[string]any) {
			delete(ev["event_data"].(map[string]any)["payload"].(map[string]any), "channel")
		},
		"member put back": func(ev, _ map[string]any) {
			ev["event_data"].(map[string]any)["payload"].(map[string]any)["recipient"] = "mallory@example.com"
		},
	} {
		var e, p map[string]any
		require.NoError(t, json.Unmarshal(ev, &e))
		require.NoError(t, json.Unmarshal(pj, &p))
		change(e, p)
		eb, _ := json.Marshal(e)
		pb, _ := json.Marshal(p)
		_, err := outsideverify.Verify(eb, pb)
		require.Error(t, err, name)
	}

	// The library's reference agrees with the outside verifier.
	var proof ledger.Proof
	require.NoError(t, json.Unmarshal(pj, &proof))
	h, err := integrity.EventHashV2(ev, nil, proof.Members.Kept())
	require.NoError(t, err)
	require.Equal(t, proof.EventHash, h)
}
