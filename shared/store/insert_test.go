package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func setup(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t)
	return store.New(pool), pool
}

func insert(t *testing.T, s *store.Store, events ...audit.Event) []store.InsertResult {
	t.Helper()
	res, committed, err := s.InsertEvents(context.Background(), store.InsertParams{Events: events})
	require.NoError(t, err)
	require.True(t, committed)
	require.Len(t, res, len(events))
	return res
}

func statuses(res []store.InsertResult) []store.InsertStatus {
	out := make([]store.InsertStatus, len(res))
	for i, r := range res {
		out[i] = r.Status
	}
	return out
}

func countRows(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE event_id = $1`, id).Scan(&n))
	return n
}

func TestInsertEvents_StoresAndReadsBack(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()

	in := audittest.Input(t, nil)
	ip, code, dur := "2001:DB8::1", "E42", int64(1500)
	in.ActorIP, in.ErrorCode, in.DurationMS = &ip, &code, &dur
	e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "svc-gateway", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	require.Empty(t, errs)

	res := insert(t, s, e)
	require.Equal(t, store.Inserted, res[0].Status)
	require.True(t, res[0].EventTimestamp.Equal(e.EventTimestamp))

	got, err := s.GetEvent(ctx, e.EventID)
	require.NoError(t, err)
	require.Equal(t, e.EventID, got.EventID)
	require.True(t, got.EventTimestamp.Equal(e.EventTimestamp))
	require.Equal(t, "2001:db8::1", *got.ActorIP)
	require.Equal(t, "E42", *got.ErrorCode)
	require.Equal(t, int64(1500), *got.DurationMS)
	require.Equal(t, "svc-gateway", got.SubmittedBy)
	require.Equal(t, 2557, got.RetentionDays)
	require.Equal(t, "gateway", got.EventCategory)
	require.Equal(t, "received", got.EventAction)
	require.Nil(t, got.ParentEventID)
	require.JSONEq(t, string(e.EventData), string(got.EventData))
	require.Equal(t, e.ContentHash, got.ContentHash)

	_, err = s.GetEvent(ctx, uuid.New())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestInsertEvents_DuplicateAndConflict(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)

	in := audittest.Input(t, nil)
	prep := func(in *audit.Input, now time.Time) audit.Event {
		e, errs := in.Prepare(audit.Defaults{Now: now, Principal: "p", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
		require.Empty(t, errs)
		return e
	}
	first := prep(in, time.Now())
	require.Equal(t, []store.InsertStatus{store.Inserted}, statuses(insert(t, s, first)))

	// A retry without event_timestamp gets a new default timestamp, maybe even a new month:
	// still the same content, so a duplicate, and the first timestamp is reported.
	retry := prep(in, time.Now().Add(40*24*time.Hour))
	res := insert(t, s, retry)
	require.Equal(t, store.Duplicate, res[0].Status)
	require.True(t, res[0].EventTimestamp.Equal(first.EventTimestamp))

	changed := *in
	outcome := "failure"
	changed.EventOutcome = &outcome
	require.Equal(t, []store.InsertStatus{store.Conflict}, statuses(insert(t, s, prep(&changed, time.Now()))))
	require.Equal(t, 1, countRows(t, pool, first.EventID))
}

func TestInsertEvents_RepeatedIDInBatch(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)

	a := audittest.Event(t, nil)
	same := a
	other := audittest.Event(t, &audittest.EventOpts{EventID: a.EventID.String(), EventOutcome: "failure"})
	fresh := audittest.Event(t, nil)

	res := insert(t, s, a, same, fresh, other)
	require.Equal(t, []store.InsertStatus{store.Inserted, store.Duplicate, store.Inserted, store.Conflict}, statuses(res))
	require.True(t, res[1].EventTimestamp.Equal(a.EventTimestamp))
	require.Equal(t, 1, countRows(t, pool, a.EventID))
}

func TestInsertEvents_CommitVeto(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()

	stored := audittest.Event(t, nil)
	insert(t, s, stored)
	conflicting := audittest.Event(t, &audittest.EventOpts{EventID: stored.EventID.String(), EventOutcome: "failure"})
	fresh := audittest.Event(t, nil)

	res, committed, err := s.InsertEvents(ctx, store.InsertParams{
		Events: []audit.Event{fresh, conflicting},
		Commit: func(r []store.InsertResult) bool {
			for _, x := range r {
				if x.Status == store.Conflict {
					return false
				}
			}
			return true
		},
	})
	require.NoError(t, err)
	require.False(t, committed)
	require.Equal(t, []store.InsertStatus{store.Inserted, store.Conflict}, statuses(res))
	require.Equal(t, 0, countRows(t, pool, fresh.EventID), "a vetoed batch stores nothing")
}

func TestInsertEvents_ConcurrentOverlappingIDs(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()

	// 8 writers insert the same 200 events, each in its own order and batch sizes, while
	// each also inserts 50 of its own.
	shared := make([]audit.Event, 200)
	for i := range shared {
		shared[i] = audittest.Event(t, nil)
	}
	const writers = 8
	own := make([][]audit.Event, writers)
	for w := range own {
		for range 50 {
			own[w] = append(own[w], audittest.Event(t, nil))
		}
	}
	var inserted [writers]int
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := append([]audit.Event{}, own[w]...)
			for i := range shared {
				batch = append(batch, shared[(i*7+w*31)%len(shared)])
			}
			size := 10 + w*13
			for len(batch) > 0 {
				n := min(size, len(batch))
				res, _, err := s.InsertEvents(ctx, store.InsertParams{Events: batch[:n]})
				if err != nil {
					errs <- err
					return
				}
				for _, r := range res {
					switch r.Status {
					case store.Inserted:
						inserted[w]++
					case store.Conflict:
						errs <- fmt.Errorf("writer %d: unexpected conflict for %s", w, r.EventID)
						return
					}
				}
				batch = batch[n:]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total := 0
	for _, n := range inserted {
		total += n
	}
	require.Equal(t, 200+writers*50, total, "every id is reported inserted exactly once")
	var rows, distinct int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT event_id) FROM audit_events`).Scan(&rows, &distinct))
	require.Equal(t, 200+writers*50, rows)
	require.Equal(t, rows, distinct)
}

func TestInsertEvents_PrunedKeyStillDeduplicates(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()

	e := audittest.Event(t, nil)
	insert(t, s, e)
	// Maintenance pruned the key after the idempotency window.
	_, err := pool.Exec(ctx, `DELETE FROM audit_event_keys WHERE event_id = $1`, e.EventID)
	require.NoError(t, err)

	require.Equal(t, []store.InsertStatus{store.Duplicate}, statuses(insert(t, s, e)))
	conflicting := e
	conflicting.ContentHash = make([]byte, 32)
	require.Equal(t, []store.InsertStatus{store.Conflict}, statuses(insert(t, s, conflicting)))
	// The re-created key carries the stored event's hash, so it keeps judging correctly.
	require.Equal(t, []store.InsertStatus{store.Duplicate}, statuses(insert(t, s, e)))
	require.Equal(t, 1, countRows(t, pool, e.EventID))

	// The same through the transactional COPY paths (a caller that may veto the commit).
	_, err = pool.Exec(ctx, `DELETE FROM audit_event_keys WHERE event_id = $1`, e.EventID)
	require.NoError(t, err)
	res, committed, err := s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{e}, Commit: func([]store.InsertResult) bool { return true }})
	require.NoError(t, err)
	require.True(t, committed)
	require.Equal(t, []store.InsertStatus{store.Duplicate}, statuses(res))
	require.Equal(t, 1, countRows(t, pool, e.EventID))
}

func TestInsertEvents_PartitionPerClassAndMonth(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()

	now := time.Now().UTC()
	short := audittest.Event(t, &audittest.EventOpts{RetentionDays: 100}) // rounds up to 180
	require.Equal(t, 180, short.RetentionDays)
	// 20 months ahead: no partition exists (the migration made 4 months); it is created on
	// demand and the event is stored.
	far := now.AddDate(0, 20, 0)
	future := audittest.Event(t, &audittest.EventOpts{EventTimestamp: far})
	insert(t, s, short, future)

	partitionOf := func(id uuid.UUID) string {
		var name string
		require.NoError(t, pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM audit_events WHERE event_id = $1`, id).Scan(&name))
		return name
	}
	require.Equal(t, fmt.Sprintf("audit_events_r180_%04d_%02d", now.Year(), now.Month()), partitionOf(short.EventID))
	require.Equal(t, fmt.Sprintf("audit_events_r2557_%04d_%02d", far.Year(), far.Month()), partitionOf(future.EventID))

	// A partition dropped behind the Store's back (as maintenance does) is made again.
	_, err := pool.Exec(ctx, fmt.Sprintf(`DROP TABLE audit_events_r90_%04d_%02d`, now.Year(), now.Month()))
	require.NoError(t, err)
	again := audittest.Event(t, &audittest.EventOpts{RetentionDays: 90})
	insert(t, s, again)
	require.Equal(t, fmt.Sprintf("audit_events_r90_%04d_%02d", now.Year(), now.Month()), partitionOf(again.EventID))
}

func TestCreatePartitions_ConcurrentCallersDoNotCollide(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()

	from := time.Now().UTC().AddDate(2, 0, 0)
	var wg sync.WaitGroup
	created := make([][]string, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = s.CreatePartitions(ctx, from, from.AddDate(0, 2, 0), []int{365, 730})
		}()
	}
	wg.Wait()
	total := 0
	for i := range 8 {
		require.NoError(t, errs[i])
		total += len(created[i])
	}
	require.Equal(t, 6, total, "each of 2 classes x 3 months is created exactly once")
}
