package web

import (
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// LogHandler is the handler of every function's logs (Main): JSON lines as slog's
// JSONHandler writes them, and a request's context adds its request_id (ContextHandler).
// RequestLog writes its line through it directly: the same JSON, without building a record
// and calling json.Marshal for duration_ms, which were a visible share of a small write's CPU.
type LogHandler struct {
	ContextHandler
	out io.Writer
}

// NewLogHandler returns a LogHandler writing to w, logging level and above (nil: Info). The
// lines of the request log and of slog are written whole, one Write call each, never
// interleaved.
func NewLogHandler(w io.Writer, level slog.Leveler) *LogHandler {
	if _, ok := w.(*lineWriter); !ok {
		// A line of slog's and a request line must not be written at once to a writer that
		// cannot take it (slog's own lock covers only its own lines).
		w = &lockedWriter{w: w}
	}
	return &LogHandler{ContextHandler: ContextHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}, out: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeRequest writes a request's line as slog's JSONHandler would write
// LogAttrs(level, "request", l.attrs()...) at t.
func (h *LogHandler) writeRequest(t time.Time, level slog.Level, l *requestLine) {
	bp := lineBuffers.Get().(*[]byte)
	b := appendRequestLine((*bp)[:0], t, level, l)
	_, _ = h.out.Write(b) // nowhere to report a failing log, as slog's own lines
	if cap(b) <= 16<<10 {
		*bp = b
		lineBuffers.Put(bp)
	}
}

func appendRequestLine(b []byte, t time.Time, level slog.Level, l *requestLine) []byte {
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":`...)
	b = appendJSONString(b, level.String())
	b = append(b, `,"msg":"request","request_id":`...)
	b = appendJSONString(b, l.id)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, l.method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, l.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(l.status), 10)
	b = append(b, `,"duration_ms":`...)
	b = appendJSONFloat(b, l.durationMS)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, l.bytes, 10)
	if l.principal != "" {
		b = append(b, `,"principal":`...)
		b = appendJSONString(b, l.principal)
	}
	if l.hasErr {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, l.err)
	}
	if l.traceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendJSONString(b, l.traceID)
		b = append(b, `,"span_id":`...)
		b = appendJSONString(b, l.spanID)
	}
	return append(b, "}\n"...)
}

// appendJSONFloat appends f as encoding/json writes a float64 (slog's JSONHandler uses it).
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		// json.Marshal refuses them; slog writes its error instead. A duration never is one.
		return appendJSONString(b, "!ERROR:json: unsupported value: "+strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 becomes 1e-7, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONString appends s quoted as slog's JSONHandler quotes strings: control
// characters, quote and backslash escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029
// escaped, everything else (HTML's <, >, & too) as it is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
