package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBodyTimeout is the error a request body's Read returns once HTTP_BODY_TIMEOUT has passed
// since its headers arrived: the sender is too slow. ReadBody answers it with a 408.
var ErrBodyTimeout = errors.New("the request body did not arrive in time")

// ErrShuttingDown is the error a request body's Read returns when the server began shutting
// down while the body was still arriving. ReadBody answers it with a 503.
var ErrShuttingDown = errors.New("the server is shutting down")

// connLimits admits connections up to a total and a per-client bound. A connection over either
// bound is answered at once with a 503 and closed, instead of waiting unaccepted in the
// kernel's queue: a flood of slow connections then costs its sender its own connections, not
// every client's file descriptors. Clients are told apart by IP address; behind Knative's
// queue-proxy every connection comes from the pod's loopback, and the per-client bound leaves
// room for the proxy's concurrency.
type connLimits struct {
	net.Listener
	max, perClient int

	mu     sync.Mutex
	total  int
	client map[string]int
}

func (l *connLimits) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		l.mu.Lock()
		ok := l.total < l.max && l.client[ip] < l.perClient
		if ok {
			l.total++
			l.client[ip]++
		}
		l.mu.Unlock()
		if !ok {
			go refuse(c)
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *connLimits) release(ip string) {
	l.mu.Lock()
	l.total--
	if l.client[ip]--; l.client[ip] <= 0 {
		delete(l.client, ip)
	}
	l.mu.Unlock()
}

func clientIP(a net.Addr) string { return remoteIP(a.String()) }

// refusal is the whole answer to a connection over the bounds: a problem+json 503 that says
// when to come back. It is written before the request is read, which HTTP/1.1 clients accept
// as the answer to the request they send.
var refusal = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: application/problem+json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 171\r\n\r\n" +
	`{"type":"https://auditstore.dev/problems/unavailable","title":"Service Unavailable","status":503,"detail":"too many connections from this client or in total; retry later"}` + "\n")

// refuse answers c with the refusal and closes it. The request the client may be sending is
// read and dropped for a moment first: closing a socket with unread data makes the kernel
// reset the connection, and the client could lose the answer.
func refuse(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write(refusal); err == nil {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
	_ = c.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// connTracker knows every open connection and what it is doing, so that shutting down can cut
// those that would only hold it up: connections still sending headers or a body. Requests
// whose body has arrived are left to finish and be answered.
type connTracker struct {
	bodyTimeout time.Duration

	mu       sync.Mutex
	conns    map[net.Conn]*connInfo
	stopping bool
}

// connInfo is one connection's state: its http.ConnState, and the requests being served on
// it whose bodies are still arriving.
type connInfo struct {
	conn     net.Conn
	state    http.ConnState
	handlers int // requests being served (their handlers run)
	bodies   map[*guardedBody]struct{}
}

type connInfoKey struct{}

func newConnTracker(bodyTimeout time.Duration) *connTracker {
	return &connTracker{bodyTimeout: bodyTimeout, conns: map[net.Conn]*connInfo{}}
}

// connContext gives each connection's requests its connInfo (http.Server.ConnContext).
func (t *connTracker) connContext(ctx context.Context, c net.Conn) context.Context {
	info := &connInfo{conn: c, bodies: map[*guardedBody]struct{}{}}
	t.mu.Lock()
	t.conns[c] = info
	t.mu.Unlock()
	return context.WithValue(ctx, connInfoKey{}, info)
}

// connState follows each connection's state (http.Server.ConnState).
func (t *connTracker) connState(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	info := t.conns[c]
	if info == nil {
		return
	}
	if s == http.StateClosed || s == http.StateHijacked {
		delete(t.conns, c)
		return
	}
	info.state = s
}

// shutdown cuts every connection that is not yet, or no longer, waiting for an answer it can
// get: new and idle connections, those still sending a request's headers, and the bodies
// still arriving (their handlers answer 503 at once). http.Server.Shutdown then only waits for
// requests whose body has arrived.
func (t *connTracker) shutdown() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopping = true
	now := time.Now()
	cut := 0
	for _, info := range t.conns {
		if info.handlers == 0 && info.state != http.StateIdle {
			// Headers still arriving (or not begun): nothing of the request was read.
			_ = info.conn.SetReadDeadline(now)
			cut++
		}
		for b := range info.bodies {
			b.cut.Store(true)
			_ = info.conn.SetReadDeadline(now)
			cut++
		}
	}
	if cut > 0 {
		slog.Info("shutting down: cut connections still sending a request", "connections", cut)
	}
}

// guard bounds how long a request's body may take to arrive and registers the request with
// its connection, so shutdown can tell its phases apart. It wraps every handler.
func (t *connTracker) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, _ := r.Context().Value(connInfoKey{}).(*connInfo)
		if info == nil {
			h.ServeHTTP(w, r)
			return
		}
		t.mu.Lock()
		info.handlers++
		stopping := t.stopping
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			info.handlers--
			t.mu.Unlock()
		}()
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if stopping {
				_ = rc.SetReadDeadline(time.Now())
			} else if t.bodyTimeout > 0 {
				_ = rc.SetReadDeadline(time.Now().Add(t.bodyTimeout))
			}
			b := &guardedBody{ReadCloser: r.Body, rc: rc, done: func(b *guardedBody) {
				t.mu.Lock()
				delete(info.bodies, b)
				t.mu.Unlock()
			}}
			b.cut.Store(stopping)
			t.mu.Lock()
			info.bodies[b] = struct{}{}
			t.mu.Unlock()
			defer b.finish(false)
			r.Body = b
		}
		h.ServeHTTP(w, r)
	})
}

// guardedBody is a request body under the body deadline. Once it has been read to its end the
// deadline is lifted: the server's own read of the idle connection must not see it, or it
// would cancel the request's context while its handler still works.
type guardedBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	cut      atomic.Bool
	finished atomic.Bool
	done     func(*guardedBody)
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		if b.cut.Load() {
			return n, ErrShuttingDown
		}
		return n, ErrBodyTimeout
	}
	return n, err
}

// finish ends the body's registration with its connection, once: read to its end, or left
// when its handler returned. Only a body read to its end lifts the deadline; one left unread
// keeps it, so the server's read of what is left is bounded too.
func (b *guardedBody) finish(eof bool) {
	if b.finished.CompareAndSwap(false, true) {
		b.done(b)
		if eof && !b.cut.Load() {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	}
}
