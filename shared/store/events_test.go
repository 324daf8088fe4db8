package store_test

import (
	"context"
	"encoding/json"
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
