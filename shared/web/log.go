package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
)

// RequestIDHeader carries a request's id: taken from the request when a proxy set it, made
// here otherwise, and sent back on the response so a client can quote it.
const RequestIDHeader = "X-Request-Id"

// requestInfo is what the one log line of a request says beyond the request itself, filled in
// while it is served.
type requestInfo struct {
	id string

	mu        sync.Mutex
	principal string
	err       error
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// RequestID returns the id of the request ctx belongs to ("" outside RequestLog).
func RequestID(ctx context.Context) string {
	if info := infoFrom(ctx); info != nil {
		return info.id
	}
	return ""
}

// SetPrincipal names the authenticated caller of the request ctx belongs to in its log line.
func SetPrincipal(ctx context.Context, name string) {
	if info := infoFrom(ctx); info != nil {
		info.mu.Lock()
		info.principal = name
		info.mu.Unlock()
	}
}

// recordError hands a failure to the request's log line; false outside RequestLog.
func recordError(ctx context.Context, err error) bool {
	info := infoFrom(ctx)
	if info == nil {
		return false
	}
	info.mu.Lock()
	info.err = err
	info.mu.Unlock()
	return true
}

// RequestLog serves h and logs each request once, when it ends, as one structured line:
// request_id, method, path, status, duration_ms, bytes, principal, and the trace_id and
// span_id of a W3C traceparent (the Traceparent header, else a binary-mode CloudEvent's
// Ce-Traceparent). A failure's cause is in the same line (error), so a failed request is
// still one line. Health probes and metric scrapes log at Debug, server errors at Error.
func RequestLog(logger *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: requestID(r.Header.Get(RequestIDHeader))}
		w.Header().Set(RequestIDHeader, info.id)
		rec := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))

		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		// Room for every attribute the line may have, so appending the optional ones does not
		// copy the slice.
		attrs := append(make([]slog.Attr, 0, 10),
			slog.String("request_id", info.id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int64("bytes", rec.bytes),
		)
		info.mu.Lock()
		if info.principal != "" {
			attrs = append(attrs, slog.String("principal", info.principal))
		}
		if info.err != nil {
			attrs = append(attrs, slog.String("error", info.err.Error()))
		}
		info.mu.Unlock()
		tp := r.Header.Get("Traceparent")
		if tp == "" {
			tp = r.Header.Get("Ce-Traceparent")
		}
		if traceID, spanID, ok := audit.ParseTraceparent(tp); ok {
			attrs = append(attrs, slog.String("trace_id", traceID), slog.String("span_id", spanID))
		}
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case strings.HasPrefix(r.URL.Path, "/health/") || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics":
			level = slog.LevelDebug
		}
		// The line names its request itself: logging it with the request's context would add
		// request_id a second time through ContextHandler.
		logger.LogAttrs(context.Background(), level, "request", attrs...)
	})
}

// requestID keeps a sane id a proxy set (1 to 128 printable ASCII characters) and makes one
// otherwise.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			ok = given[i] > ' ' && given[i] < 0x7f
		}
		if ok {
			return given
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter remembers the status and size of a response. Unwrap lets
// http.ResponseController reach the connection (an export flushes as it streams).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes what was written, when the underlying writer can.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ContextHandler adds the request_id of a request's context to every record logged with it
// (slog.InfoContext(r.Context(), ...)), so a handler's own lines join the request's line.
type ContextHandler struct{ slog.Handler }

// Handle adds request_id, then hands the record on.
func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the handler a ContextHandler.
func (h ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return ContextHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the handler a ContextHandler.
func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{h.Handler.WithGroup(name)}
}
