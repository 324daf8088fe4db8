// Package standalonetest serves auditstore's functions as its standalone process does — the
// write, query and maintain routes on one listener, through web.ServeListener, with the
// configuration the process reads — with static tokens, for tests that talk to the whole API
// as a client does. Background work the process schedules (maintenance, sealing,
// verification) is left to the test, which asks for it as an operator does
// (POST /api/v1/maintenance/run seals first), so what it sees does not depend on timing.
//
// StartBinary runs a built standalone command instead (another commit's, say), behind the same
// tokens, so one test can tell how two versions answer.
package standalonetest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/fnproc"
	"github.com/kelseyhightower/envconfig"
)

// Tokens of the server's three principals (named writer, reader and admin).
const (
	WriterToken = "writer-token"
	ReaderToken = "reader-token"
	AdminToken  = "admin-token"
)

// Config is what the standalone process reads from its environment.
type Config struct {
	Serve    web.ServeConfig
	Auth     auth.Config
	Write    write.Config
	Query    query.Config
	Maintain lifecycle.ServiceConfig
}

// Server is a running server.
type Server struct {
	// URL is where it listens (http://127.0.0.1:port).
	URL string
	// Addr is its listening address.
	Addr   string
	stop   func() error
	closes []func()

	once    sync.Once
	stopErr error
}

// Start serves the write, query and maintain functions over databaseURL with the configuration
// the standalone process reads from the environment (defaults included), static tokens, and
// what change makes of it (when set). The server listens on a free loopback port (the
// configured one is ignored); dir holds the token file. Stop ends it.
func Start(ctx context.Context, databaseURL, dir string, change func(*Config)) (*Server, error) {
	tokens, err := writeTokens(dir)
	if err != nil {
		return nil, err
	}
	var cfg Config
	if err := envconfig.Process("", &cfg); err != nil {
		return nil, err
	}
	cfg.Auth.Mode, cfg.Auth.TokensFile = "static", tokens
	if change != nil {
		change(&cfg)
	}
	srv, err := function.NewServer(function.Config{DatabaseURL: databaseURL, Serve: cfg.Serve, Auth: cfg.Auth})
	if err != nil {
		return nil, err
	}
	s := &Server{}
	fail := func(err error) (*Server, error) { s.close(); return nil, err }
	ws, closeW, err := function.OpenStore(ctx, databaseURL, store.PoolOptions{MaxConns: 8, Writes: true})
	if err != nil {
		return nil, err
	}
	s.closes = append(s.closes, closeW)
	qs, closeQ, err := function.OpenStore(ctx, databaseURL, cfg.Query.PoolOptions(4))
	if err != nil {
		return fail(err)
	}
	s.closes = append(s.closes, closeQ)
	wh, err := write.Open(ctx, srv, ws, cfg.Write)
	if err != nil {
		return fail(err)
	}
	s.closes = append([]func(){wh.Close}, s.closes...)
	_, keys, err := ledger.ParseKeys(cfg.Maintain.Integrity.SigningKey, cfg.Maintain.Integrity.PublicKeys)
	if err != nil {
		return fail(err)
	}
	qh, err := query.Open(srv, qs, ws, keys, cfg.Query)
	if err != nil {
		return fail(err)
	}
	s.closes = append([]func(){qh.Close}, s.closes...)
	msvc, closeM, err := lifecycle.Open(ctx, databaseURL, cfg.Maintain, srv.Registry)
	if err != nil {
		return fail(err)
	}
	s.closes = append(s.closes, closeM)
	ms := maintain.New(msvc, srv.Registry, srv.Auth.Authorizer, srv.Auth.Metrics)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	s.Addr = ln.Addr().String()
	s.URL = "http://" + s.Addr
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() {
		served <- web.ServeListener(sctx, cfg.Serve, ln, function.Mux(srv.Writable(ws.PingWritable), srv.Registry, wh.Routes, qh.Routes, ms.Routes))
	}()
	s.stop = func() error { cancel(); return <-served }
	return s, nil
}

// StartBinary runs bin, a built standalone command, on databaseURL behind the same tokens as
// Start (dir holds the token file and the process's log), with env added to its environment
// (KEY=value), and waits until it is ready. Its scheduled maintenance is off.
func StartBinary(ctx context.Context, bin, databaseURL, dir string, env ...string) (*Server, error) {
	tokens, err := writeTokens(dir)
	if err != nil {
		return nil, err
	}
	defaults := []string{"MAINTENANCE_INTERVAL=0", "QUERY_CURSOR_SECRET=test"}
	env = append([]string{"DATABASE_URL=" + databaseURL, "AUTH_MODE=static", "AUTH_TOKENS_FILE=" + tokens}, env...)
	p, err := fnproc.Start(ctx, "standalone", bin, defaults, env, filepath.Join(dir, "standalone.log"))
	if err != nil {
		return nil, err
	}
	return &Server{URL: p.URL, Addr: p.URL[len("http://"):], stop: p.Stop}, nil
}

func writeTokens(dir string) (string, error) {
	path := filepath.Join(dir, "tokens.yaml")
	return path, os.WriteFile(path, []byte(`tokens:
  - {principal: writer, roles: [writer], token: `+WriterToken+`}
  - {principal: reader, roles: [reader], token: `+ReaderToken+`}
  - {principal: admin, roles: [admin], token: `+AdminToken+`}
`), 0o600)
}

// Stop shuts the server down as SIGTERM does and returns what serving returned (the same
// each time it is called).
func (s *Server) Stop() error {
	s.once.Do(func() {
		s.stopErr = s.stop()
		s.close()
	})
	return s.stopErr
}

func (s *Server) close() {
	for _, c := range s.closes {
		c()
	}
}
