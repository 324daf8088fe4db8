// Package hostile runs auditstore as its standalone process does (the write and query functions
// on one listener, through web.ServeListener, with static tokens) and attacks it the way the
// hostile-input suite and its benchmark do: bodies nested deep, huge or slow, query strings
// with more parameters than a parser takes, floods of connections.
package hostile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/functions/function"
	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/kelseyhightower/envconfig"
)

// Tokens of the server's three principals.
const (
	WriterToken = "writer-token"
	ReaderToken = "reader-token"
	AdminToken  = "admin-token"
)

// Server is a running standalone-like server.
type Server struct {
	// URL is where it listens (http://127.0.0.1:port).
	URL string
	// Addr is its listening address.
	Addr   string
	stop   context.CancelFunc
	served chan error
	closes []func()

	once    sync.Once
	stopErr error
}

// Start serves the write and query functions over databaseURL with serve's HTTP settings
// (its port is ignored: the server listens on a free loopback port). dir holds the token
// file. Stop ends it.
func Start(ctx context.Context, databaseURL, dir string, serve web.ServeConfig) (*Server, error) {
	tokens := filepath.Join(dir, "tokens.yaml")
	err := os.WriteFile(tokens, []byte(`tokens:
  - {principal: writer, roles: [writer], token: `+WriterToken+`}
  - {principal: reader, roles: [reader], token: `+ReaderToken+`}
  - {principal: admin, roles: [admin], token: `+AdminToken+`}
`), 0o600)
	if err != nil {
		return nil, err
	}
	var wcfg write.Config
	var qcfg query.Config
	var acfg auth.Config
	for _, c := range []any{&wcfg, &qcfg, &acfg} {
		if err := envconfig.Process("", c); err != nil {
			return nil, err
		}
	}
	acfg.Mode, acfg.TokensFile = "static", tokens
	// The attacks must reach the parsers, not the rate limit.
	acfg.RateLimit, acfg.RateBurst = 1e6, 1e6
	qcfg.AuditReads = false
	srv, err := function.NewServer(function.Config{DatabaseURL: databaseURL, Serve: serve, Auth: acfg})
	if err != nil {
		return nil, err
	}
	s := &Server{served: make(chan error, 1)}
	ws, closeW, err := function.OpenStore(ctx, databaseURL, store.PoolOptions{MaxConns: 8})
	if err != nil {
		return nil, err
	}
	s.closes = append(s.closes, closeW)
	qs, closeQ, err := function.OpenStore(ctx, databaseURL, qcfg.PoolOptions(4))
	if err != nil {
		s.close()
		return nil, err
	}
	s.closes = append(s.closes, closeQ)
	wh, err := srv.Write(ctx, ws, wcfg)
	if err != nil {
		s.close()
		return nil, err
	}
	s.closes = append([]func(){wh.Close}, s.closes...)
	qh, err := srv.Query(qs, ws, nil, qcfg)
	if err != nil {
		s.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		return nil, err
	}
	s.Addr = ln.Addr().String()
	s.URL = "http://" + s.Addr
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	go func() {
		s.served <- web.ServeListener(sctx, serve, ln, function.Mux(ws.Ping, srv.Registry, wh.Routes, qh.Routes))
	}()
	return s, nil
}

// Stop shuts the server down as SIGTERM does and returns what serving returned (the same
// each time it is called).
func (s *Server) Stop() error {
	s.once.Do(func() {
		s.stop()
		s.stopErr = <-s.served
		s.close()
	})
	return s.stopErr
}

func (s *Server) close() {
	for _, c := range s.closes {
		c()
	}
}

// Event is a valid JSON event whose event_data holds pad bytes of text.
func Event(correlationID string, pad int) []byte {
	return []byte(`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"` + correlationID +
		`","event_data":{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"note":"` +
		strings.Repeat("x", pad) + `"}}}`)
}

// DeepEvent is an event whose event_data nests objects depth levels deep.
func DeepEvent(depth int) []byte {
	return []byte(`{"event_type":"a.b","event_outcome":"success","correlation_id":"c","event_data":` +
		strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + `}`)
}

// DeepArray is a body that opens size/2 arrays and closes them: the deepest JSON of that size.
func DeepArray(size int) []byte {
	return []byte(strings.Repeat("[", size/2) + strings.Repeat("]", size/2))
}

// ManyParams is a query string of n times name=value.
func ManyParams(name, value string, n int) string {
	return strings.TrimSuffix(strings.Repeat(name+"="+value+"&", n), "&")
}

// Post sends body to path with a token and Content-Type application/json, and returns the
// status and the answer's body.
func Post(c *http.Client, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return do(c, req)
}

// Get asks for url with a token.
func Get(c *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// SlowBody opens a connection from local (an address of this host, so that a test can be one
// client and the attacker another) and sends a POST whose body of n bytes arrives one byte
// every interval. It returns the status line the server answered with ("" when it closed the
// connection without one) once the server answers or closes.
func SlowBody(addr string, local net.IP, n int, interval time.Duration) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /api/v1/audit/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", WriterToken, n)
	if err != nil {
		return "", err
	}
	answered := make(chan string, 1)
	go func() {
		line := make([]byte, 12)
		if _, err := io.ReadFull(c, line); err != nil {
			answered <- ""
			return
		}
		answered <- string(line)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for range n {
		select {
		case l := <-answered:
			return l, nil
		case <-t.C:
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			return <-answered, nil
		}
	}
	return <-answered, nil
}

// Hold opens a connection from local and keeps it open, sending nothing, until ctx ends or
// the server closes it; it reports what the server sent first (a refusal) or "" when it
// sent nothing.
func Hold(ctx context.Context, addr string, local net.IP) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	go func() {
		<-ctx.Done()
		_ = c.Close()
	}()
	line := make([]byte, 12)
	if _, err := io.ReadFull(c, line); err != nil {
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return "", nil
		}
		return "", nil
	}
	return string(line), nil
}
