package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	// info is the connection's state (connTracker.connContext), reached from the conn
	// itself so that following its state needs no lookup under a lock every connection
	// shares.
	info *connInfo
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
	stopping    atomic.Bool

	mu    sync.Mutex // guards conns
	conns map[net.Conn]*connInfo
}

// connInfo is one connection's state: its http.ConnState, and the requests being served on
// it whose bodies are still arriving. Each connection has its own lock: a request takes it a
// few times, and the connections of a busy server do not queue for one.
type connInfo struct {
	conn net.Conn

	mu       sync.Mutex
	state    http.ConnState
	handlers int // requests being served (their handlers run)
	bodies   []*requestBody
}

// removeBody forgets b (under mu).
func (info *connInfo) removeBody(b *requestBody) {
	for i, o := range info.bodies {
		if o == b {
			last := len(info.bodies) - 1
			info.bodies[i] = info.bodies[last]
			info.bodies[last] = nil
			info.bodies = info.bodies[:last]
			return
		}
	}
}

type connInfoKey struct{}

func newConnTracker(bodyTimeout time.Duration) *connTracker {
	return &connTracker{bodyTimeout: bodyTimeout, conns: map[net.Conn]*connInfo{}}
}

// connContext gives each connection's requests its connInfo (http.Server.ConnContext).
func (t *connTracker) connContext(ctx context.Context, c net.Conn) context.Context {
	info := &connInfo{conn: c}
	if lc, ok := c.(*limitedConn); ok {
		lc.info = info
	}
	t.mu.Lock()
	t.conns[c] = info
	t.mu.Unlock()
	return context.WithValue(ctx, connInfoKey{}, info)
}

// connState follows each connection's state (http.Server.ConnState).
func (t *connTracker) connState(c net.Conn, s http.ConnState) {
	if s == http.StateClosed || s == http.StateHijacked {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
		return
	}
	var info *connInfo
	if lc, ok := c.(*limitedConn); ok {
		info = lc.info
	} else {
		t.mu.Lock()
		info = t.conns[c]
		t.mu.Unlock()
	}
	if info == nil {
		return
	}
	info.mu.Lock()
	info.state = s
	info.mu.Unlock()
}

// shutdown cuts every connection that is not yet, or no longer, waiting for an answer it can
// get: new and idle connections, those still sending a request's headers, and the bodies
// still arriving (their handlers answer 503 at once). http.Server.Shutdown then only waits for
// requests whose body has arrived.
func (t *connTracker) shutdown() {
	// Set before any connection is looked at: a request that registers its body after this
	// connection was looked at sees it, and cuts its own body (begin).
	t.stopping.Store(true)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	cut := 0
	for _, info := range t.conns {
		info.mu.Lock()
		if info.handlers == 0 && info.state != http.StateIdle {
			// Headers still arriving (or not begun): nothing of the request was read.
			_ = info.conn.SetReadDeadline(now)
			cut++
		}
		for _, b := range info.bodies {
			b.cut.Store(true)
			_ = info.conn.SetReadDeadline(now)
			cut++
		}
		info.mu.Unlock()
	}
	if cut > 0 {
		slog.Info("shutting down: cut connections still sending a request", "connections", cut)
	}
}

// begin registers x's request with its connection, so shutdown can tell its phases apart,
// and puts its body under the body deadline.
func (t *connTracker) begin(x *exchange) {
	info := x.conn
	info.mu.Lock()
	defer info.mu.Unlock()
	info.handlers++
	if x.body.ReadCloser == nil {
		return
	}
	// Under the connection's lock, as shutdown's cut: whichever comes second sets the
	// deadline that holds.
	stopping := t.stopping.Load()
	x.body.guarded = true
	x.body.cut.Store(stopping)
	info.bodies = append(info.bodies, &x.body)
	if stopping {
		_ = info.conn.SetReadDeadline(time.Now())
	} else if t.bodyTimeout > 0 {
		_ = info.conn.SetReadDeadline(time.Now().Add(t.bodyTimeout))
	}
}

// end is begin undone when x's handler returned.
func (t *connTracker) end(x *exchange) {
	if x.body.guarded {
		x.body.finish(false)
	}
	info := x.conn
	info.mu.Lock()
	info.handlers--
	info.mu.Unlock()
}
