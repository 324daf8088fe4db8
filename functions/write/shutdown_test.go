package write_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestWrite_GracefulShutdown stops the server (as SIGTERM does) while requests wait for their
// group commit: every one of them is still committed and answered before Serve returns.
func TestWrite_GracefulShutdown(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	cfg := defaultConfig()
	cfg.GroupWait = 50 * time.Millisecond // keep requests in flight when the shutdown starts
	h, err := write.New(store.New(pool), cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	// The shutdown starts once every request is in a handler: a connection whose request the
	// server has not read yet counts as idle and is closed, on a busy machine too.
	const n = 20
	var arrived sync.WaitGroup
	arrived.Add(n)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		mux.ServeHTTP(w, r)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- web.ServeListener(ctx, func() web.ServeConfig { c := web.DefaultServeConfig(); c.ShutdownTimeout = 10 * time.Second; return c }(), ln, handler)
	}()
	url := "http://" + ln.Addr().String() + "/api/v1/audit/events"

	statuses := make([]int, n)
	var started, wg sync.WaitGroup
	started.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := eventJSON(t, nil)
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				started.Done()
				return
			}
			client := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}}
			started.Done()
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	started.Wait()
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatal("the requests did not all reach the handler")
	}
	time.Sleep(5 * time.Millisecond) // the requests are decoded and queued for a commit
	cancel()
	require.NoError(t, <-served)
	h.Close()
	wg.Wait()
	for i, s := range statuses {
		require.Equal(t, http.StatusCreated, s, "request %d", i)
	}
	var count int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events`).Scan(&count))
	require.Equal(t, n, count)
}
