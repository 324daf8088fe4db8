package erasure_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/erasure"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/coldtest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// coldFixture is a database whose events of one month (four months back) were moved to a cold
// tier on file://, sealed first: 20 events of rr-cold (the first alice's, the others naming
// dave) and 5 of rr-hold (the first carol's), all in one cold file.
type coldFixture struct {
	pool   *pgxpool.Pool
	st     *store.Store
	tier   *archive.Cold
	mover  *cold.Mover
	tiered *cold.Tiered
	runner *lifecycle.Runner
	keys   []integrity.PublicKey
	month  time.Time
	alice  audit.Event // rr-cold's first event
	carol  audit.Event // rr-hold's first event
	all    []uuid.UUID // every event of the month, in (event_timestamp, event_id) order
}

func setupCold(t *testing.T) *coldFixture {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	b, err := archive.OpenBucket(ctx, "file://"+t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	tier := archive.NewCold(b, archive.ColdOptions{FileRows: 40, RowGroupRows: 8})
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	now := time.Now().UTC()
	f := &coldFixture{pool: pool, st: st, tier: tier, mover: &cold.Mover{Store: st, Tier: tier},
		tiered: cold.NewTiered(st, cold.NewReader(b, 0)), keys: []integrity.PublicKey{pub},
		month: time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -4, 0)}
	f.runner = coldtest.Runner(t, st, f.mover, "2557=2", func() time.Time { return now })

	var events []audit.Event
	for i := range 25 {
		corr, actor := "rr-cold", fmt.Sprintf("svc-%d", i)
		if i >= 20 {
			corr = "rr-hold"
		}
		o := &audittest.EventOpts{CorrelationID: corr, ActorID: actor, RetentionDays: 2557,
			EventTimestamp: f.month.Add(time.Hour + time.Duration(i)*time.Minute), EventData: json.RawMessage(strings.ReplaceAll(personal, "alice", "dave"))}
		if i == 0 {
			o.ActorID, o.EventData = "alice@example.com", json.RawMessage(personal)
		}
		if i == 20 {
			o.ActorID = "carol@example.com"
		}
		e := audittest.Event(t, o)
		if i == 0 {
			ip := "192.0.2.7"
			e.ActorIP = &ip
		}
		require.NoError(t, ledger.Hash(&e))
		events = append(events, e)
		f.all = append(f.all, e.EventID)
	}
	f.alice, f.carol = events[0], events[20]
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = (&ledger.Sealer{Store: st, Signer: integrity.NewSigner(priv)}).SealAll(ctx)
	require.NoError(t, err)
	f.run(t)
	files, err := st.ColdFiles(ctx)
	require.NoError(t, err)
	require.Len(t, files, 1, "the month is one cold file")
	_, err = st.GetEvent(ctx, f.alice.EventID)
	require.ErrorIs(t, err, store.ErrNotFound, "the month left PostgreSQL")
	return f
}

func (f *coldFixture) run(t *testing.T) lifecycle.Report {
	t.Helper()
	return coldtest.Run(t, f.st, f.runner)
}

func (f *coldFixture) erase(ids []uuid.UUID, members ...string) (erasure.Result, error) {
	return erasure.Erase(context.Background(), f.st, erasure.Request{EventIDs: ids, Members: members,
		Reason: "GDPR art. 17 request 2026-204", By: "dpo-admin", Cold: f.mover})
}

// served returns every event of the month as each read endpoint serves it: a list in pages,
// an export, and a get by id of each; and fails unless each lists every event exactly once.
func (f *coldFixture) served(t *testing.T) map[string][]audit.Event {
	t.Helper()
	ctx := context.Background()
	out := map[string][]audit.Event{}
	p := store.QueryParams{Order: store.Ascending, Limit: 7, Filter: store.Filter{CorrelationIDs: []string{"rr-cold", "rr-hold"}}}
	for range 100 {
		page, err := f.tiered.QueryEvents(ctx, p)
		require.NoError(t, err)
		out["list"] = append(out["list"], page.Events...)
		if !page.HasMore {
			break
		}
		last := page.Events[len(page.Events)-1]
		p.After = &store.Cursor{EventTimestamp: last.EventTimestamp, EventID: last.EventID}
	}
	_, err := f.tiered.StreamEvents(ctx, store.StreamParams{Order: store.Ascending, Filter: p.Filter}, func(e *audit.Event) error {
		out["export"] = append(out["export"], *e)
		return nil
	})
	require.NoError(t, err)
	for _, id := range f.all {
		e, err := f.tiered.GetEvent(ctx, id)
		require.NoError(t, err)
		out["get"] = append(out["get"], e)
	}
	for how, es := range out {
		got := make([]uuid.UUID, len(es))
		for i := range es {
			got[i] = es[i].EventID
		}
		require.Equal(t, f.all, got, "%s serves every event exactly once", how)
	}
	return out
}

// verifyArchive is verify -archive: every cold file of the bucket's manifests, each event
// against its stored hash and the hash the log sealed; it returns the problems.
func (f *coldFixture) verifyArchive(t *testing.T) []ledger.Problem {
	t.Helper()
	ctx := context.Background()
	sealed := func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]integrity.Hash, error) {
		leaves, err := f.st.LeavesOf(ctx, ids)
		out := map[uuid.UUID]integrity.Hash{}
		for _, l := range leaves {
			out[l.EventID] = l.EventHash
		}
		return out, err
	}
	manifests, err := f.tier.Manifests(ctx)
	require.NoError(t, err)
	problems := []ledger.Problem{}
	for _, m := range manifests {
		rep, err := f.tier.VerifyCold(ctx, m, sealed)
		require.NoError(t, err)
		require.Zero(t, rep.Pending, "every cold event is sealed")
		problems = append(problems, rep.Problems...)
	}
	return problems
}

// verifyDB is verify with the database: cold events counted as cold, nothing else to find.
func (f *coldFixture) verifyDB(t *testing.T) ledger.Report {
	t.Helper()
	files, err := f.st.ColdFiles(context.Background())
	require.NoError(t, err)
	rep, err := ledger.Verify(context.Background(), f.st, ledger.VerifyOptions{Keys: f.keys, Cold: func(l store.Leaf) bool {
		return slices.ContainsFunc(files, func(c store.ColdFile) bool {
			return c.Class == l.RetentionDays && !l.EventTimestamp.Before(c.Month) && l.EventTimestamp.Before(c.Month.AddDate(0, 1, 0))
		})
	}})
	require.NoError(t, err)
	return rep
}

// objects lists the keys of the cold tier's Parquet files in the bucket (manifests aside).
func (f *coldFixture) objects(t *testing.T) []string {
	t.Helper()
	manifests, err := f.tier.Manifests(context.Background())
	require.NoError(t, err)
	var keys []string
	for _, m := range manifests {
		ok, err := f.tier.Bucket().Exists(context.Background(), m.Key)
		require.NoError(t, err)
		require.True(t, ok, "a manifest names a file that is there")
		keys = append(keys, m.Key)
	}
	slices.Sort(keys)
	return keys
}

func (f *coldFixture) catalogue(t *testing.T) []string {
	t.Helper()
	files, err := f.st.ColdFiles(context.Background())
	require.NoError(t, err)
	var keys []string
	for _, c := range files {
		keys = append(keys, c.Key)
	}
	slices.Sort(keys)
	return keys
}

// rowsText is every row of every cold file in the bucket, as JSON.
func (f *coldFixture) rowsText(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	manifests, err := f.tier.Manifests(ctx)
	require.NoError(t, err)
	var b strings.Builder
	for _, m := range manifests {
		require.NoError(t, f.tier.Scan(ctx, m, func(r *archive.ColdRow) error {
			j, err := json.Marshal(r)
			b.Write(j)
			return err
		}))
	}
	return b.String()
}

func TestEraseCold_ServedDataLacksTheMembersAndVerifyStaysClean(t *testing.T) {
	t.Parallel()
	f := setupCold(t)
	ctx := context.Background()
	before := f.catalogue(t)
	require.Contains(t, f.rowsText(t), "alice@example.com")

	// Without the cold tier an erasure does not find the event.
	_, err := erasure.Erase(ctx, f.st, erasure.Request{EventIDs: []uuid.UUID{f.alice.EventID}, Members: erased, Reason: "r", By: "a"})
	require.ErrorIs(t, err, store.ErrNotFound)

	res, err := f.erase([]uuid.UUID{f.alice.EventID}, erased...)
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	require.Equal(t, erased, res.Events[0].Members)
	require.Len(t, res.ColdFiles, 1)
	require.Equal(t, before[0], res.ColdFiles[0].Replaced)
	require.Equal(t, res.ColdFiles[0].By, f.catalogue(t), "the catalogue names the rewritten file only")
	require.Equal(t, f.catalogue(t), f.objects(t), "the replaced file is deleted")

	// Gone from the cold files and from everything served; the other events are unchanged.
	rows := f.rowsText(t)
	for _, gone := range []string{"alice", "192.0.2.7", "paged alice"} {
		require.NotContains(t, rows, gone)
	}
	require.Contains(t, rows, "carol@example.com")
	for how, es := range f.served(t) {
		body, err := json.Marshal(es)
		require.NoError(t, err)
		require.NotContains(t, string(body), "alice", how)
		require.NotContains(t, string(body), "192.0.2.7", how)
		require.Equal(t, erased, es[0].Erased, how)
		require.Equal(t, integrity.ErasedActorID, es[0].ActorID, how)
		require.JSONEq(t, `{"version":"1.0","service":"notification","operation":"message.sent","status":"success","payload":{"channel":"email","attempts":2}}`, string(es[0].EventData), how)
		require.Empty(t, es[1].Erased, how)
	}

	// Proofs, verify and verify -archive pass.
	got, err := f.tiered.GetEvent(ctx, f.alice.EventID)
	require.NoError(t, err)
	_, proofs, err := ledger.Proofs(ctx, f.st, []uuid.UUID{got.EventID})
	require.NoError(t, err)
	h, err := ledger.Recompute(got)
	require.NoError(t, err)
	p := proofs[got.EventID]
	require.Equal(t, p.EventHash, h)
	require.NoError(t, integrity.VerifyInclusion(integrity.LeafHash(h), p.LeafIndex, p.TreeSize, p.AuditPath, p.RootHash))
	rep := f.verifyDB(t)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 25, rep.Cold)
	require.Empty(t, f.verifyArchive(t))

	// Recorded as a hot erasure is.
	records, members, err := f.st.Erasures(ctx, f.alice.EventID)
	require.NoError(t, err)
	require.Len(t, records, 1)
	require.Equal(t, res.ErasureID, records[0].ErasureID)
	require.Equal(t, erased, members[0])

	// Again: the members are skipped, nothing is rewritten; another member rewrites again.
	res, err = f.erase([]uuid.UUID{f.alice.EventID}, "/actor_id")
	require.NoError(t, err)
	require.Empty(t, res.Events)
	require.Empty(t, res.ColdFiles)
	res, err = f.erase([]uuid.UUID{f.alice.EventID, f.all[1]}, "/event_data/payload/channel")
	require.NoError(t, err)
	require.Len(t, res.Events, 2)
	require.Len(t, res.ColdFiles, 1)
	f.served(t)
	require.Empty(t, f.verifyArchive(t))
	require.True(t, f.verifyDB(t).OK)
}

func TestEraseCold_ASecondChangeIsNamed(t *testing.T) {
	t.Parallel()
	f := setupCold(t)
	ctx := context.Background()
	_, err := f.erase([]uuid.UUID{f.alice.EventID}, "/actor_id", "/event_data/payload/recipient")
	require.NoError(t, err)
	require.Empty(t, f.verifyArchive(t))

	// The rewritten file forged whole, with a manifest that matches it: attempts changed in
	// the erased event.
	files, err := f.tier.Manifests(ctx)
	require.NoError(t, err)
	require.Len(t, files, 1)
	var events []audit.Event
	require.NoError(t, f.tier.Scan(ctx, files[0], func(r *archive.ColdRow) error {
		events = append(events, r.Event())
		return nil
	}))
	slices.SortFunc(events, func(a, b audit.Event) int { return a.EventTimestamp.Compare(b.EventTimestamp) })
	require.Equal(t, f.alice.EventID, events[0].EventID)
	events[0].EventData = json.RawMessage(strings.Replace(string(events[0].EventData), `"attempts": 2`, `"attempts": 5`, 1))
	require.Contains(t, string(events[0].EventData), `"attempts": 5`, "event_data is in jsonb's form, as in every cold file")
	forged, err := f.tier.WriteMonth(ctx, 2557, f.month, func(fn func(*audit.Event) error) (int64, error) {
		for i := range events {
			if err := fn(&events[i]); err != nil {
				return 0, err
			}
		}
		return int64(len(events)), nil
	})
	require.NoError(t, err)
	require.NoError(t, f.tier.Delete(ctx, files[0].Key))
	problems := f.verifyArchive(t)
	require.NotEmpty(t, problems)
	for _, p := range problems {
		require.Equal(t, ledger.ProblemModified, p.Kind)
		require.Equal(t, f.alice.EventID, *p.EventID)
		require.Contains(t, p.Detail, forged[0].Key)
	}
	require.Contains(t, problems[0].Detail, "/event_data/payload/attempts no longer has the value it was committed with")
}

func TestEraseCold_HeldMonthRefused(t *testing.T) {
	t.Parallel()
	f := setupCold(t)
	ctx := context.Background()
	before := f.catalogue(t)
	since, until := f.month, f.month.AddDate(0, 1, 0)
	hold, err := f.st.PlaceHold(ctx, store.LegalHold{Since: &since, Until: &until, Filter: json.RawMessage(`{"actor_id":"carol@example.com"}`),
		Reason: "litigation 77", PlacedBy: "legal"})
	require.NoError(t, err)

	// The held event, alone or with others: refused, naming the hold; nothing written.
	for _, ids := range [][]uuid.UUID{{f.carol.EventID}, {f.alice.EventID, f.carol.EventID}} {
		_, err = f.erase(ids, "/actor_id")
		var held *erasure.HeldError
		require.ErrorAs(t, err, &held)
		require.Equal(t, f.carol.EventID, held.EventID)
		require.Equal(t, hold.HoldID, held.Hold.HoldID)
		require.ErrorContains(t, err, "litigation 77")
		require.Equal(t, before, f.catalogue(t))
		require.Equal(t, before, f.objects(t), "no file left behind")
	}
	served := f.served(t)
	require.Equal(t, "alice@example.com", served["get"][0].ActorID)
	require.Equal(t, "carol@example.com", served["get"][20].ActorID)

	// An event of the same file the hold does not cover is erased.
	_, err = f.erase([]uuid.UUID{f.alice.EventID}, "/actor_id")
	require.NoError(t, err)
	served = f.served(t)
	require.Equal(t, integrity.ErasedActorID, served["get"][0].ActorID)
	require.Equal(t, "carol@example.com", served["get"][20].ActorID)
	require.Empty(t, f.verifyArchive(t))

	// Once released, the held event is erased too.
	_, err = f.st.ReleaseHold(ctx, hold.HoldID, "legal", "settled")
	require.NoError(t, err)
	_, err = f.erase([]uuid.UUID{f.carol.EventID}, "/actor_id")
	require.NoError(t, err)
	require.Equal(t, integrity.ErasedActorID, f.served(t)["get"][20].ActorID)

	// An erasure waits for a maintenance run in progress (which may be moving the month).
	m, err := f.st.BeginMaintenance(ctx)
	require.NoError(t, err)
	_, err = f.erase([]uuid.UUID{f.all[2]}, "/actor_id")
	require.ErrorIs(t, err, store.ErrLocked)
	m.End()
}

// TestEraseCold_Interrupted leaves an erasure where a crash would: after the new file is
// written and before the catalogue swap, and after the swap and before the old file is
// deleted. Each time every event is served exactly once, verify -archive passes, and the file
// left over is deleted by the next erasure or maintenance run.
func TestEraseCold_Interrupted(t *testing.T) {
	t.Parallel()
	f := setupCold(t)
	ctx := context.Background()
	b := f.tier.Bucket()
	old := f.catalogue(t)[0]
	oldRow, err := f.st.ColdFiles(ctx)
	require.NoError(t, err)
	oldBody, err := b.ReadAll(ctx, old)
	require.NoError(t, err)
	oldManifest, err := b.ReadAll(ctx, archive.ColdManifestKey(old))
	require.NoError(t, err)
	res, err := f.erase([]uuid.UUID{f.alice.EventID}, erased...)
	require.NoError(t, err)
	rewritten := res.ColdFiles[0].By
	restoreOld := func() {
		require.NoError(t, b.WriteAll(ctx, old, oldBody, nil))
		require.NoError(t, b.WriteAll(ctx, archive.ColdManifestKey(old), oldManifest, nil))
	}

	// After the swap, before the delete: the catalogue names the new file, the old is there.
	restoreOld()
	both := append(slices.Clone(rewritten), old)
	slices.Sort(both)
	require.Equal(t, both, f.objects(t))
	require.Equal(t, integrity.ErasedActorID, f.served(t)["get"][0].ActorID)
	require.Empty(t, f.verifyArchive(t))
	rep := f.run(t)
	require.True(t, slices.ContainsFunc(rep.Actions, func(a lifecycle.Action) bool { return a.Kind == "cold.swept" && a.Partition == old }), "%+v", rep.Actions)
	require.Equal(t, rewritten, f.objects(t))
	require.NotContains(t, f.rowsText(t), "alice@example.com")

	// Before the swap: the catalogue still names the old file, the new one is written. The
	// erasure's transaction did not commit, so neither did its record.
	restoreOld()
	_, err = f.pool.Exec(ctx, `DELETE FROM audit_cold_files`)
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `DELETE FROM audit_erasures`)
	require.NoError(t, err)
	require.NoError(t, f.st.RecordColdFiles(ctx, oldRow))
	require.Equal(t, []string{old}, f.catalogue(t))
	require.Len(t, f.objects(t), 2)
	require.Equal(t, "alice@example.com", f.served(t)["get"][0].ActorID)
	require.Empty(t, f.verifyArchive(t))
	// The next erasure sweeps the file left over and does the erasure again.
	res, err = f.erase([]uuid.UUID{f.alice.EventID}, erased...)
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	require.Equal(t, f.catalogue(t), f.objects(t))
	require.NotContains(t, f.catalogue(t), rewritten[0])
	require.Equal(t, integrity.ErasedActorID, f.served(t)["get"][0].ActorID)
	require.Empty(t, f.verifyArchive(t))
	require.True(t, f.verifyDB(t).OK)

	// A manifest whose file was deleted before it (an interrupted delete) goes too.
	require.NoError(t, b.WriteAll(ctx, archive.ColdManifestKey(old), oldManifest, nil))
	manifests, err := f.tier.Manifests(ctx)
	require.NoError(t, err)
	require.Len(t, manifests, 2)
	f.run(t)
	require.Equal(t, f.catalogue(t), f.objects(t))

	// A rewrite whose change would alter what an event hashes to is refused, and leaves no file.
	files, err := f.st.ColdFiles(ctx)
	require.NoError(t, err)
	_, _, err = f.mover.Rewrite(ctx, files[0], func(e *audit.Event) (bool, error) {
		if e.EventID != f.all[3] {
			return false, nil
		}
		e.EventOutcome = "failure"
		return true, nil
	})
	require.ErrorContains(t, err, "does not verify")
	require.Equal(t, f.catalogue(t), f.objects(t))
}

// staleCatalogue is the store as a query that read the catalogue just before an erasure sees
// it: its first stale reads of the catalogue (all of them when stale is negative) name the
// files the erasure replaced.
type staleCatalogue struct {
	*store.Store
	old   []store.ColdFile
	stale int
}

func (s *staleCatalogue) ColdFilesFor(ctx context.Context, q store.ColdFileQuery) ([]store.ColdFile, error) {
	if s.stale != 0 {
		s.stale--
		return slices.Clone(s.old), nil
	}
	return s.Store.ColdFilesFor(ctx, q)
}

// TestEraseCold_ReadDuringTheSwap: a read that named the replaced file before an erasure
// swapped it out reads the catalogue again and answers from the new file (list, count, get);
// one that keeps finding the file gone is a 503 to retry, never an answer from a partial tier.
func TestEraseCold_ReadDuringTheSwap(t *testing.T) {
	t.Parallel()
	f := setupCold(t)
	ctx := context.Background()
	old, err := f.st.ColdFilesFor(ctx, store.ColdFileQuery{})
	require.NoError(t, err)
	_, err = f.erase([]uuid.UUID{f.alice.EventID}, erased...)
	require.NoError(t, err)

	p := store.QueryParams{Order: store.Ascending, Limit: 100, Filter: store.Filter{CorrelationIDs: []string{"rr-cold"}}}
	want, err := f.tiered.QueryEvents(ctx, p)
	require.NoError(t, err)
	require.Len(t, want.Events, 20)
	wantAlice, err := f.tiered.GetEvent(ctx, f.alice.EventID)
	require.NoError(t, err)
	require.NotContains(t, string(wantAlice.AppendJSON(nil)), "alice@")

	stale := &staleCatalogue{Store: f.st, old: old}
	tiered := cold.NewTiered(stale, cold.NewReader(f.tier.Bucket(), 0))
	stale.stale = 1
	got, err := tiered.QueryEvents(ctx, p)
	require.NoError(t, err)
	require.Zero(t, stale.stale, "the first read named the replaced file")
	require.Equal(t, want, got)
	stale.stale = 1
	n, err := tiered.CountEvents(ctx, p.Filter)
	require.NoError(t, err)
	require.EqualValues(t, 20, n)
	stale.stale = 1
	alice, err := tiered.GetEvent(ctx, f.alice.EventID)
	require.NoError(t, err)
	require.Equal(t, wantAlice, alice)

	stale.stale = -1
	_, err = tiered.QueryEvents(ctx, p)
	require.ErrorIs(t, err, cold.ErrFileGone)
	require.ErrorIs(t, err, store.ErrUnavailable, "a 503 to retry")
}
