// Package failover_test kills the primary of a real primary + streaming replica pair under a
// write load through the write function, promotes the replica, and checks what was
// acknowledged, stored, sealed and verified; `go test ./test/failover -v` prints the figures.
package failover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/pgcluster"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/kelseyhightower/envconfig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func startPair(t *testing.T, sync bool) *pgcluster.Pair {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a primary and a replica of its own")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := pgcluster.StartPair(ctx, pgcluster.PairOptions{Synchronous: sync, Logf: t.Logf})
	if errors.Is(err, pgcluster.ErrNoServer) {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Stop()) })
	return p
}

// createDB makes a migrated database on the primary and waits until the replica has it.
func createDB(t *testing.T, p *pgcluster.Pair, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, _, err := p.Database(ctx, name, migrations.Up)
	require.NoError(t, err)
}

// memoryCopies keeps checkpoints outside the database, as CHECKPOINT_URL does.
type memoryCopies struct {
	mu  sync.Mutex
	cps []integrity.Checkpoint
}

func (m *memoryCopies) Put(_ context.Context, cp integrity.Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cps = append(m.cps, cp)
	return nil
}

func (m *memoryCopies) all() []integrity.Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.cps)
}

// service is the write function and a sealer over one database of the pair, reached through a
// two-host URL with target_session_attrs=read-write, as deployed.
type service struct {
	name     string
	url      string
	st       *store.Store
	srv      *httptest.Server
	sealer   *ledger.Sealer
	copies   *memoryCopies
	lagsMu   sync.Mutex
	lags     []time.Duration
	replicas store.Replicas

	mu       sync.Mutex
	acked    []uuid.UUID
	statuses map[int]int
	firstOK  time.Time // the first 201 after promotion
	promoted time.Time
}

func newService(t *testing.T, p *pgcluster.Pair, db string, replicas store.Replicas) *service {
	t.Helper()
	createDB(t, p, db)
	s := &service{name: db, replicas: replicas, statuses: map[int]int{}, copies: &memoryCopies{}}
	s.url = p.URLs(db, "target_session_attrs=read-write", "connect_timeout=2")
	ctx := context.Background()
	pool, err := store.Open(ctx, s.url, store.PoolOptions{MaxConns: 4, Writes: true})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s.st = store.New(pool)
	var cfg write.Config
	require.NoError(t, envconfig.Process("", &cfg))
	cfg.Timeout = 3 * time.Second
	h, err := write.New(s.st, cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	web.Health(mux, s.st.PingWritable)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() { s.srv.Close(); h.Close() })

	seals, err := store.Open(ctx, s.url, store.PoolOptions{MaxConns: 2, Writes: true})
	require.NoError(t, err)
	t.Cleanup(seals.Close)
	s.sealer = &ledger.Sealer{Store: store.New(seals), Replicas: replicas, Copies: s.copies, ReplicaWait: time.Second,
		Observe: func(d time.Duration) { s.lagsMu.Lock(); s.lags = append(s.lags, d); s.lagsMu.Unlock() }}
	return s
}

// post sends one event with its own id and records the answer.
func (s *service) post(client *http.Client) {
	id := uuid.New()
	body := fmt.Sprintf(`{"event_id":%q,"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-failover",`+
		`"event_data":{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}}`, id)
	resp, err := client.Post(s.srv.URL+"/api/v1/audit/events", "application/json", bytes.NewReader([]byte(body)))
	status := 0
	if err == nil {
		status = resp.StatusCode
		if status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			status = -503 // a 503 without Retry-After: counted apart
		}
		resp.Body.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses[status]++
	if status == http.StatusCreated {
		s.acked = append(s.acked, id)
		if !s.promoted.IsZero() && s.firstOK.IsZero() {
			s.firstOK = time.Now()
		}
	}
}

// sealEvery seals until ctx ends, as the maintain function does (at a test's pace).
func (s *service) sealEvery(ctx context.Context) {
	for ctx.Err() == nil {
		_, _ = s.sealer.SealAll(ctx) // failures while the primary is gone are retried
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// outcome is what a failover did to one service's events.
type outcome struct {
	acked, stored, lost, duplicated int
	statuses                        map[int]int
	firstOK                         time.Duration
	lagP50, lagP99                  time.Duration
	report                          ledger.Report
}

func (s *service) outcome(t *testing.T, p *pgcluster.Pair) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Replica.Port, s.name))
	require.NoError(t, err)
	defer conn.Close(ctx)
	s.mu.Lock()
	o := outcome{acked: len(s.acked), statuses: s.statuses}
	if !s.firstOK.IsZero() {
		o.firstOK = s.firstOK.Sub(s.promoted)
	}
	acked := slices.Clone(s.acked)
	s.mu.Unlock()
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(DISTINCT event_id) FROM audit_events WHERE event_id = ANY($1)`, acked).Scan(&o.stored))
	o.lost = o.acked - o.stored
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT event_id FROM audit_events GROUP BY event_id HAVING count(*) > 1) d`).Scan(&o.duplicated))
	// The new primary seals what it has; then the log is verified against every copy.
	_, err = s.sealer.SealAll(ctx)
	require.NoError(t, err)
	o.report, err = ledger.Verify(ctx, s.sealer.Store, ledger.VerifyOptions{External: s.copies.all()})
	require.NoError(t, err)
	s.lagsMu.Lock()
	lags := slices.Clone(s.lags)
	s.lagsMu.Unlock()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	if len(lags) > 0 {
		o.lagP50, o.lagP99 = lags[len(lags)/2], lags[len(lags)*99/100]
	}
	return o
}

// requireSound holds what every failover must keep: nothing stored twice, no answer but 201 and
// 503 with Retry-After, and writes going on on the promoted replica.
func (o outcome) requireSound(t *testing.T) {
	t.Helper()
	require.Zero(t, o.duplicated)
	for status := range o.statuses {
		require.Contains(t, []int{http.StatusCreated, http.StatusServiceUnavailable}, status, "statuses %v", o.statuses)
	}
	require.NotZero(t, o.firstOK, "writes go on on the promoted replica")
}

func (o outcome) String() string {
	kinds := map[string]int{}
	for _, p := range o.report.Problems {
		kinds[p.Kind]++
	}
	return fmt.Sprintf("acknowledged %d, stored %d, lost %d, duplicated %d, statuses %v, promotion → first 201 %s, seal lag p50 %s p99 %s, verify problems %v",
		o.acked, o.stored, o.lost, o.duplicated, o.statuses, o.firstOK.Round(time.Millisecond), o.lagP50.Round(time.Millisecond), o.lagP99.Round(time.Millisecond), kinds)
}

// failover runs a paced write load on every service, makes the primary fail (stall, when
// set, first stops its WAL sender so the replica falls behind), promotes the replica, and
// goes on until every service has had a 201 from the new primary.
func failover(t *testing.T, p *pgcluster.Pair, stall bool, services ...*service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var stop atomic.Bool
	client := &http.Client{Timeout: 10 * time.Second}
	for _, s := range services {
		wg.Add(1)
		go func() { defer wg.Done(); s.sealEvery(ctx) }()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					s.post(client)
					time.Sleep(8 * time.Millisecond) // about 400 events/s a service
				}
			}()
		}
	}
	time.Sleep(3 * time.Second)
	if stall {
		_, err := p.StallReplication(ctx)
		require.NoError(t, err)
		time.Sleep(2 * time.Second)
	}
	require.NoError(t, p.Primary.Kill())
	time.Sleep(500 * time.Millisecond) // as long as a failover manager takes to decide, at least
	require.NoError(t, p.Replica.Promote(ctx))
	promoted := time.Now()
	for _, s := range services {
		s.mu.Lock()
		s.promoted = promoted
		s.mu.Unlock()
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range services {
		for time.Now().Before(deadline) {
			s.mu.Lock()
			ok := !s.firstOK.IsZero()
			s.mu.Unlock()
			if ok {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	stop.Store(true)
	cancel()
	wg.Wait()
}

// TestFailover_Synchronous: with a synchronous standby, killing the primary under load loses no
// acknowledged event, duplicates none, answers nothing but 201 and 503 with Retry-After, and
// leaves a log that every checkpoint copy agrees with.
func TestFailover_Synchronous(t *testing.T) {
	t.Parallel()
	p := startPair(t, true)
	aware := newService(t, p, "aware", store.ReplicasSync)
	plain := newService(t, p, "plain", store.ReplicasNone)
	failover(t, p, false, aware, plain)
	for _, s := range []*service{aware, plain} {
		o := s.outcome(t, p)
		t.Logf("synchronous, sealing %s: %s", s.replicas, o)
		require.NotZero(t, o.acked)
		require.Zero(t, o.lost, "acknowledged events lost")
		o.requireSound(t)
		require.True(t, o.report.OK, "%+v", o.report.Problems)
	}
}

// TestFailover_AsyncStalled: with an asynchronous standby left behind (its WAL sender stalled)
// the failover loses acknowledged events, as asynchronous replication does; verify reports
// every sealed one that was lost as a fork, never as a modified or altered leaf.
func TestFailover_AsyncStalled(t *testing.T) {
	t.Parallel()
	p := startPair(t, false)
	def := newService(t, p, "default", store.ReplicasSync) // no synchronous standby: no wait
	all := newService(t, p, "all", store.ReplicasAll)
	failover(t, p, true, def, all)
	for _, s := range []*service{def, all} {
		o := s.outcome(t, p)
		t.Logf("asynchronous, WAL sender stalled, sealing %s: %s", s.replicas, o)
		o.requireSound(t)
		for _, pr := range o.report.Problems {
			require.Equal(t, ledger.ProblemFork, pr.Kind, "a lost event is a fork, never tampering: %s", pr.Detail)
		}
		if s == all {
			require.True(t, o.report.OK, "waiting for every standby, nothing lost was sealed: %+v", o.report.Problems)
		}
		if s == def && o.lost > 0 && len(o.report.Problems) > 0 {
			t.Logf("verify: %s", o.report.Problems[0].Detail)
		}
	}
}

// TestFailover_ReadOnlyTargets: a write function pointed at the replica answers 503 with
// Retry-After (and reads 200); one whose primary is demoted leaves it for the new primary.
func TestFailover_ReadOnlyTargets(t *testing.T) {
	t.Parallel()
	p := startPair(t, false)
	createDB(t, p, "app")
	ctx := context.Background()
	replicaURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/app?sslmode=disable", p.Replica.Port)
	onReplica := handlers(t, replicaURL)
	status, retry := postEvent(t, onReplica)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.NotEmpty(t, retry)
	resp, err := http.Get(onReplica.URL + "/api/v1/audit/events?correlation_id=rr-ro")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "reads are served by a replica")
	resp, err = http.Get(onReplica.URL + "/health/readiness")
	require.NoError(t, err)
	var ready map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ready))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "a read-only database leaves the function in rotation, answering 503 itself")
	require.Equal(t, "read-only", ready["database"])

	// Both hosts, read-write: the primary takes the writes. Then the replica is promoted and
	// the old primary demoted (read-only): the pool must leave it for the new one.
	both := handlers(t, p.URLs("app", "target_session_attrs=read-write", "connect_timeout=2"))
	status, _ = postEvent(t, both)
	require.Equal(t, http.StatusCreated, status)
	require.NoError(t, p.Replica.Promote(ctx))
	require.NoError(t, p.Primary.ReadOnly(ctx))
	// A backend applies a configuration reload only between commands, so a pooled connection
	// idle on the old primary runs its next transaction as read-write: a write may still land
	// there (demotion by configuration is no fence; a real failover stops the old primary). So
	// the pool has left when a write is seen on the new primary, and every refusal was a 503.
	var statuses []int
	onNew := 0
	for range 20 {
		status, _ := postEvent(t, both)
		statuses = append(statuses, status)
		require.Contains(t, []int{http.StatusCreated, http.StatusServiceUnavailable}, status, "a demoted primary's refusals are 503: %v", statuses)
		if status != http.StatusCreated {
			continue
		}
		require.NoError(t, p.Replica.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' AND application_name = ''`, &onNew))
		if onNew > 0 {
			break
		}
	}
	require.NotZero(t, onNew, "writes move to the new primary and the pool's connections with them: %v", statuses)
	created := 0
	for _, s := range statuses {
		if s == http.StatusCreated {
			created++
		}
	}
	require.LessOrEqual(t, created, 3, "at most one stale write per pooled connection (2) before the move: %v", statuses)
}

// handlers serves the write and query functions (no auth) over one pool on dbURL.
func handlers(t *testing.T, dbURL string) *httptest.Server {
	t.Helper()
	pool, err := store.Open(context.Background(), dbURL, store.PoolOptions{MaxConns: 2, Writes: true})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st := store.New(pool)
	var wcfg write.Config
	require.NoError(t, envconfig.Process("", &wcfg))
	var qcfg query.Config
	require.NoError(t, envconfig.Process("", &qcfg))
	qcfg.AuditReads = false
	wh, err := write.New(st, wcfg, prometheus.NewRegistry())
	require.NoError(t, err)
	qh, err := query.New(st, qcfg, prometheus.NewRegistry())
	require.NoError(t, err)
	mux := http.NewServeMux()
	wh.Routes(mux)
	qh.Routes(mux)
	web.Health(mux, func(ctx context.Context) error { return function.DatabaseState(st.PingWritable(ctx)) })
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); wh.Close(); qh.Close() })
	return srv
}

func postEvent(t *testing.T, srv *httptest.Server) (int, string) {
	t.Helper()
	body := `{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-ro",` +
		`"event_data":{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}}`
	resp, err := http.Post(srv.URL+"/api/v1/audit/events", "application/json", bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}
