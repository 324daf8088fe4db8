package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/stretchr/testify/require"
)

// logBuffer is a goroutine-safe sink of JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

func logServer(t *testing.T) (*httptest.Server, *logBuffer) {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte("tokens:\n  - {principal: gateway, roles: [writer], token: w}\n"), 0o600))
	az, err := auth.NewStatic(tokens)
	require.NoError(t, err)
	logs := &logBuffer{}
	logger := slog.New(web.NewLogHandler(logs, nil))

	mux := http.NewServeMux()
	guard := auth.Middleware(az, auth.Write, nil)
	mux.Handle("POST /things", guard(web.Handle(func(w http.ResponseWriter, r *http.Request) error {
		logger.InfoContext(r.Context(), "handler says hello")
		return web.WriteJSON(w, http.StatusCreated, map[string]string{"ok": "yes"})
	})))
	mux.Handle("POST /bad", guard(web.Handle(func(http.ResponseWriter, *http.Request) error {
		return web.Invalid("the thing is invalid", []web.FieldError{{Field: "colour", Message: "is not a field"}})
	})))
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("a"))
		require.NoError(t, http.NewResponseController(w).Flush(), "a stream can still flush")
	})
	web.Health(mux, func(context.Context) error { return nil })
	srv := httptest.NewServer(web.RequestLog(logger, mux))
	t.Cleanup(srv.Close)
	return srv, logs
}

func do(t *testing.T, method, url string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// Each request is one line with its id, principal, status, duration and W3C trace context;
// the handler's own lines carry the same request_id.
func TestRequestLog_OneLinePerRequest(t *testing.T) {
	t.Parallel()
	srv, logs := logServer(t)
	resp := do(t, http.MethodPost, srv.URL+"/things", "Authorization", "Bearer w", "X-Request-Id", "req-42",
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, "req-42", resp.Header.Get("X-Request-Id"))

	lines := logs.lines(t)
	require.Len(t, lines, 2)
	require.Equal(t, "handler says hello", lines[0]["msg"])
	require.Equal(t, "req-42", lines[0]["request_id"])
	line := lines[1]
	require.Equal(t, "request", line["msg"])
	require.Equal(t, "INFO", line["level"])
	require.Equal(t, "req-42", line["request_id"])
	require.Equal(t, "POST", line["method"])
	require.Equal(t, "/things", line["path"])
	require.EqualValues(t, 201, line["status"])
	require.Equal(t, "gateway", line["principal"])
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", line["trace_id"])
	require.Equal(t, "00f067aa0ba902b7", line["span_id"])
	require.Greater(t, line["duration_ms"], 0.0)
	require.Greater(t, line["bytes"], 0.0)
	require.NotContains(t, line, "error")
}

// A refused request is still one line, with the cause; a made-up request id is 32 hex digits;
// a CloudEvent's Ce-Traceparent counts when there is no Traceparent.
func TestRequestLog_Failures(t *testing.T) {
	t.Parallel()
	srv, logs := logServer(t)
	resp := do(t, http.MethodPost, srv.URL+"/bad", "Authorization", "Bearer w",
		"Ce-Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	id := resp.Header.Get("X-Request-Id")
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), id)
	resp = do(t, http.MethodPost, srv.URL+"/things", "Authorization", "Bearer nope", "X-Request-Id", "bad id with spaces")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.NotEqual(t, "bad id with spaces", resp.Header.Get("X-Request-Id"))

	lines := logs.lines(t)
	require.Len(t, lines, 2, "one line per request, failures included")
	require.Equal(t, id, lines[0]["request_id"])
	require.EqualValues(t, 400, lines[0]["status"])
	require.Contains(t, lines[0]["error"], "the thing is invalid")
	require.Equal(t, "gateway", lines[0]["principal"])
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", lines[0]["trace_id"])
	require.EqualValues(t, 401, lines[1]["status"])
	require.NotContains(t, lines[1], "principal", "an unauthenticated caller has no principal")
	require.Contains(t, lines[1]["error"], "unauthenticated")
}

// Probes and scrapes log at Debug (a default Info logger leaves them out); streams still flush.
func TestRequestLog_QuietProbesAndStreams(t *testing.T) {
	t.Parallel()
	srv, logs := logServer(t)
	require.Equal(t, http.StatusOK, do(t, http.MethodGet, srv.URL+"/health/liveness").StatusCode)
	require.Empty(t, logs.lines(t))
	require.Equal(t, http.StatusOK, do(t, http.MethodGet, srv.URL+"/stream").StatusCode)
	// The stream flushed its response before its handler returned, so the client can have it
	// before the line is written.
	require.Eventually(t, func() bool { return len(logs.lines(t)) > 0 }, 10*time.Second, time.Millisecond)
	lines := logs.lines(t)
	require.Len(t, lines, 1)
	require.EqualValues(t, 1, lines[0]["bytes"])
}
