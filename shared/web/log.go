package web

import (
	"context"
	"log/slog"
	"math/rand/v2"
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
// With a logger of NewLogHandler the line is written without slog's generic encoding, the
// same JSON.
func RequestLog(logger *slog.Logger, h http.Handler) http.Handler {
	return &front{h: h, log: logger}
}

// logRequest writes x's one line.
func (f *front) logRequest(x *exchange, start time.Time) {
	r := x.r
	status := x.rw.status
	if status == 0 {
		status = http.StatusOK
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case strings.HasPrefix(r.URL.Path, "/health/") || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics":
		level = slog.LevelDebug
	}
	fast, _ := f.log.Handler().(*LogHandler)
	// The line names its request itself: logging it with the request's context would add
	// request_id a second time through ContextHandler.
	if !f.log.Enabled(context.Background(), level) {
		return
	}
	line := requestLine{id: x.info.id, method: r.Method, path: r.URL.Path, status: status,
		durationMS: float64(time.Since(start).Microseconds()) / 1000, bytes: x.rw.bytes}
	x.info.mu.Lock()
	line.principal = x.info.principal
	if x.info.err != nil {
		line.err, line.hasErr = x.info.err.Error(), true
	}
	x.info.mu.Unlock()
	tp := r.Header.Get("Traceparent")
	if tp == "" {
		tp = r.Header.Get("Ce-Traceparent")
	}
	line.traceID, line.spanID, _ = audit.ParseTraceparent(tp)
	if fast != nil {
		fast.writeRequest(time.Now(), level, &line)
		return
	}
	f.log.LogAttrs(context.Background(), level, "request", line.attrs()...)
}

// requestLine is what a request's log line says.
type requestLine struct {
	id, method, path string
	status           int
	durationMS       float64
	bytes            int64
	principal        string // "": not in the line
	err              string
	hasErr           bool
	traceID, spanID  string // "": not in the line
}

// attrs are the line's attributes, for a logger of any handler.
func (l *requestLine) attrs() []slog.Attr {
	// Room for every attribute the line may have, so appending the optional ones does not
	// copy the slice.
	attrs := append(make([]slog.Attr, 0, 10),
		slog.String("request_id", l.id),
		slog.String("method", l.method),
		slog.String("path", l.path),
		slog.Int("status", l.status),
		slog.Float64("duration_ms", l.durationMS),
		slog.Int64("bytes", l.bytes),
	)
	if l.principal != "" {
		attrs = append(attrs, slog.String("principal", l.principal))
	}
	if l.hasErr {
		attrs = append(attrs, slog.String("error", l.err))
	}
	if l.traceID != "" {
		attrs = append(attrs, slog.String("trace_id", l.traceID), slog.String("span_id", l.spanID))
	}
	return attrs
}

// requestID keeps a sane id a proxy set (1 to 128 printable ASCII characters) and makes one
// otherwise: 32 random hex digits. They need to be unique, not secret: the runtime's
// generator (math/rand/v2, seeded by the system) makes them without a system call.
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
	var b [32]byte
	const digits = "0123456789abcdef"
	for half := range 2 {
		v := rand.Uint64()
		for i := range 16 {
			b[half*16+i] = digits[v>>60]
			v <<= 4
		}
	}
	return string(b[:])
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
