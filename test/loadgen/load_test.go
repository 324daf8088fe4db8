package main

import (
	"net/http"
	"net/http/httptest"
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
	l := &load{url: srv.URL, templates: tps, client: srv.Client()}
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
