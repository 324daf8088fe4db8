package web

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The request line LogHandler writes by hand is byte for byte the line slog's JSONHandler
// writes for the same attributes, whatever the strings hold.
func TestLogHandler_RequestLineAsSlog(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 19, 54, 20, 123456789, time.UTC)
	odd := "a\"b\\c\n\r\t\x00\x1f<>&\u2028\u2029\xff\xfe é 日本"
	for _, tc := range []struct {
		name  string
		level slog.Level
		line  requestLine
	}{
		{"plain", slog.LevelInfo, requestLine{id: "0af7651916cd43dd8448eb211c80319c", method: "POST", path: "/api/v1/audit/events", status: 201, durationMS: 1.234, bytes: 150}},
		{"everything", slog.LevelError, requestLine{id: odd, method: odd, path: odd, status: 503, durationMS: 12345.678, bytes: 0,
			principal: odd, err: odd, hasErr: true, traceID: "4bf92f3577b34da6a3ce929d0e0e4736", spanID: "00f067aa0ba902b7"}},
		{"empty error", slog.LevelDebug, requestLine{id: "x", method: "GET", path: "/healthz", status: 200, hasErr: true}},
		{"tiny and huge durations", slog.LevelInfo, requestLine{id: "x", durationMS: 1e-7}},
		{"huge duration", slog.LevelInfo, requestLine{id: "x", durationMS: 1e22}},
		{"whole duration", slog.LevelInfo, requestLine{id: "x", durationMS: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want bytes.Buffer
			r := slog.NewRecord(at, tc.level, "request", 0)
			r.AddAttrs(tc.line.attrs()...)
			require.NoError(t, slog.NewJSONHandler(&want, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(context.Background(), r))
			require.Equal(t, want.String(), string(appendRequestLine(nil, at, tc.level, &tc.line)))
		})
	}
}

// Request ids made here are 32 hex digits and differ; a proxy's sane id is kept.
func TestRequestID(t *testing.T) {
	t.Parallel()
	a, b := requestID(""), requestID("")
	require.Regexp(t, `^[0-9a-f]{32}$`, a)
	require.NotEqual(t, a, b)
	require.Equal(t, "req-42", requestID("req-42"))
	require.NotEqual(t, "bad id", requestID("bad id"))
	require.NotEqual(t, strings.Repeat("a", 129), requestID(strings.Repeat("a", 129)))
}
