// Package replica_test serves the query function from a real hot standby (made by
// pg_basebackup) and its primary: which reads the replica answers while its replay is paused,
// the lag it reports, the fallback to the primary when it stops, and a 503 when neither
// answers. `go test ./test/replica -run Latency -v` prints the latency of reads served by the
// replica and by the primary in the same run.
package replica_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgcluster"
	"github.com/google/uuid"
	"github.com/kelseyhightower/envconfig"
	"github.com/stretchr/testify/require"
)

// fixture is a primary and its hot standby with a migrated database, and a writer on the
// primary.
type fixture struct {
	pair                   *pgcluster.Pair
	primaryURL, replicaURL string
	writer                 *store.Store
}

func setup(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a primary and a replica of its own")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p, err := pgcluster.StartPair(ctx, pgcluster.PairOptions{Logf: t.Logf})
	if errors.Is(err, pgcluster.ErrNoServer) {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Stop()) })
	f := &fixture{pair: p}
	f.primaryURL, f.replicaURL, err = p.Database(ctx, "auditstore", migrations.Up)
	require.NoError(t, err)
	pool, err := store.Open(ctx, f.primaryURL, store.PoolOptions{MaxConns: 4, Writes: true})
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	f.writer = store.New(pool)
	return f
}

// insert stores events on the primary.
func (f *fixture) insert(t *testing.T, events ...audit.Event) {
	t.Helper()
	_, _, err := f.writer.InsertEvents(t.Context(), store.InsertParams{Events: events})
	require.NoError(t, err)
}

// server is the query function as its command wires it, over the pair (replica: with
// QUERY_DATABASE_URL naming the replica).
type server struct {
	url string
	// close stops the handler, writing the read records it buffers.
	close func()
}

func (f *fixture) serve(t *testing.T, replica bool, change func(*query.Config)) *server {
	t.Helper()
	var cfg struct {
		function.Config
		Query query.Config
	}
	require.NoError(t, envconfig.Process("", &cfg.Query), "the query function's defaults")
	require.NoError(t, envconfig.Process("", &cfg.Auth))
	cfg.DatabaseURL, cfg.Auth.Mode, cfg.Query.CursorSecret = f.primaryURL, "none", "test"
	if replica {
		cfg.Query.DatabaseURL = f.replicaURL
	}
	if change != nil {
		change(&cfg.Query)
	}
	ctx := t.Context()
	srv, err := function.NewServer(cfg.Config)
	require.NoError(t, err)
	primary, closePrimary, err := function.OpenStore(ctx, cfg.DatabaseURL, cfg.Query.PoolOptions(4))
	require.NoError(t, err)
	opts, ready, closeReplica, err := query.OpenReplica(ctx, cfg.DatabaseURL, cfg.Query, 4, primary)
	require.NoError(t, err)
	h, err := query.Open(srv, primary, primary, nil, cfg.Query, opts...)
	require.NoError(t, err)
	hs := httptest.NewServer(function.Mux(ready, srv.Registry, h.Routes))
	var once sync.Once
	s := &server{url: hs.URL, close: func() { once.Do(h.Close) }}
	t.Cleanup(func() { hs.Close(); s.close(); closeReplica(); closePrimary() })
	return s
}

// answer is one response: its status, the replica lag it reports ("" when the primary
// answered) and its body.
type answer struct {
	status int
	lag    string
	retry  string
	body   []byte
}

func (s *server) get(t *testing.T, path string) answer {
	t.Helper()
	resp, err := http.Get(s.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, lag: resp.Header.Get(query.ReplicaLagHeader), retry: resp.Header.Get("Retry-After"), body: b}
}

// ids are the event ids of a query's answer, or of an export's lines.
func (a answer) ids(t *testing.T) []uuid.UUID {
	t.Helper()
	require.Equal(t, http.StatusOK, a.status, "%s", a.body)
	var events []audit.Event
	if strings.HasPrefix(string(a.body), `{"data"`) {
		var body struct{ Data []audit.Event }
		require.NoError(t, json.Unmarshal(a.body, &body))
		events = body.Data
	} else {
		sc := bufio.NewScanner(strings.NewReader(string(a.body)))
		for sc.Scan() {
			var e audit.Event
			require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
			events = append(events, e)
		}
	}
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.EventID
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

// metric reads a gauge or counter (name with its labels, as exposed) from /metrics; -1 when
// it is not there.
func (s *server) metric(t *testing.T, name string) float64 {
	t.Helper()
	a := s.get(t, "/metrics")
	for _, line := range strings.Split(string(a.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return -1
}

// await polls until cond holds; what it waits for is named when it never does.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "waited 30s for %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}

func sorted(ids ...uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// TestReplicaReads: with replay paused the replica answers with its older state while a get
// of the new event, a timeline and a recent window go to the primary; the lag metric moves and
// beyond QUERY_MAX_REPLICA_LAG queries go to the primary; reads are recorded on the primary; a
// stopped replica leaves every read to the primary; with both stopped reads are 503.
func TestReplicaReads(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	old := audittest.Event(t, &audittest.EventOpts{EventType: "gateway.signal.received", CorrelationID: "rr-old"})
	f.insert(t, old)
	require.NoError(t, f.pair.WaitReplayed(ctx))

	// lenient lets the replica answer at any lag; strict only when it has replayed everything.
	lenient := f.serve(t, true, func(c *query.Config) { c.MaxReplicaLag = time.Hour; c.ReplicaWait = 20 * time.Millisecond })
	strict := f.serve(t, true, func(c *query.Config) { c.MaxReplicaLag = time.Millisecond })
	for _, s := range []*server{lenient, strict} {
		await(t, "the replica measured caught up", func() bool { return s.metric(t, "audit_query_replica_lag_seconds") == 0 })
	}

	resume, err := f.pair.PauseReplay(ctx)
	require.NoError(t, err)
	fresh := audittest.Event(t, &audittest.EventOpts{EventType: "gateway.signal.received", CorrelationID: "rr-new"})
	f.insert(t, fresh)

	t.Run("the replica answers with what it replayed", func(t *testing.T) {
		a := lenient.get(t, "/api/v1/audit/events?event_type=gateway.signal.received")
		require.Equal(t, []uuid.UUID{old.EventID}, a.ids(t), "the paused replica has not replayed the new event (lag %q)", a.lag)
		require.NotEmpty(t, a.lag, "an answer of the replica says how stale it may be")
		a = lenient.get(t, "/api/v1/audit/export?event_type=gateway.signal.received")
		require.Equal(t, []uuid.UUID{old.EventID}, a.ids(t))
		require.NotEmpty(t, a.lag)
		a = lenient.get(t, "/api/v1/audit/events/"+old.EventID.String())
		require.Equal(t, http.StatusOK, a.status)
		require.NotEmpty(t, a.lag)
	})
	t.Run("what it has not replayed comes from the primary", func(t *testing.T) {
		a := lenient.get(t, "/api/v1/audit/events/"+fresh.EventID.String())
		require.Equal(t, http.StatusOK, a.status, "a get the replica misses asks the primary before a 404: %s", a.body)
		require.Empty(t, a.lag)
		require.Equal(t, http.StatusNotFound, lenient.get(t, "/api/v1/audit/events/"+uuid.NewString()).status)

		a = lenient.get(t, "/api/v1/audit/events?correlation_id=rr-new")
		require.Equal(t, []uuid.UUID{fresh.EventID}, a.ids(t), "a timeline sees every acknowledged write")
		require.Empty(t, a.lag)
		a = lenient.get(t, "/api/v1/audit/events?event_type=gateway.signal.received&since=30s")
		require.Equal(t, sorted(old.EventID, fresh.EventID), a.ids(t), "so does a window of the last minute")
		require.Empty(t, a.lag)
	})
	t.Run("the lag metric moves, and beyond the maximum queries go to the primary", func(t *testing.T) {
		await(t, "a lag above 1 ms", func() bool { return strict.metric(t, "audit_query_replica_lag_seconds") > 0.001 })
		a := strict.get(t, "/api/v1/audit/events?event_type=gateway.signal.received")
		require.Equal(t, sorted(old.EventID, fresh.EventID), a.ids(t))
		require.Empty(t, a.lag)
		require.Greater(t, lenient.metric(t, "audit_query_replica_lag_seconds"), 0.0)
	})

	require.NoError(t, resume(ctx))
	require.NoError(t, f.pair.WaitReplayed(ctx))
	t.Run("caught up, the replica answers everything", func(t *testing.T) {
		await(t, "the lag back at 0", func() bool { return lenient.metric(t, "audit_query_replica_lag_seconds") == 0 })
		a := lenient.get(t, "/api/v1/audit/events?event_type=gateway.signal.received")
		require.Equal(t, sorted(old.EventID, fresh.EventID), a.ids(t))
		require.NotEmpty(t, a.lag)
		require.Greater(t, lenient.metric(t, `audit_query_reads_total{database="replica"}`), 0.0)
		require.Greater(t, lenient.metric(t, `audit_query_reads_total{database="primary"}`), 0.0)
	})
	t.Run("reads are recorded on the primary", func(t *testing.T) {
		lenient.close()
		page, err := f.writer.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.query.executed"}}, Limit: 1000})
		require.NoError(t, err)
		require.NotEmpty(t, page.Events)
		require.Equal(t, 0.0, lenient.metric(t, "audit_read_records_dropped_total"))
	})
	t.Run("a stopped replica leaves the reads to the primary", func(t *testing.T) {
		require.NoError(t, f.pair.Replica.Kill())
		for _, path := range []string{"/api/v1/audit/events?event_type=gateway.signal.received", "/api/v1/audit/export?event_type=gateway.signal.received"} {
			a := strict.get(t, path)
			require.Equal(t, sorted(old.EventID, fresh.EventID), a.ids(t))
			require.Empty(t, a.lag)
		}
		a := strict.get(t, "/api/v1/audit/events/"+old.EventID.String())
		require.Equal(t, http.StatusOK, a.status)
		require.Equal(t, http.StatusOK, strict.get(t, "/health/readiness").status)
		await(t, "the replica reported down", func() bool { return strict.metric(t, "audit_query_replica_up") == 0 })
	})
	t.Run("with neither, 503 and Retry-After", func(t *testing.T) {
		require.NoError(t, f.pair.Primary.Kill())
		for _, path := range []string{"/api/v1/audit/events?event_type=gateway.signal.received", "/api/v1/audit/events/" + old.EventID.String(), "/api/v1/audit/export"} {
			a := strict.get(t, path)
			require.Equal(t, http.StatusServiceUnavailable, a.status, "%s: %s", path, a.body)
			require.NotEmpty(t, a.retry)
		}
		// The process still serves: it stays in rotation and answers 503 itself (readiness
		// names the database's state instead of taking the instance out).
		r := strict.get(t, "/health/readiness")
		require.Equal(t, http.StatusOK, r.status)
		require.Contains(t, string(r.body), `"database":"unavailable"`)
	})
}

// TestReplicaPrimaryDown: with the primary stopped the replica still answers, saying how
// stale it may be, and a get it has no event for is a 503 (the primary may hold it), not a 404.
func TestReplicaPrimaryDown(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-1"})
	f.insert(t, e)
	require.NoError(t, f.pair.WaitReplayed(ctx))
	s := f.serve(t, true, nil)
	await(t, "the replica's first measurement", func() bool { return s.metric(t, "audit_query_replica_up") == 1 })

	require.NoError(t, f.pair.Primary.Kill())
	for _, path := range []string{"/api/v1/audit/events?correlation_id=rr-1", "/api/v1/audit/events/" + e.EventID.String()} {
		a := s.get(t, path)
		require.Equal(t, http.StatusOK, a.status, "%s: %s", path, a.body)
		require.NotEmpty(t, a.lag, path)
	}
	a := s.get(t, "/api/v1/audit/events/"+uuid.NewString())
	require.Equal(t, http.StatusServiceUnavailable, a.status, "%s", a.body)
	require.NotEmpty(t, a.retry)
	require.Equal(t, http.StatusOK, s.get(t, "/health/readiness").status, "one database answering is enough to read")
}

// TestReplicaLatency measures timelines and gets by id answered through the replica and by the
// primary alone, in the same run, under a steady write load on the primary, and the lag the
// replica reported meanwhile. It checks only that every answer is whole; the figures are
// logged (-v).
func TestReplicaLatency(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := t.Context()
	const correlations, perCorrelation, rounds = 200, 10, 400
	var events []audit.Event
	for c := range correlations {
		for range perCorrelation {
			events = append(events, audittest.Event(t, &audittest.EventOpts{CorrelationID: fmt.Sprintf("rr-%d", c)}))
		}
	}
	f.insert(t, events...)
	require.NoError(t, f.pair.WaitReplayed(ctx))
	viaReplica := f.serve(t, true, func(c *query.Config) { c.AuditReads = false })
	primaryOnly := f.serve(t, false, func(c *query.Config) { c.AuditReads = false })
	await(t, "the replica measured", func() bool { return viaReplica.metric(t, "audit_query_replica_up") == 1 })

	// The write load: 10 events every 10 ms.
	load, stop := context.WithCancel(ctx)
	var writes sync.WaitGroup
	writes.Go(func() {
		for load.Err() == nil {
			batch := make([]audit.Event, 10)
			for i := range batch {
				batch[i] = audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-load"})
			}
			_, _, _ = f.writer.InsertEvents(load, store.InsertParams{Events: batch})
			time.Sleep(10 * time.Millisecond)
		}
	})
	var lags []float64
	measure := func(s *server, path func(i int) string) (p50, p99 time.Duration, fromReplica int) {
		var took []time.Duration
		for i := range rounds {
			begin := time.Now()
			a := s.get(t, path(i))
			took = append(took, time.Since(begin))
			require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			if a.lag != "" {
				fromReplica++
			}
			if i%50 == 0 {
				lags = append(lags, viaReplica.metric(t, "audit_query_replica_lag_seconds"))
			}
		}
		slices.Sort(took)
		return took[len(took)/2], took[len(took)*99/100], fromReplica
	}
	timeline := func(i int) string { return fmt.Sprintf("/api/v1/audit/events?correlation_id=rr-%d", i%correlations) }
	get := func(i int) string { return "/api/v1/audit/events/" + events[(i*7919)%len(events)].EventID.String() }
	for _, c := range []struct {
		name string
		s    *server
		path func(int) string
	}{{"timeline via replica", viaReplica, timeline}, {"timeline primary only", primaryOnly, timeline},
		{"get via replica", viaReplica, get}, {"get primary only", primaryOnly, get}} {
		p50, p99, n := measure(c.s, c.path)
		t.Logf("%-22s p50 %6.2f ms  p99 %6.2f ms  answered by the replica %d of %d", c.name,
			float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, n, rounds)
	}
	stop()
	writes.Wait()
	slices.Sort(lags)
	t.Logf("replica lag reported meanwhile (audit_query_replica_lag_seconds, %d samples): min %.3f s, median %.3f s, max %.3f s",
		len(lags), lags[0], lags[len(lags)/2], lags[len(lags)-1])
}
