package maintain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var testConfig = lifecycle.Config{PremakeMonths: 3, LockTimeout: 2 * time.Second, IdempotencyWindow: 7 * 24 * time.Hour}

// TestMaintenance_TwoSimulatedYears runs maintenance every 10 days over two years of a
// simulated clock while events of three retention classes arrive, and a writer keeps writing
// in the present: partitions are always there ahead, nothing unexpired is ever deleted, every
// expired month goes within a month, held events survive until their hold is released.
func TestMaintenance_TwoSimulatedYears(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	ctx := context.Background()
	classes := []int{90, 365, 2557}
	svc := newService(pool, testConfig, classes, nil, nil, nil)
	realNow := time.Now().UTC()
	sim := realNow.AddDate(-2, 0, 0)
	svc.SetClock(func() time.Time { return sim })

	// A writer in the present, throughout.
	var stop atomic.Bool
	var writerErrors atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, _, err := s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{audittest.Event(t, &audittest.EventOpts{RetentionDays: 90})}}); err != nil {
				writerErrors.Add(1)
				t.Log(err)
			}
		}
	}()

	type tracked struct {
		e    audit.Event
		held bool
	}
	var events []tracked
	holdUntil := sim.AddDate(1, 6, 0)
	heldEvent := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-litigation", RetentionDays: 90, EventTimestamp: sim})
	neighbour := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-other", RetentionDays: 90, EventTimestamp: sim.Add(time.Minute)})
	_, _, err := s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{heldEvent, neighbour}})
	require.NoError(t, err)
	hold, err := s.PlaceHold(ctx, store.LegalHold{CorrelationID: &heldEvent.CorrelationID, Reason: "litigation", PlacedBy: "legal"})
	require.NoError(t, err)
	events = append(events, tracked{heldEvent, true}, tracked{neighbour, false})

	released := false
	goneAt := map[uuid.UUID]time.Time{} // the held event is exempt: it goes after its release
	for step := 0; sim.Before(realNow.AddDate(0, 0, -1)); step++ {
		var batch []audit.Event
		for _, days := range []int64{90, 365, 0} {
			e := audittest.Event(t, &audittest.EventOpts{RetentionDays: days, EventTimestamp: sim})
			batch = append(batch, e)
			events = append(events, tracked{e, false})
		}
		_, _, err := s.InsertEvents(ctx, store.InsertParams{Events: batch})
		require.NoError(t, err)
		if !released && sim.After(holdUntil) {
			_, err := s.ReleaseHold(ctx, hold.HoldID, "legal", "case closed")
			require.NoError(t, err)
			released = true
			events[0].held = false
		}

		rep, err := svc.Run(ctx)
		require.NoError(t, err, "step %d at %s", step, sim)
		require.GreaterOrEqual(t, rep.MonthsAhead, 3, "partitions ahead at %s", sim)

		for _, tr := range events {
			_, err := s.GetEvent(ctx, tr.e.EventID)
			expiry := tr.e.EventTimestamp.AddDate(0, 0, tr.e.RetentionDays)
			leafGone := lifecycle.Partition{Class: tr.e.RetentionDays, Month: lifecycle.MonthOf(tr.e.EventTimestamp)}.Expired(sim)
			switch {
			case tr.held:
				require.NoError(t, err, "held event %s survives at %s", tr.e.EventID, sim)
			case sim.Before(expiry):
				require.NoError(t, err, "unexpired event (expires %s) is kept at %s", expiry, sim)
			case leafGone:
				require.ErrorIs(t, err, store.ErrNotFound, "event expired %s is gone at %s", expiry, sim)
				if _, seen := goneAt[tr.e.EventID]; !seen && tr.e.EventID != heldEvent.EventID {
					goneAt[tr.e.EventID] = sim
					// Its month goes at most a month after its own expiry; runs come every 10 days.
					require.LessOrEqual(t, sim.Sub(expiry), (31+10)*24*time.Hour, "deleted within a month of expiry")
				}
			}
		}
		sim = sim.AddDate(0, 0, 10)
	}
	require.True(t, released)
	stop.Store(true)
	wg.Wait()
	require.Zero(t, writerErrors.Load(), "writers keep writing throughout")

	// The held event went once its hold was released.
	_, err = s.GetEvent(ctx, heldEvent.EventID)
	require.ErrorIs(t, err, store.ErrNotFound)
	// Every action was recorded as an audit event.
	page, err := s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypePrefixes: []string{"auditstore.partition."}}, Limit: 1000})
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, e := range page.Events {
		kinds[e.EventType]++
	}
	require.Positive(t, kinds["auditstore.partition.created"])
	require.Positive(t, kinds["auditstore.partition.dropped"])
	require.Positive(t, kinds["auditstore.partition.cleared"])
}

func TestMaintenance_ConcurrentRunsAndConvergence(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	ctx := context.Background()
	svc := newService(pool, testConfig, []int{90}, nil, nil, nil)
	now := time.Now().UTC()

	// An old month, expired: as if a run had stopped between DETACH and DROP, it is detached.
	old := audittest.Event(t, &audittest.EventOpts{RetentionDays: 90, EventTimestamp: now.AddDate(0, -8, 0)})
	_, _, err := s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{old}})
	require.NoError(t, err)
	leaf := store.LeafName(90, old.EventTimestamp)
	_, err = pool.Exec(ctx, fmt.Sprintf("ALTER TABLE audit_events_r90 DETACH PARTITION %s", leaf))
	require.NoError(t, err)

	// Two runs at once: one works, the other is told a run is in progress.
	held, err := store.New(pool).BeginMaintenance(ctx)
	require.NoError(t, err)
	_, err = svc.Run(ctx)
	require.ErrorIs(t, err, store.ErrLocked)
	held.End()

	rep, err := svc.Run(ctx)
	require.NoError(t, err)
	var dropped []string
	for _, a := range rep.Actions {
		if a.Kind == "partition.dropped" {
			dropped = append(dropped, a.Partition)
		}
	}
	require.Contains(t, dropped, leaf, "the half-removed partition is finished off")
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, leaf).Scan(&exists))
	require.False(t, exists)

	// A second run finds nothing left to do but keep going.
	rep, err = svc.Run(ctx)
	require.NoError(t, err)
	for _, a := range rep.Actions {
		require.NotEqual(t, "partition.dropped", a.Kind)
		require.NotEqual(t, "partition.created", a.Kind)
	}

	// A dry run reports and changes nothing.
	dry := newService(pool, lifecycle.Config{PremakeMonths: 12, LockTimeout: time.Second, IdempotencyWindow: time.Hour, DryRun: true}, []int{90}, nil, nil, nil)
	rep, err = dry.Run(ctx)
	require.NoError(t, err)
	require.True(t, rep.DryRun)
	require.NotEmpty(t, rep.Actions)
	parts, err := s.ListPartitions(ctx)
	require.NoError(t, err)
	for _, p := range parts {
		require.False(t, p.Month.After(now.AddDate(0, 4, 0)), "dry run created %s", p.Name)
	}
}

func TestLegalHoldAPI(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	svc := newService(pool, testConfig, []int{90}, nil, nil, nil)
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	do := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status, _ := do(http.MethodPost, "/api/v1/audit/legal-holds", `{"reason":""}`)
	require.Equal(t, http.StatusBadRequest, status)
	status, h := do(http.MethodPost, "/api/v1/audit/legal-holds", `{"correlation_id":"rr-9","reason":"subpoena 42"}`)
	require.Equal(t, http.StatusCreated, status)
	id := h["hold_id"].(string)
	status, list := do(http.MethodGet, "/api/v1/audit/legal-holds", "")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, list["data"], 1)
	status, _ = do(http.MethodDelete, "/api/v1/audit/legal-holds/"+id, `{}`)
	require.Equal(t, http.StatusBadRequest, status, "a release needs a reason")
	status, rel := do(http.MethodDelete, "/api/v1/audit/legal-holds/"+id, `{"reason":"closed"}`)
	require.Equal(t, http.StatusOK, status)
	require.NotNil(t, rel["released_at"])
	status, _ = do(http.MethodDelete, "/api/v1/audit/legal-holds/"+id, `{"reason":"again"}`)
	require.Equal(t, http.StatusNotFound, status)
	status, _ = do(http.MethodDelete, "/api/v1/audit/legal-holds/"+uuid.NewString()[:8], `{"reason":"x"}`)
	require.Equal(t, http.StatusBadRequest, status)

	// Placement and release are themselves audit events.
	page, err := store.New(pool).QueryEvents(context.Background(), store.QueryParams{Filter: store.Filter{CorrelationIDs: []string{id}}, Order: store.Ascending, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 2)
	require.Equal(t, "auditstore.legalhold.placed", page.Events[0].EventType)
	require.Equal(t, "auditstore.legalhold.released", page.Events[1].EventType)
}
