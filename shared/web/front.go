package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// front is the one handler in front of a function's routes. For every request it does, in
// this order, what RequestLog, the refusal pacer, the connection tracker and the query guard
// each promise: an id and one log line, refusals held when their client sends too many, the
// body bounded in time and known to shutdown, the query string checked. They share one
// exchange per request (one allocation, one context value) instead of a handler, a response
// writer, a body and a context each: at thousands of small writes a second that layering was
// a visible share of the write function's CPU.
type front struct {
	h   http.Handler
	log *slog.Logger
	// conns, when set, guards request bodies (connTracker); refusals, when set, paces
	// refusals (refusalPacer); checkQuery refuses a query string Query would refuse.
	conns      *connTracker
	refusals   *refusalPacer
	checkQuery bool
}

// exchange is one request as front serves it: its log line's facts, the response writer and
// body handed to the routes, and the context that carries it to SetPrincipal, RequestID,
// Query and WriteError.
type exchange struct {
	// Context is the request's own; Value adds the exchange to it.
	context.Context
	info  requestInfo
	front *front
	r     *http.Request // as the server gave it
	conn  *connInfo     // nil: not served by ServeListener

	rw   responseWriter
	body requestBody

	// query is the query string as checked (parsed is set then).
	query  url.Values
	parsed bool
	// idHeader backs the X-Request-Id response header without a slice of its own.
	idHeader [1]string
}

// Value gives the exchange's parts to those who look them up in a request's context.
func (x *exchange) Value(key any) any {
	switch key.(type) {
	case requestInfoKey:
		return &x.info
	case parsedQueryKey:
		if x.parsed {
			return x.query
		}
		return nil
	}
	return x.Context.Value(key)
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{Context: r.Context(), front: f, r: r}
	x.info.id = requestID(r.Header.Get(RequestIDHeader))
	x.idHeader[0] = x.info.id
	w.Header()[RequestIDHeader] = x.idHeader[:]
	x.rw = responseWriter{ResponseWriter: w, x: x}
	req := r.WithContext(x)
	if r.Body != nil && r.Body != http.NoBody {
		x.body.ReadCloser, x.body.x = r.Body, x
		req.Body = &x.body
	}
	if f.conns != nil {
		if info, _ := r.Context().Value(connInfoKey{}).(*connInfo); info != nil {
			x.conn = info
			f.conns.begin(x)
			defer f.conns.end(x)
		}
	}
	switch {
	case !f.checkQuery || r.URL.RawQuery == "":
		f.h.ServeHTTP(&x.rw, req)
	default:
		q, err := parseQuery(r)
		if err != nil {
			WriteError(&x.rw, req, err)
			break
		}
		// Handlers read it with Query instead of parsing it again.
		x.query, x.parsed = q, true
		f.h.ServeHTTP(&x.rw, req)
	}
	f.logRequest(x, start)
}

// responseWriter is the response of an exchange: it remembers the status and size for the
// log line and holds a refusal (refusalPacer) before its status is sent. Unwrap lets
// http.ResponseController reach the connection (an export flushes as it streams).
type responseWriter struct {
	http.ResponseWriter
	x      *exchange
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
		if w.x.front.refusals != nil && isRefusal(status) {
			w.x.holdRefusal()
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes what was written, when the underlying writer can.
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// requestBody is the body of an exchange: it counts what was read (a refusal costs its
// pacer a token more for every refusalBytes) and, under ServeListener, is under the body
// deadline. Once it has been read to its end the deadline is lifted: the server's own read of
// the idle connection must not see it, or it would cancel the request's context while its
// handler still works.
type requestBody struct {
	io.ReadCloser
	x        *exchange
	n        atomic.Int64
	guarded  bool // under the body deadline (connTracker.begin)
	cut      atomic.Bool
	finished atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	if b.guarded {
		switch {
		case err == io.EOF:
			b.finish(true)
		case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
			if b.cut.Load() {
				return n, ErrShuttingDown
			}
			return n, ErrBodyTimeout
		}
	}
	return n, err
}

// finish ends the body's registration with its connection, once: read to its end, or left
// when its handler returned. Only a body read to its end lifts the deadline; one left unread
// keeps it, so the server's read of what is left is bounded too.
func (b *requestBody) finish(eof bool) {
	if b.finished.CompareAndSwap(false, true) {
		info := b.x.conn
		info.mu.Lock()
		info.removeBody(b)
		// Under the lock: a cut by shutdown (which sets cut under it) is never undone.
		if eof && !b.cut.Load() {
			_ = info.conn.SetReadDeadline(time.Time{})
		}
		info.mu.Unlock()
	}
}

// holdRefusal holds a refusal as the pacer says (see refusalPacer).
func (x *exchange) holdRefusal() {
	x.info.mu.Lock()
	client := x.info.principal
	x.info.mu.Unlock()
	if client == "" {
		client = "ip:" + remoteIP(x.r.RemoteAddr)
	}
	cost := 1.0 + float64(x.body.n.Load()/refusalBytes)
	d := x.front.refusals.delay(client, cost, time.Now())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-x.r.Context().Done():
	}
}
