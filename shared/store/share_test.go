package store_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// namespaced returns n events of namespace ns (none when ns is ""), one every step back from
// from, in retention class class.
func namespaced(t *testing.T, ns string, n int, from time.Time, step time.Duration, class int64) []audit.Event {
	t.Helper()
	out := make([]audit.Event, n)
	for i := range out {
		e := audittest.Event(t, &audittest.EventOpts{EventTimestamp: from.Add(-time.Duration(i) * step), RetentionDays: class,
			CorrelationID: fmt.Sprintf("rr-%s-%d", ns, i/10), ActorID: "svc-" + ns})
		e.Namespace = nil
		if ns != "" {
			e.Namespace = &ns
		}
		out[i] = e
	}
	return out
}

// TestScopeShare: a scope's share of the events comes from the leaves' planner statistics,
// weighted by their rows; without statistics there is nothing to scale by.
func TestScopeShare(t *testing.T) {
	t.Parallel()
	_, pool := setup(t)
	ctx := context.Background()
	now := time.Now().UTC()
	s := store.New(pool)
	var events []audit.Event
	events = append(events, namespaced(t, "payments", 300, now, time.Second, 2557)...)
	events = append(events, namespaced(t, "checkout", 100, now, time.Second, 90)...)
	events = append(events, namespaced(t, "search", 60, now, time.Second, 2557)...)
	events = append(events, namespaced(t, "", 40, now, time.Second, 2557)...)
	insert(t, s, events...)
	require.Equal(t, 1.0, s.ScopeShare(ctx, []string{"checkout"}), "not analyzed yet")

	_, err := pool.Exec(ctx, `ANALYZE audit_events`)
	require.NoError(t, err)
	s = store.New(pool) // the first one keeps what it read for a while
	require.InDelta(t, 0.8, s.ScopeShare(ctx, []string{"payments", "checkout"}), 0.001)
	require.InDelta(t, 0.2, s.ScopeShare(ctx, []string{"checkout"}), 0.001, "a class of its own")
	require.InDelta(t, 1.0/32, s.ScopeShare(ctx, []string{"nobody"}), 0.001, "no rows: the widest first window")
	require.InDelta(t, 0.92, s.ScopeShare(ctx, []string{"payments", "checkout", "search", "nobody"}), 0.001, "every event with a namespace")
}

// TestQueryEvents_ScopedAcrossLeaves: a reader of some namespaces reads exactly the events of
// those namespaces, in order, across months and classes, whatever the first window its
// scope's share makes: in one page, by cursor and by offset, with one namespace, a few (one
// statement branch each) and more than are split.
func TestQueryEvents_ScopedAcrossLeaves(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	_, err := s.CreatePartitions(ctx, now.AddDate(0, -4, 0), now.AddDate(0, 2, 0), []int{90, 2557})
	require.NoError(t, err)
	var all []audit.Event
	all = append(all, namespaced(t, "production", 120, now, 19*time.Hour, 2557)...)
	all = append(all, namespaced(t, "payments", 40, now, 37*time.Hour, 2557)...)
	all = append(all, namespaced(t, "checkout", 12, now.Add(-time.Hour), 5*24*time.Hour, 90)...)
	all = append(all, namespaced(t, "", 30, now, 2*24*time.Hour, 2557)...)
	for _, ns := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} {
		all = append(all, namespaced(t, ns, 2, now.Add(-3*time.Hour), 30*24*time.Hour, 2557)...)
	}
	for i := 0; i < len(all); i += 50 {
		insert(t, s, all[i:min(i+50, len(all))]...)
	}
	_, err = pool.Exec(ctx, `ANALYZE audit_events`)
	require.NoError(t, err)

	want := func(scope []string, order store.Order) []uuid.UUID {
		var out []audit.Event
		for _, e := range all {
			if e.Namespace != nil && slices.Contains(scope, *e.Namespace) {
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
	for _, scope := range [][]string{
		{"checkout"},
		{"payments", "checkout"},
		{"checkout", "payments", "checkout"},
		{"a", "b", "c", "d", "e", "f", "g", "h", "i", "checkout"},
		{"nobody"},
	} {
		require.Greater(t, s.ScopeShare(ctx, scope), 0.0)
		for _, order := range []store.Order{store.Ascending, store.Descending} {
			f := store.Filter{Scoped: true, InNamespaces: scope}
			expect := want(scope, order)
			page, err := s.QueryEvents(ctx, store.QueryParams{Filter: f, Order: order, Limit: 1000})
			require.NoError(t, err)
			require.Equal(t, expect, ids(page.Events), "%v, order %d: one page", scope, order)

			walked := []uuid.UUID{}
			var after *store.Cursor
			for pages := 0; ; pages++ {
				require.Less(t, pages, 100)
				page, err := s.QueryEvents(ctx, store.QueryParams{Filter: f, Order: order, Limit: 3, After: after})
				require.NoError(t, err)
				walked = append(walked, ids(page.Events)...)
				if !page.HasMore {
					break
				}
				last := page.Events[len(page.Events)-1]
				after = &store.Cursor{EventTimestamp: last.EventTimestamp, EventID: last.EventID}
			}
			require.Equal(t, expect, walked, "%v, order %d: cursor walk", scope, order)

			page, err = s.QueryEvents(ctx, store.QueryParams{Filter: f, Order: order, Limit: 5, Offset: 4})
			require.NoError(t, err)
			require.Equal(t, expect[min(4, len(expect)):min(9, len(expect))], ids(page.Events), "%v, order %d: offset", scope, order)

			n, err := s.CountEvents(ctx, f)
			require.NoError(t, err)
			require.EqualValues(t, len(expect), n, "%v: count", scope)
		}
	}
}
