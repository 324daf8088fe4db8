package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadCountsEveryFailure(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0:
			w.WriteHeader(http.StatusCreated)
		case 1:
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		default:
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close() // no response at all
		}
	}))
	t.Cleanup(srv.Close)
	tps, err := jsonTemplates(2, 0)
	require.NoError(t, err)
	l := &load{url: srv.URL, templates: tps}
	t.Cleanup(l.close)
	ta := newTally()
	l.closedLoop(t.Context(), ta, 3, time.Hour, 30)
	require.EqualValues(t, 30, ta.requests)
	require.EqualValues(t, 10, ta.statuses["201"])
	require.EqualValues(t, 10, ta.statuses["503"])
	require.EqualValues(t, 10, ta.statuses["transport error"])
	require.Equal(t, 20, ta.errors())
	require.EqualValues(t, 10, ta.events)
	require.Len(t, ta.latencies, 10)
	require.Contains(t, ta.samples["503"], "database unavailable")
	require.NotEmpty(t, ta.samples["transport error"])

	paced := newTally()
	l.paced(t.Context(), paced, 1000, 30*time.Millisecond, 0, 8)
	require.EqualValues(t, 30, paced.requests)
	require.Len(t, paced.lag, 30)
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(i+1) * time.Millisecond
	}
	require.Equal(t, 50*time.Millisecond, percentile(d, 50))
	require.Equal(t, 99*time.Millisecond, percentile(d, 99))
	require.Equal(t, 100*time.Millisecond, percentile(d, 100))
	require.Equal(t, time.Duration(0), percentile(nil, 99))
}

// TestRawConn_Responses reads every kind of response net/http's server sends: with a length,
// chunked, closing the connection, and then a kept-alive one again on the same pool.
func TestRawConn_Responses(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Query().Get("kind") {
		case "chunked":
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("part one,"))
			w.(http.Flusher).Flush()
			_, _ = w.Write([]byte(big))
		case "close":
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("closing"))
		default:
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		kind   string
		status int
		body   string
	}{
		{"echo", 202, "hello"}, {"chunked", 201, "part one," + big}, {"close", 503, "closing"}, {"echo", 202, "hello"}, {"echo", 202, "hello"},
	} {
		pool, err := newConnPool(srv.URL + "/?kind=" + tc.kind)
		require.NoError(t, err)
		c := pool.get()
		c.req = append(c.req[:0], "POST "+pool.path+" HTTP/1.1\r\nHost: "+pool.host+"\r\nContent-Length: 5\r\n\r\nhello"...)
		status, err := c.do(t.Context(), pool.host)
		require.NoError(t, err, tc.kind)
		require.Equal(t, tc.status, status, tc.kind)
		require.Equal(t, tc.body, string(c.body), tc.kind)
		require.Equal(t, tc.kind != "close", c.c != nil, "%s: kept alive", tc.kind)
		pool.put(c)
		pool.close()
	}
}
