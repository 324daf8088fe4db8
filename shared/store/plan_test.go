package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// planCapture is a one-connection pool whose server sends the plan of every statement it
// runs back as a notice (auto_explain), so a test sees the plans the store really gets.
type planCapture struct {
	pool  *pgxpool.Pool
	mu    sync.Mutex
	plans []string
}

func newPlanCapture(t *testing.T) *planCapture {
	t.Helper()
	pc := &planCapture{}
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t, pgtest.Options{}))
	require.NoError(t, err)
	cfg.MaxConns = 1
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		pc.mu.Lock()
		pc.plans = append(pc.plans, n.Message)
		pc.mu.Unlock()
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, `LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = notice`)
		return err
	}
	pc.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil || pc.pool.Ping(context.Background()) != nil {
		t.Skipf("auto_explain is not available: %v", err)
	}
	t.Cleanup(pc.pool.Close)
	return pc
}

func (pc *planCapture) last(t *testing.T, contains string) string {
	t.Helper()
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for i := len(pc.plans) - 1; i >= 0; i-- {
		if strings.Contains(pc.plans[i], contains) {
			return pc.plans[i]
		}
	}
	t.Fatalf("no plan mentions %q", contains)
	return ""
}

// TestQueryEvents_PlannedWithActualValues guards against the generic-plan trap: pgx's statement
// cache makes PostgreSQL switch a prepared statement to a generic plan after five runs, and a
// jsonpath range query then read the whole GIN index (3.5 ms became 1.9 s). Every run, also the
// sixth and later, must be planned with its values.
func TestQueryEvents_PlannedWithActualValues(t *testing.T) {
	t.Parallel()
	pc := newPlanCapture(t)
	s := store.New(pc.pool)
	ctx := context.Background()
	insert(t, s, audittest.Event(t, nil))

	for i := range 7 {
		_, err := s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{DataPath: `$.payload.risk_score > 95`}, Limit: 100})
		require.NoError(t, err)
		plan := pc.last(t, "risk_score")
		filters := 0
		for _, line := range strings.Split(plan, "\n") {
			if strings.Contains(line, "Filter:") || strings.Contains(line, "Cond:") {
				filters++
				// A generic plan would show the parameter ($1) where the path belongs.
				require.Contains(t, line, `"risk_score" > 95)'::jsonpath`, "run %d was not planned with its value:\n%s", i+1, plan)
			}
		}
		require.NotZero(t, filters, plan)
	}
	// Planning with the values every time means the statement is never a named, cached one:
	// PostgreSQL may switch those to a generic plan from the sixth run on, whatever this small
	// table's plans looked like above.
	var prepared int
	require.NoError(t, pc.pool.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%event_data @@%' AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&prepared))
	require.Zero(t, prepared, "the jsonpath query must not be a cached prepared statement")
}

// TestQueryEvents_SincePrunesPartitions shows that a time bound touches only the months it
// needs.
func TestQueryEvents_SincePrunesPartitions(t *testing.T) {
	t.Parallel()
	pc := newPlanCapture(t)
	s := store.New(pc.pool)
	ctx := context.Background()
	now := time.Now().UTC()
	// Months back and ahead exist for two classes.
	_, err := s.CreatePartitions(ctx, now.AddDate(0, -3, 0), now.AddDate(0, 3, 0), []int{90, 2557})
	require.NoError(t, err)
	insert(t, s, audittest.Event(t, nil))

	since := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	until := since.AddDate(0, 1, 0)
	for range 7 {
		_, err = s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{ActorIDs: []string{"gateway"}, Since: &since, Until: &until}, Limit: 10})
		require.NoError(t, err)
	}
	plan := pc.last(t, "actor_id")
	month := now.Format("2006_01")
	for _, line := range strings.Split(plan, "\n") {
		if i := strings.Index(line, " on audit_events_r"); i >= 0 {
			require.Contains(t, line, "_"+month, "only this month's leaves are read:\n%s", plan)
		}
	}
	require.Contains(t, plan, "audit_events_r2557_"+month)
	require.NotContains(t, plan, "audit_events_r2557_"+now.AddDate(0, -1, 0).Format("2006_01"))
}

// TestQueryEvents_TimelineReusesItsPlan: a correlation timeline has nothing skewed, so it
// keeps a cached prepared statement (no planning across every partition each time), while a
// timeline with a JSON filter does not.
func TestQueryEvents_TimelineReusesItsPlan(t *testing.T) {
	t.Parallel()
	pc := newPlanCapture(t)
	s := store.New(pc.pool)
	ctx := context.Background()
	e := audittest.Event(t, nil)
	insert(t, s, e)
	for range 3 {
		page, err := s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{CorrelationIDs: []string{e.CorrelationID}}, Order: store.Ascending, Limit: 10})
		require.NoError(t, err)
		require.Len(t, page.Events, 1)
		_, err = s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{CorrelationIDs: []string{e.CorrelationID}, DataPath: `$.payload.retries > 100`}, Order: store.Ascending, Limit: 10})
		require.NoError(t, err)
	}
	var timeline, withJSON int
	require.NoError(t, pc.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE statement NOT LIKE '%@@%'), count(*) FILTER (WHERE statement LIKE '%@@%')
		FROM pg_prepared_statements WHERE statement LIKE '%correlation_id = $1%' AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&timeline, &withJSON))
	require.Equal(t, 1, timeline, "the plain timeline is one cached statement")
	require.Zero(t, withJSON, "a timeline with a JSON filter is planned with its values")
}
