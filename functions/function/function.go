// Package function is what the functions' commands share: the configuration every function
// reads, the metrics registry and auth kit every function is built with, the write and query
// functions as they are deployed, and serving their routes. The commands (one function each,
// or all in one process) only wire these together.
package function

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/deadletter"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/shared/web/openapi"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the configuration every function's command reads. A command embeds it in its own
// config struct: envconfig gives an embedded struct's fields no prefix, so the variables keep
// their names.
type Config struct {
	// DatabaseURL names the database (postgres:// URL); the maintain function's role has
	// auditstore_maintainer.
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	// Serve is where the function listens and how it shuts down.
	Serve web.ServeConfig
	// Auth is how callers are authenticated and how fast each may write.
	Auth auth.Config
}

// Server holds what a command's functions are built with and served by.
type Server struct {
	// Registry is the metrics registry the functions register with, served at /metrics.
	Registry *prometheus.Registry
	// Auth authenticates and rate-limits callers; its metrics are in Registry.
	Auth  auth.Kit
	serve web.ServeConfig
}

// NewServer checks cfg's auth settings and makes a Server.
func NewServer(cfg Config) (*Server, error) {
	reg := web.NewRegistry()
	kit, err := auth.Setup(cfg.Auth, reg)
	if err != nil {
		return nil, err
	}
	return &Server{Registry: reg, Auth: kit, serve: cfg.Serve}, nil
}

// OpenStore opens a pool on databaseURL and returns a store over it, and a function that
// closes the pool.
func OpenStore(ctx context.Context, databaseURL string, opts store.PoolOptions) (*store.Store, func(), error) {
	pool, err := store.Open(ctx, databaseURL, opts)
	if err != nil {
		return nil, nil, err
	}
	return store.New(pool), pool.Close, nil
}

// OpenReplica opens the query pool on the streaming replica that cfg's QUERY_DATABASE_URL
// names, when it names another database than databaseURL, and returns the option that makes
// the query function read from it (primary, the query pool on databaseURL, answers what it
// cannot), the query function's readiness (either database answers: one is enough to read),
// and a function that closes the pool. Without a replica: no option, and primary's Ping.
func OpenReplica(ctx context.Context, databaseURL string, cfg query.Config, maxConns int32, primary *store.Store) ([]query.Option, func(context.Context) error, func(), error) {
	if cfg.DatabaseURL == "" || cfg.DatabaseURL == databaseURL {
		return nil, func(ctx context.Context) error { return DatabaseState(primary.Ping(ctx)) }, func() {}, nil
	}
	replica, closePool, err := OpenStore(ctx, cfg.DatabaseURL, cfg.PoolOptions(maxConns))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("QUERY_DATABASE_URL: %w", err)
	}
	ready := func(ctx context.Context) error {
		err := primary.Ping(ctx)
		if err != nil && replica.Ping(ctx) == nil {
			return nil
		}
		return DatabaseState(err)
	}
	return []query.Option{query.WithReplica(replica, primary)}, ready, closePool, nil
}

// Write builds the write function over s: guarded and rate-limited by srv.Auth, with the
// retention policies of s, and its dead letters in the bucket at cfg.DeadLetterURL (else in s).
func (srv *Server) Write(ctx context.Context, s *store.Store, cfg write.Config) (*write.Handler, error) {
	var letters write.DeadLetterStore = s
	if cfg.DeadLetterURL != "" {
		b, err := deadletter.Open(ctx, cfg.DeadLetterURL)
		if err != nil {
			return nil, err
		}
		letters = b
	}
	h, err := write.New(s, cfg, srv.Registry, write.WithAuthorizer(srv.Auth.Authorizer, srv.Auth.Metrics),
		write.WithRateLimiter(srv.Auth.Limiter), write.WithRetentionPolicies(s), write.WithDeadLetters(letters))
	if err != nil {
		if c, ok := letters.(io.Closer); ok {
			_ = c.Close()
		}
		return nil, err
	}
	return h, nil
}

// Query builds the query function reading from s, the primary (and its integrity log),
// guarded by srv.Auth, with opts (OpenReplica's). Reads are recorded through audits, which may
// be another pool than s: a query pool's statement timeout is for reads. keys are the
// checkpoint keys it publishes.
func (srv *Server) Query(s, audits *store.Store, keys []integrity.PublicKey, cfg query.Config, opts ...query.Option) (*query.Handler, error) {
	return query.New(s, cfg, srv.Registry, append([]query.Option{query.WithAuthorizer(srv.Auth.Authorizer, srv.Auth.Metrics),
		query.WithReadAuditTo(audits), query.WithIntegrity(s, keys)}, opts...)...)
}

// Writable returns the readiness check of a function that writes: ping (the store's
// PingWritable), with the database's state named (web.NotReady: "read-only" when it answers but
// takes no writes, a standby or a demoted primary; "unavailable" when it does not answer) and
// the gauge audit_database_read_only saying whether it is read-only.
func (srv *Server) Writable(ping func(context.Context) error) func(context.Context) error {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "audit_database_read_only",
		Help: "1 while the last readiness check found the database read-only (a standby or a demoted primary): writes are answered 503."})
	srv.Registry.MustRegister(g)
	return func(ctx context.Context) error {
		err := ping(ctx)
		switch {
		case errors.Is(err, store.ErrReadOnly):
			g.Set(1)
		case err == nil:
			g.Set(0)
		}
		return DatabaseState(err)
	}
}

// DatabaseState names what a ping of the database found (nil: it answers) for the readiness
// answer: a database that is away or read-only is a state the function serves through (its
// requests are answered 503 with Retry-After), not a reason to leave rotation.
func DatabaseState(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrReadOnly):
		return &web.NotReady{State: "read-only", Err: err}
	}
	return &web.NotReady{State: "unavailable", Err: err}
}

// Serve serves the routes until ctx ends or the process is told to stop (web.Serve). Each of
// routes adds a function's routes to the mux (Mux).
func (srv *Server) Serve(ctx context.Context, ready func(context.Context) error, routes ...func(*http.ServeMux)) error {
	return web.Serve(ctx, srv.serve, Mux(ready, srv.Registry, routes...))
}

// Mux routes what each of routes adds, the OpenAPI document, and what every function serves
// besides its API (web.Mount): health (ready answers readiness), reg at /metrics, and a
// problem+json 404 for every other path.
func Mux(ready func(context.Context) error, reg *prometheus.Registry, routes ...func(*http.ServeMux)) *http.ServeMux {
	mux := http.NewServeMux()
	for _, add := range routes {
		add(mux)
	}
	openapi.Routes(mux)
	web.Mount(mux, ready, reg)
	return mux
}
