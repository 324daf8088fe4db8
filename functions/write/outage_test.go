package write_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/pgcluster"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestWrite_DatabaseOutage stops PostgreSQL under a steady write load and starts it again: the
// function answers 503 with Retry-After while the database is gone (never a 2xx for an event
// it could not commit), stays ready while its readiness names the database unavailable (so the
// 503s reach the callers and the alert that counts them), recovers by itself, and every event
// it acknowledged is stored afterwards.
func TestWrite_DatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and stops a PostgreSQL cluster of its own")
	}
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Logf: t.Logf})
	if err != nil {
		t.Skipf("no PostgreSQL server binaries to start a cluster of our own: %v", err)
	}
	t.Cleanup(func() { _ = pgcluster.RemovePersistent(dir) })
	// The test's own cluster: commits must be durable for "acknowledged means stored" to mean
	// anything, whatever the cluster's defaults.
	url := srv.URL + "&options=-c%20synchronous_commit%3Don"
	require.NoError(t, migrations.Up(srv.URL))

	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	s := store.New(pool)
	wcfg := defaultConfig()
	wcfg.Timeout = 3 * time.Second
	h, err := write.New(s, wcfg, prometheus.NewRegistry())
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	web.Health(mux, func(ctx context.Context) error { return function.DatabaseState(s.PingWritable(ctx)) })
	hs := httptest.NewServer(mux)
	defer func() { hs.Close(); h.Close() }()

	var (
		mu           sync.Mutex
		acknowledged []uuid.UUID
		unavailable  atomic.Int64
		otherErrors  atomic.Int64
		stop         atomic.Bool
	)
	client := &http.Client{Timeout: 15 * time.Second}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				id := uuid.New()
				body := eventJSON(t, func(m map[string]any) { m["event_id"] = id.String() })
				resp, err := client.Post(hs.URL+"/api/v1/audit/events", "application/json", bytes.NewReader(body))
				if err != nil {
					otherErrors.Add(1)
					continue
				}
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusCreated:
					mu.Lock()
					acknowledged = append(acknowledged, id)
					mu.Unlock()
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
					unavailable.Add(1)
					time.Sleep(20 * time.Millisecond)
				default:
					otherErrors.Add(1)
				}
			}
		}()
	}
	ready := func() (int, string) {
		resp, err := http.Get(hs.URL + "/health/readiness")
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body["database"]
	}
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acknowledged)
	}

	require.Eventually(t, func() bool { return ackCount() > 50 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, pgcluster.StopPersistent(dir))
	require.Eventually(t, func() bool { return unavailable.Load() > 10 }, 30*time.Second, 10*time.Millisecond)
	status, database := ready()
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "unavailable", database)
	before := ackCount()

	_, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Logf: t.Logf})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ackCount() > before+50 }, 60*time.Second, 20*time.Millisecond, "writes recover without a restart")
	status, database = ready()
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "available", database)
	stop.Store(true)
	wg.Wait()

	require.Zero(t, otherErrors.Load(), "only 201 and 503 with Retry-After are acceptable answers")
	mu.Lock()
	defer mu.Unlock()
	rows, err := pool.Query(ctx, `SELECT event_id FROM audit_events WHERE event_id = ANY($1)`, acknowledged)
	require.NoError(t, err)
	found := map[uuid.UUID]bool{}
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		found[id] = true
	}
	require.NoError(t, rows.Err())
	require.Len(t, found, len(acknowledged), "every acknowledged event is stored")
	t.Logf("acknowledged %d events, %d answers were 503 during the outage", len(acknowledged), unavailable.Load())
}
