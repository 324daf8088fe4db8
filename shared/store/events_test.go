package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func ids(events []audit.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(events))
	for i, e := range events {
		out[i] = e.EventID
	}
	return out
}

func TestQueryEvents_Filters(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

	a := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-a", EventType: "gateway.signal.received", EventTimestamp: base})
	b := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-a", EventType: "aianalysis.analysis.completed", ActorID: "aianalysis", EventOutcome: "failure", EventTimestamp: base.Add(time.Second)})
	c := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-b", EventType: "gateway.crd.created", EventTimestamp: base.Add(2 * time.Second),
		EventData: json.RawMessage(`{"version":"1.0","service":"gateway","operation":"crd.created","status":"success","payload":{"retries":5}}`)})
	insert(t, s, a, b, c)

	query := func(f store.Filter, order store.Order) []uuid.UUID {
		t.Helper()
		page, err := s.QueryEvents(ctx, store.QueryParams{Filter: f, Order: order, Limit: 100})
		require.NoError(t, err)
		return ids(page.Events)
	}
	require.Equal(t, []uuid.UUID{a.EventID, b.EventID}, query(store.Filter{CorrelationIDs: []string{"rr-a"}}, store.Ascending))
	require.Equal(t, []uuid.UUID{b.EventID, a.EventID}, query(store.Filter{CorrelationIDs: []string{"rr-a"}}, store.Descending))
	require.Equal(t, []uuid.UUID{a.EventID, c.EventID}, query(store.Filter{EventTypePrefixes: []string{"gateway."}}, store.Ascending))
	require.Equal(t, []uuid.UUID{b.EventID, c.EventID}, query(store.Filter{EventTypes: []string{"aianalysis.analysis.completed"}, EventTypePrefixes: []string{"gateway.crd"}}, store.Ascending))
	require.Equal(t, []uuid.UUID{b.EventID}, query(store.Filter{EventOutcomes: []string{"failure"}, ActorIDs: []string{"aianalysis", "nobody"}}, store.Ascending))
	require.Equal(t, []uuid.UUID{c.EventID}, query(store.Filter{Data: json.RawMessage(`{"payload":{"retries":5}}`)}, store.Ascending))
	require.Equal(t, []uuid.UUID{c.EventID}, query(store.Filter{DataPath: `$.payload.retries > 4`}, store.Ascending))
	since, until := base.Add(time.Second), base.Add(2*time.Second)
	require.Equal(t, []uuid.UUID{b.EventID}, query(store.Filter{Since: &since, Until: &until}, store.Ascending))
	require.Empty(t, query(store.Filter{CorrelationIDs: []string{"rr-a' OR '1'='1"}}, store.Ascending))

	n, err := s.CountEvents(ctx, store.Filter{CorrelationIDs: []string{"rr-a", "rr-b"}})
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	_, err = s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{DataPath: "$.payload.retries >>> 3"}, Limit: 10})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func TestQueryEvents_CursorWalkWhileInserting(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()

	// 500 events of one correlation, spread over the last hour; some share a timestamp so the
	// event_id tie-break is exercised.
	base := time.Now().UTC().Add(-time.Hour)
	var seeded []audit.Event
	for i := range 500 {
		seeded = append(seeded, audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-walk", EventTimestamp: base.Add(time.Duration(i/3) * time.Second)}))
	}
	for i := 0; i < len(seeded); i += 100 {
		insert(t, s, seeded[i:i+100]...)
	}

	// Meanwhile writers keep adding events of the same correlation, before and after the walk's
	// position (late arrivals and new ones).
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			ts := base.Add(time.Duration(i%3600) * time.Second)
			if i%2 == 1 {
				ts = time.Now().UTC()
			}
			e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-walk", EventTimestamp: ts})
			if _, _, err := s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{e}}); err != nil {
				t.Errorf("concurrent insert: %v", err)
				return
			}
		}
	}()

	for _, order := range []store.Order{store.Ascending, store.Descending} {
		seen := map[uuid.UUID]int{}
		var prev *store.Cursor
		var after *store.Cursor
		until := base.Add(time.Hour) // the walk covers the seeded window
		for pages := 0; ; pages++ {
			require.Less(t, pages, 1000)
			page, err := s.QueryEvents(ctx, store.QueryParams{
				Filter: store.Filter{CorrelationIDs: []string{"rr-walk"}, Until: &until},
				Order:  order, Limit: 37, After: after,
			})
			require.NoError(t, err)
			for _, e := range page.Events {
				seen[e.EventID]++
				cur := &store.Cursor{EventTimestamp: e.EventTimestamp, EventID: e.EventID}
				if prev != nil {
					less := prev.EventTimestamp.Before(cur.EventTimestamp) ||
						(prev.EventTimestamp.Equal(cur.EventTimestamp) && bytesLess(prev.EventID, cur.EventID))
					require.Equal(t, order == store.Ascending, less, "rows come in order")
				}
				prev = cur
			}
			if !page.HasMore {
				break
			}
			last := page.Events[len(page.Events)-1]
			after = &store.Cursor{EventTimestamp: last.EventTimestamp, EventID: last.EventID}
		}
		for _, e := range seeded {
			require.Equal(t, 1, seen[e.EventID], "seeded event %s seen exactly once", e.EventID)
		}
		for id, n := range seen {
			require.Equal(t, 1, n, "event %s seen %d times", id, n)
		}
	}
}

func bytesLess(a, b uuid.UUID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// TestQueryEvents_AcrossLeaves: queries that read partition by partition return exactly what
// one ordered scan of the table would, across months and retention classes, in both orders,
// with bounds, offsets and cursors; empty months and classes with no match change nothing.
func TestQueryEvents_AcrossLeaves(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	// Months from five back to three ahead exist for three classes; events live in five
	// months of two of them, the class of 365 days stays empty.
	_, err := s.CreatePartitions(ctx, now.AddDate(0, -5, 0), now.AddDate(0, 3, 0), []int{90, 365, 2557})
	require.NoError(t, err)
	var all []audit.Event
	for i := range 150 {
		class, actor := int64(2557), "gateway"
		if i%3 == 0 {
			class, actor = 90, "notification"
		}
		// Every third pair shares a timestamp, so the event_id tie-break counts.
		ts := now.Add(-time.Duration(i/2) * 23 * time.Hour).Truncate(time.Second)
		all = append(all, audittest.Event(t, &audittest.EventOpts{ActorID: actor, RetentionDays: class, EventTimestamp: ts,
			EventData: json.RawMessage(`{"version":"1.0","service":"` + actor + `","operation":"x","status":"success"}`)}))
	}
	for i := 0; i < len(all); i += 50 {
		insert(t, s, all[i:i+50]...)
	}
	sorted := func(f func(audit.Event) bool, order store.Order) []uuid.UUID {
		var out []audit.Event
		for _, e := range all {
			if f(e) {
				out = append(out, e)
			}
		}
		slices.SortFunc(out, func(a, b audit.Event) int {
			c := a.EventTimestamp.Compare(b.EventTimestamp)
			if c == 0 {
				c = bytes.Compare(a.EventID[:], b.EventID[:])
			}
			if order == store.Descending {
				c = -c
			}
			return c
		})
		return ids(out)
	}
	since, until := now.AddDate(0, -3, 0), now.AddDate(0, -1, 0)
	cases := []struct {
		name   string
		filter store.Filter
		match  func(audit.Event) bool
	}{
		{"everything", store.Filter{}, func(audit.Event) bool { return true }},
		{"one class's service", store.Filter{Data: json.RawMessage(`{"service":"notification"}`)}, func(e audit.Event) bool { return e.ActorID == "notification" }},
		{"the other class's actor", store.Filter{ActorIDs: []string{"gateway"}}, func(e audit.Event) bool { return e.ActorID == "gateway" }},
		{"no match", store.Filter{Data: json.RawMessage(`{"service":"nobody"}`)}, func(audit.Event) bool { return false }},
		{"bounded", store.Filter{Since: &since, Until: &until}, func(e audit.Event) bool {
			return !e.EventTimestamp.Before(since) && e.EventTimestamp.Before(until)
		}},
	}
	for _, tc := range cases {
		for _, order := range []store.Order{store.Ascending, store.Descending} {

			want := sorted(tc.match, order)
			page, err := s.QueryEvents(ctx, store.QueryParams{Filter: tc.filter, Order: order, Limit: 1000})
			require.NoError(t, err)
			require.Equal(t, want, ids(page.Events), "%s, order %d: one page", tc.name, order)
			require.False(t, page.HasMore)

			walked, offset := []uuid.UUID{}, []uuid.UUID{}
			var after *store.Cursor
			for pages := 0; ; pages++ {
				require.Less(t, pages, 100)
				page, err := s.QueryEvents(ctx, store.QueryParams{Filter: tc.filter, Order: order, Limit: 7, After: after})
				require.NoError(t, err)
				walked = append(walked, ids(page.Events)...)
				if !page.HasMore {
					break
				}
				last := page.Events[len(page.Events)-1]
				after = &store.Cursor{EventTimestamp: last.EventTimestamp, EventID: last.EventID}
			}
			require.Equal(t, want, walked, "%s, order %d: cursor walk", tc.name, order)
			for off := 0; ; off += 9 {
				page, err := s.QueryEvents(ctx, store.QueryParams{Filter: tc.filter, Order: order, Limit: 9, Offset: off})
				require.NoError(t, err)
				offset = append(offset, ids(page.Events)...)
				require.Equal(t, off+9 < len(want), page.HasMore)
				if !page.HasMore {
					break
				}
			}
			require.Equal(t, want, offset, "%s, order %d: offsets", tc.name, order)
		}
	}
}
