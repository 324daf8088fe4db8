package cold_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/coldtest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/auditstore/auditstore/test/s3test"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	pool   *pgxpool.Pool
	st     *store.Store
	tier   *archive.Cold
	tiered *cold.Tiered
	runner *lifecycle.Runner
	now    time.Time
	// events are every event written, by id.
	mu     sync.Mutex
	events map[uuid.UUID]audit.Event
}

// setup makes a database and a cold tier in bucket (file:// or S3), with the 2557-day class
// keeping two months hot.
func setup(t *testing.T, bucket func(t *testing.T) *blob.Bucket) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	b := bucket(t)
	tier := archive.NewCold(b, archive.ColdOptions{FileRows: 40, RowGroupRows: 8})
	f := &fixture{pool: pool, st: st, tier: tier, tiered: cold.NewTiered(st, cold.NewReader(b, 0)),
		now: time.Now().UTC(), events: map[uuid.UUID]audit.Event{}}
	f.runner = coldtest.Runner(t, st, &cold.Mover{Store: st, Tier: tier}, "2557=2", func() time.Time { return f.now })
	return f
}

func fileBucket(t *testing.T) *blob.Bucket {
	b, err := archive.OpenBucket(context.Background(), "file://"+t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

func s3Bucket(t *testing.T) *blob.Bucket { return s3test.Start(t).Bucket(t, "cold") }

// write stores n events of correlation at times from start, one a minute.
func (f *fixture) write(t *testing.T, correlation string, start time.Time, n int, class int64) {
	t.Helper()
	require.NoError(t, f.tryWrite(t, correlation, start, n, class))
}

// tryWrite is write that returns its error: a late event whose month a run is dropping that
// very moment is refused after two attempts to make the partition again, and sent again by
// its client.
func (f *fixture) tryWrite(t *testing.T, correlation string, start time.Time, n int, class int64) error {
	var batch []audit.Event
	for i := range n {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: correlation, EventTimestamp: start.Add(time.Duration(i) * time.Minute),
			RetentionDays: class, ActorID: fmt.Sprintf("actor-%d", i%3), EventType: []string{"gateway.signal.received", "workflow.step.done"}[i%2]})
		batch = append(batch, e)
	}
	_, _, err := f.st.InsertEvents(context.Background(), store.InsertParams{Events: batch})
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range batch {
		f.events[e.EventID] = e
	}
	return nil
}

func (f *fixture) run(t *testing.T) lifecycle.Report {
	t.Helper()
	return coldtest.Run(t, f.st, f.runner)
}

func months(now time.Time, back int) time.Time {
	m := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return m.AddDate(0, -back, 0)
}

// all reads every event matching filter through pages of size limit in order, following
// cursors.
func (f *fixture) all(t *testing.T, filter store.Filter, order store.Order, limit int) []audit.Event {
	t.Helper()
	var out []audit.Event
	p := store.QueryParams{Filter: filter, Order: order, Limit: limit}
	for range 10000 {
		page, err := f.tiered.QueryEvents(context.Background(), p)
		require.NoError(t, err)
		out = append(out, page.Events...)
		if !page.HasMore {
			return out
		}
		last := page.Events[len(page.Events)-1]
		p.After = &store.Cursor{EventTimestamp: last.EventTimestamp, EventID: last.EventID}
	}
	t.Fatal("too many pages")
	return nil
}

// same fails the test naming the events one list has and the other lacks.
func (f *fixture) same(t *testing.T, want, got []uuid.UUID) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name := func(id uuid.UUID) string {
		e := f.events[id]
		return fmt.Sprintf("%s@%s/r%d", e.CorrelationID, e.EventTimestamp.Format(time.RFC3339), e.RetentionDays)
	}
	var missing, extra []string
	for _, id := range want {
		if !slices.Contains(got, id) {
			missing = append(missing, name(id))
		}
	}
	for _, id := range got {
		if !slices.Contains(want, id) {
			extra = append(extra, name(id))
		}
	}
	t.Fatalf("want %d events, got %d; missing %v; extra %v; (same set but another order when both are empty)", len(want), len(got), missing, extra)
}

func ids(es []audit.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(es))
	for i, e := range es {
		out[i] = e.EventID
	}
	return out
}

// expect is what a query must return: the written events matching keep, in order.
func (f *fixture) expect(keep func(e *audit.Event) bool, order store.Order) []uuid.UUID {
	f.mu.Lock()
	defer f.mu.Unlock()
	var es []audit.Event
	for _, e := range f.events {
		if keep(&e) {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b audit.Event) int {
		c := a.EventTimestamp.Compare(b.EventTimestamp)
		if c == 0 {
			c = strings.Compare(string(a.EventID[:]), string(b.EventID[:]))
		}
		if order == store.Descending {
			return -c
		}
		return c
	})
	return ids(es)
}

func TestMoveAndQueryAcrossTiers(t *testing.T) {
	t.Parallel()
	// Through S3 every file read is HTTP requests: fewer, larger pages keep the test short.
	for name, c := range map[string]struct {
		bucket func(*testing.T) *blob.Bucket
		page   int
	}{"file": {fileBucket, 7}, "s3": {s3Bucket, 31}} {
		bucket, pageSize := c.bucket, c.page
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, bucket)
			ctx := context.Background()
			// Six months of one class: four go cold. A correlation spans cold and hot months.
			for back := 5; back >= 0; back-- {
				f.write(t, fmt.Sprintf("rr-month-%d", back), months(f.now, back).Add(time.Hour), 30, 2557)
				f.write(t, "rr-long", months(f.now, back).Add(2*time.Hour), 7, 2557)
			}
			f.write(t, "rr-short", months(f.now, 2).Add(3*time.Hour), 5, 90) // class 90 stays hot (no HOT_MONTHS for it)
			before := f.expect(func(*audit.Event) bool { return true }, store.Ascending)
			hotJSON := map[uuid.UUID]string{} // every event as read hot, before any is cold
			_, err := f.st.StreamEvents(ctx, store.StreamParams{Order: store.Ascending}, func(e *audit.Event) error {
				hotJSON[e.EventID] = string(e.AppendJSON(nil))
				return nil
			})
			require.NoError(t, err)

			rep := f.run(t)
			var cold int
			for _, a := range rep.Actions {
				if a.Kind == "partition.cold" {
					cold++
				}
			}
			require.Equal(t, 3, cold, "months 3, 4 and 5 back go cold: %+v", rep.Actions)
			files, err := f.st.ColdFiles(ctx)
			require.NoError(t, err)
			require.NotEmpty(t, files)
			for _, file := range files {
				require.True(t, strings.HasPrefix(file.Key, "audit_events_cold/retention_class=2557/month="), file.Key)
			}
			parts, err := f.st.ListPartitions(ctx)
			require.NoError(t, err)
			for _, p := range parts {
				if p.Class == 2557 {
					require.False(t, p.Month.Before(months(f.now, 2)), "partition %s should be cold", p.Name)
				}
			}

			// Every event exactly once, in both orders, through small pages whose cursors
			// cross the boundary.
			for _, order := range []store.Order{store.Ascending, store.Descending} {
				got := ids(f.all(t, store.Filter{}, order, pageSize))
				want := f.expect(func(*audit.Event) bool { return true }, order)
				f.same(t, want, got)
				require.Len(t, got, len(before))
			}
			// A timeline across tiers, and filters.
			require.Equal(t, f.expect(func(e *audit.Event) bool { return e.CorrelationID == "rr-long" }, store.Ascending),
				ids(f.all(t, store.Filter{CorrelationIDs: []string{"rr-long"}}, store.Ascending, 5)))
			flt := store.Filter{ActorIDs: []string{"actor-1"}, EventTypePrefixes: []string{"workflow."}}
			require.Equal(t, f.expect(func(e *audit.Event) bool {
				return e.ActorID == "actor-1" && strings.HasPrefix(e.EventType, "workflow.")
			}, store.Descending), ids(f.all(t, flt, store.Descending, 4)))
			since, until := months(f.now, 5).Add(90*time.Minute), months(f.now, 3).Add(90*time.Minute)
			require.Equal(t, f.expect(func(e *audit.Event) bool {
				return !e.EventTimestamp.Before(since) && e.EventTimestamp.Before(until)
			}, store.Ascending), ids(f.all(t, store.Filter{Since: &since, Until: &until}, store.Ascending, 9)))
			// JSON containment is PostgreSQL's, cold too.
			data := store.Filter{Data: []byte(`{"payload":{"fingerprint":"rr-month-4"}}`)}
			require.Equal(t, f.expect(func(e *audit.Event) bool { return e.CorrelationID == "rr-month-4" }, store.Ascending),
				ids(f.all(t, data, store.Ascending, 100)))
			// Offsets count across both tiers.
			page, err := f.tiered.QueryEvents(ctx, store.QueryParams{Order: store.Ascending, Limit: 10, Offset: 25})
			require.NoError(t, err)
			require.Equal(t, before[25:35], ids(page.Events))

			// Stream, count and get.
			var streamed []audit.Event
			_, err = f.tiered.StreamEvents(ctx, store.StreamParams{Order: store.Ascending}, func(e *audit.Event) error {
				streamed = append(streamed, *e)
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, before, ids(streamed))
			// The other order, and JSON containment applied to a stream's cold runs.
			for _, c := range []struct {
				f     store.Filter
				order store.Order
				keep  func(*audit.Event) bool
			}{
				{store.Filter{}, store.Descending, func(*audit.Event) bool { return true }},
				{data, store.Ascending, func(e *audit.Event) bool { return e.CorrelationID == "rr-month-4" }},
				{data, store.Descending, func(e *audit.Event) bool { return e.CorrelationID == "rr-month-4" }},
			} {
				var got []audit.Event
				_, err = f.tiered.StreamEvents(ctx, store.StreamParams{Filter: c.f, Order: c.order}, func(e *audit.Event) error {
					got = append(got, *e)
					return nil
				})
				require.NoError(t, err)
				require.Equal(t, f.expect(c.keep, c.order), ids(got))
			}
			n, err := f.tiered.CountEvents(ctx, store.Filter{})
			require.NoError(t, err)
			require.EqualValues(t, len(before), n)
			for i, e := range streamed {
				require.Equal(t, hotJSON[e.EventID], string(e.AppendJSON(nil)), "an event read cold is the event read hot")
				if i%(pageSize+3) == 0 {
					got, err := f.tiered.GetEvent(ctx, e.EventID)
					require.NoError(t, err)
					require.Equal(t, hotJSON[e.EventID], string(got.AppendJSON(nil)))
				}
			}
			_, err = f.tiered.GetEvent(ctx, uuid.Must(uuid.NewV7()))
			require.ErrorIs(t, err, store.ErrNotFound)

			// A late event for a cold month goes hot, is read, and moves on the next run as a
			// file of its own.
			f.write(t, "rr-late", months(f.now, 4).Add(10*time.Hour), 3, 2557)
			require.Len(t, f.all(t, store.Filter{CorrelationIDs: []string{"rr-late"}}, store.Ascending, 10), 3)
			f.run(t)
			after, err := f.st.ColdFiles(ctx)
			require.NoError(t, err)
			require.Greater(t, len(after), len(files))
			f.same(t, f.expect(func(*audit.Event) bool { return true }, store.Ascending), ids(f.all(t, store.Filter{}, store.Ascending, 50)))
		})
	}
}

// TestMoveWhileWritingAndReading makes months cold while writers add late events to them and
// readers page through everything: no reader ever misses an event or sees one twice.
func TestMoveWhileWritingAndReading(t *testing.T) {
	t.Parallel()
	f := setup(t, fileBucket)
	ctx := context.Background()
	for back := 5; back >= 0; back-- {
		f.write(t, fmt.Sprintf("rr-%d", back), months(f.now, back).Add(time.Hour), 60, 2557)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written atomic.Int64
	start := f.now // the runs below move f.now on; the writer's months are those of the start
	wg.Add(1)
	go func() { // a writer of late events into months about to go cold
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := f.tryWrite(t, fmt.Sprintf("rr-late-%d", i), months(start, 3+i%3).Add(time.Duration(20+i)*time.Hour), 2, 2557); err != nil {
				t.Logf("late write refused, sent again: %v", err)
				continue
			}
			written.Add(2)
		}
	}()
	var problems atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() { // readers: every event of the months written before, exactly once
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for back := 5; back >= 0; back-- {
					c := fmt.Sprintf("rr-%d", back)
					page, err := f.tiered.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{CorrelationIDs: []string{c}}, Order: store.Ascending, Limit: 1000})
					if err != nil || len(page.Events) != 60 {
						t.Logf("%s: %d events, %v", c, len(page.Events), err)
						problems.Add(1)
					}
				}
			}
		}()
	}
	for range 3 {
		f.run(t)
		f.now = f.now.Add(time.Second)
	}
	close(stop)
	wg.Wait()
	require.Zero(t, problems.Load())
	f.run(t) // late events that came during the last run
	f.same(t, f.expect(func(*audit.Event) bool { return true }, store.Ascending), ids(f.all(t, store.Filter{}, store.Ascending, 97)))
	require.Positive(t, written.Load())
}

// TestColdExpiryAndLegalHold: at the class's end cold files are deleted, except those holding
// an event under legal hold, which stay until the hold is released.
func TestColdExpiryAndLegalHold(t *testing.T) {
	t.Parallel()
	f := setup(t, fileBucket)
	ctx := context.Background()
	var hot lifecycle.HotMonths
	require.NoError(t, hot.Decode("1"))
	f.runner.Config.HotMonths = hot
	// Class 90: months 3 and 2 back go cold now, and expire about 90 days after their end.
	f.write(t, "rr-held", months(f.now, 3).Add(time.Hour), 10, 90)
	f.write(t, "rr-free", months(f.now, 2).Add(time.Hour), 10, 90)
	f.run(t)
	files, err := f.st.ColdFiles(ctx)
	require.NoError(t, err)
	require.Len(t, files, 2)
	cid := "rr-held"
	_, err = f.st.PlaceHold(ctx, store.LegalHold{CorrelationID: &cid, Reason: "litigation", PlacedBy: "test"})
	require.NoError(t, err)

	f.now = f.now.AddDate(0, 5, 0) // both months expired
	rep := f.run(t)
	kinds := map[string]int{}
	for _, a := range rep.Actions {
		kinds[a.Kind]++
	}
	require.Equal(t, 1, kinds["cold.deleted"], "%+v", rep.Actions)
	require.Equal(t, 1, kinds["cold.kept"], "%+v", rep.Actions)
	left, err := f.st.ColdFiles(ctx)
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Contains(t, left[0].Key, "month="+months(time.Now().UTC(), 3).Format("2006-01"))
	require.Len(t, f.all(t, store.Filter{CorrelationIDs: []string{"rr-held"}}, store.Ascending, 100), 10)
	require.Empty(t, f.all(t, store.Filter{CorrelationIDs: []string{"rr-free"}}, store.Ascending, 100))
	ok, err := f.tier.Bucket().Exists(ctx, files[1].Key)
	require.NoError(t, err)
	require.False(t, ok, "the expired file is deleted")
}

// TestTamperedColdFileIsNamed: a cold file changed in the bucket is named by its check.
func TestTamperedColdFileIsNamed(t *testing.T) {
	t.Parallel()
	f := setup(t, fileBucket)
	ctx := context.Background()
	f.write(t, "rr-t", months(f.now, 4).Add(time.Hour), 10, 2557)
	f.run(t)
	files, err := f.tier.Manifests(ctx)
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.NoError(t, f.tier.Check(ctx, files[0]))
	body, err := f.tier.Bucket().ReadAll(ctx, files[0].Key)
	require.NoError(t, err)
	body[len(body)/2] ^= 1
	require.NoError(t, f.tier.Bucket().WriteAll(ctx, files[0].Key, body, nil))
	err = f.tier.Check(ctx, files[0])
	require.ErrorIs(t, err, archive.ErrVerify)
	require.ErrorContains(t, err, files[0].Key)
}

// TestColdIntegrity: cold events have proofs that verify against the checkpoint, the
// database's verify counts them as cold (not deleted), and the cold check names a file that
// was altered — also one rewritten whole with a consistent manifest, which the log catches.
func TestColdIntegrity(t *testing.T) {
	t.Parallel()
	f := setup(t, fileBucket)
	ctx := context.Background()
	f.write(t, "rr-i", months(f.now, 4).Add(time.Hour), 20, 2557)
	f.write(t, "rr-h", months(f.now, 0).Add(time.Minute), 5, 2557)
	_, err := (&ledger.Sealer{Store: f.st}).SealAll(ctx)
	require.NoError(t, err)
	f.run(t)

	// Proofs of cold events, from the log, verify against their recomputed hashes.
	cold := f.all(t, store.Filter{CorrelationIDs: []string{"rr-i"}}, store.Ascending, 100)
	require.Len(t, cold, 20)
	_, proofs, err := ledger.Proofs(ctx, f.st, ids(cold))
	require.NoError(t, err)
	require.Len(t, proofs, 20)
	for _, e := range cold {
		h, err := ledger.Recompute(e)
		require.NoError(t, err)
		p := proofs[e.EventID]
		require.Equal(t, p.EventHash, h)
		require.NoError(t, integrity.VerifyInclusion(integrity.LeafHash(h), p.LeafIndex, p.TreeSize, p.AuditPath, p.RootHash))
	}
	// The database's verify: cold, not deleted.
	files, err := f.st.ColdFiles(ctx)
	require.NoError(t, err)
	inCold := func(l store.Leaf) bool {
		return slices.ContainsFunc(files, func(c store.ColdFile) bool {
			return c.Class == l.RetentionDays && !l.EventTimestamp.Before(c.Month) && l.EventTimestamp.Before(c.Month.AddDate(0, 1, 0))
		})
	}
	rep, err := ledger.Verify(ctx, f.st, ledger.VerifyOptions{Cold: inCold})
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 20, rep.Cold)

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
	require.Len(t, manifests, 1)
	good, err := f.tier.VerifyCold(ctx, manifests[0], sealed)
	require.NoError(t, err)
	require.True(t, good.OK, "%+v", good.Problems)
	require.EqualValues(t, 20, good.Sealed)

	// A byte changed in the file.
	key := manifests[0].Key
	orig, err := f.tier.Bucket().ReadAll(ctx, key)
	require.NoError(t, err)
	bad := slices.Clone(orig)
	bad[len(bad)/3] ^= 0x20
	require.NoError(t, f.tier.Bucket().WriteAll(ctx, key, bad, nil))
	rep, err = f.tier.VerifyCold(ctx, manifests[0], sealed)
	require.NoError(t, err)
	require.False(t, rep.OK)
	require.Equal(t, archive.ProblemColdFile, rep.Problems[0].Kind)
	require.Contains(t, rep.Problems[0].Detail, key)

	// The file rewritten whole, one event's data changed and its stored hash with it, and a
	// manifest that matches: only the log tells.
	require.NoError(t, f.tier.Bucket().WriteAll(ctx, key, orig, nil))
	var events []audit.Event
	require.NoError(t, f.tier.Scan(ctx, manifests[0], func(r *archive.ColdRow) error {
		events = append(events, r.Event())
		return nil
	}))
	events[3].EventData = []byte(`{"forged":true}`)
	h, err := ledger.Recompute(events[3])
	require.NoError(t, err)
	events[3].EventHash = h[:]
	slices.SortFunc(events, func(a, b audit.Event) int { return a.EventTimestamp.Compare(b.EventTimestamp) })
	forged, err := f.tier.WriteMonth(ctx, 2557, months(f.now, 4), func(fn func(*audit.Event) error) (int64, error) {
		for i := range events {
			if err := fn(&events[i]); err != nil {
				return 0, err
			}
		}
		return int64(len(events)), nil
	})
	require.NoError(t, err)
	rep, err = f.tier.VerifyCold(ctx, forged[0], sealed)
	require.NoError(t, err)
	require.False(t, rep.OK)
	require.Equal(t, ledger.ProblemModified, rep.Problems[0].Kind)
	require.Contains(t, rep.Problems[0].Detail, forged[0].Key)
}
