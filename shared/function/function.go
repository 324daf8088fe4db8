// Package function is what the functions' commands share: the configuration every function
// reads, the metrics registry and auth kit every function is built with, the readiness of a
// function over the database, and serving their routes. The commands (one function each, or
// all in one process) only wire these and the functions together; each function builds itself
// from a Server (write.Open, query.Open, maintain.New).
package function

import (
	"context"
	"errors"
	"net/http"

	"github.com/auditstore/auditstore/shared/auth"
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

// OpenStore opens a store on a pool of its own on databaseURL (store.Connect), and returns a
// function that closes the pool.
func OpenStore(ctx context.Context, databaseURL string, opts store.PoolOptions) (*store.Store, func(), error) {
	s, err := store.Connect(ctx, databaseURL, opts)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
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
