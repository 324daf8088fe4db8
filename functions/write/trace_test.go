package write_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// requestLines are the "request" lines logged, in order.
func (s *syncBuffer) requestLines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// A W3C traceparent reaches both the stored event (trace_id, span_id) and the request's one
// log line, with the request id and the principal: a JSON event with a Traceparent header, a
// binary-mode CloudEvent with the traceparent extension.
func TestWrite_TraceparentInEventAndLog(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	h, err := write.New(s, defaultConfig(), prometheus.NewRegistry(), write.WithAuthorizer(staticAuth(t), nil))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	logs := &syncBuffer{}
	srv := httptest.NewServer(web.RequestLog(slog.New(slog.NewJSONHandler(logs, nil)), mux))
	t.Cleanup(func() { srv.Close(); h.Close() })
	f := &fixture{url: srv.URL, pool: pool, store: s}

	r := f.post(t, "/api/v1/audit/events", "application/json", eventJSON(t, nil), "Authorization", "Bearer writer-token",
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Request-Id", "req-trace-1")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	e, err := s.GetEvent(context.Background(), uuid.MustParse(r.json(t)["event_id"].(string)))
	require.NoError(t, err)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", *e.TraceID)
	require.Equal(t, "00f067aa0ba902b7", *e.SpanID)

	data := []byte(`{"version":"1.0","service":"workflow","operation":"step.done","status":"success"}`)
	r = f.post(t, "/", "application/json", data, "Authorization", "Bearer writer-token",
		"Ce-Specversion", "1.0", "Ce-Id", "trace-ce-1", "Ce-Source", "workflow", "Ce-Type", "workflow.step.done",
		"Ce-Correlationid", "rr-trace", "Ce-Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	ce, err := s.GetEvent(context.Background(), uuid.NewSHA1(uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), []byte("workflow trace-ce-1")))
	require.NoError(t, err)
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", *ce.TraceID)

	lines := logs.requestLines(t)
	require.Len(t, lines, 2)
	require.Equal(t, "req-trace-1", lines[0]["request_id"])
	require.Equal(t, "gateway", lines[0]["principal"])
	require.EqualValues(t, 201, lines[0]["status"])
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", lines[0]["trace_id"])
	require.Equal(t, "00f067aa0ba902b7", lines[0]["span_id"])
	require.Contains(t, lines[0], "duration_ms")
	require.EqualValues(t, 202, lines[1]["status"])
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", lines[1]["trace_id"])
	require.Equal(t, r.header.Get("X-Request-Id"), lines[1]["request_id"])
}
