package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServeConfig is the listening part of every function's configuration.
type ServeConfig struct {
	// Port is the TCP port to listen on (Knative sets PORT).
	Port int `envconfig:"PORT" default:"8080"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight requests.
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s"`
	// ProfileAddr, when set (127.0.0.1:6060), serves Go's profiles (net/http/pprof) there, on
	// a listener of its own and never on PORT: for measuring a function under load. Off by
	// default, since a profile shows internals and costs CPU while it is taken.
	ProfileAddr string `envconfig:"PPROF_ADDR"`
	// ReadHeaderTimeout bounds how long a request's headers may take to arrive.
	ReadHeaderTimeout time.Duration `envconfig:"HTTP_READ_HEADER_TIMEOUT" default:"10s"`
	// BodyTimeout bounds how long a request's body may take to arrive after its headers: a
	// slower sender gets a 408 and its connection is closed (5 MiB in 30 s is 175 KB/s).
	BodyTimeout time.Duration `envconfig:"HTTP_BODY_TIMEOUT" default:"30s"`
	// IdleTimeout is how long a kept-alive connection may wait for its next request.
	IdleTimeout time.Duration `envconfig:"HTTP_IDLE_TIMEOUT" default:"120s"`
	// MaxConns bounds the open connections; one over it is answered 503 and closed at once.
	MaxConns int `envconfig:"HTTP_MAX_CONNECTIONS" default:"1024"`
	// MaxConnsPerClient bounds the open connections of one client IP address. Behind
	// Knative's queue-proxy every connection comes from the pod itself: keep it above the
	// Service's container concurrency.
	MaxConnsPerClient int `envconfig:"HTTP_MAX_CONNECTIONS_PER_CLIENT" default:"256"`
	// RefusalsPerSec is how many refused requests (400, 401, 403, 408, 413, 414, 415, 431)
	// a client gets answered at once each second, after a burst of RefusalBurst; beyond it
	// each refusal is held up to RefusalMaxWait before it is sent, so that a sender of
	// hostile input cannot take the machine from the others. Requests that are not refused
	// are never held.
	RefusalsPerSec float64 `envconfig:"HTTP_REFUSALS_PER_SEC" default:"20"`
	// RefusalBurst is the refusals a client gets answered at once before they are paced.
	RefusalBurst int `envconfig:"HTTP_REFUSAL_BURST" default:"40"`
	// RefusalMaxWait bounds how long one refusal is held.
	RefusalMaxWait time.Duration `envconfig:"HTTP_REFUSAL_MAX_WAIT" default:"1s"`
}

// check refuses settings that cannot work.
func (c ServeConfig) check() error {
	switch {
	case c.ReadHeaderTimeout <= 0:
		return errors.New("HTTP_READ_HEADER_TIMEOUT must be positive")
	case c.BodyTimeout <= 0:
		return errors.New("HTTP_BODY_TIMEOUT must be positive")
	case c.IdleTimeout <= 0:
		return errors.New("HTTP_IDLE_TIMEOUT must be positive")
	case c.MaxConns < 1:
		return errors.New("HTTP_MAX_CONNECTIONS must be at least 1")
	case c.MaxConnsPerClient < 1 || c.MaxConnsPerClient > c.MaxConns:
		return errors.New("HTTP_MAX_CONNECTIONS_PER_CLIENT must be between 1 and HTTP_MAX_CONNECTIONS")
	case c.RefusalsPerSec <= 0 || c.RefusalBurst < 1 || c.RefusalMaxWait < 0:
		return errors.New("HTTP_REFUSALS_PER_SEC must be positive, HTTP_REFUSAL_BURST at least 1 and HTTP_REFUSAL_MAX_WAIT not negative")
	}
	return nil
}

// DefaultServeConfig is ServeConfig with its defaults, for tests and tools that do not read
// the environment.
func DefaultServeConfig() ServeConfig {
	return ServeConfig{Port: 8080, ShutdownTimeout: 30 * time.Second, ReadHeaderTimeout: 10 * time.Second,
		BodyTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxConns: 1024, MaxConnsPerClient: 256,
		RefusalsPerSec: 20, RefusalBurst: 40, RefusalMaxWait: time.Second}
}

// Serve serves h on cfg.Port until ctx ends or SIGTERM/SIGINT arrives, then stops accepting
// connections and waits for in-flight requests (up to ShutdownTimeout) before returning.
func Serve(ctx context.Context, cfg ServeConfig, h http.Handler) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", cfg.Port))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", cfg.Port, err)
	}
	return ServeListener(ctx, cfg, ln, h)
}

// ServeListener is Serve on an existing listener (tests use port 0). Every request is logged
// once (RequestLog), its query string is checked (Query), its body must arrive within
// cfg.BodyTimeout, and refusals a client sends too many of are held. Connections are bounded in total and per client. On shutdown, connections
// still sending a request are cut and requests whose body has arrived are answered.
func ServeListener(ctx context.Context, cfg ServeConfig, ln net.Listener, h http.Handler) error {
	if err := cfg.check(); err != nil {
		return err
	}
	conns := newConnTracker(cfg.BodyTimeout)
	refusals := newRefusalPacer(cfg.RefusalsPerSec, cfg.RefusalBurst, cfg.RefusalMaxWait)
	srv := &http.Server{
		Handler:           &front{h: h, log: slog.Default(), conns: conns, refusals: refusals, checkQuery: true},
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ConnContext:       conns.connContext,
		ConnState:         conns.connState,
	}
	srv.RegisterOnShutdown(conns.shutdown)
	ln = &connLimits{Listener: ln, max: cfg.MaxConns, perClient: cfg.MaxConnsPerClient, client: map[string]int{}}
	if cfg.ProfileAddr != "" {
		stopProfiles, err := serveProfiles(cfg.ProfileAddr)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	slog.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	slog.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveProfiles serves net/http/pprof's handlers on addr until the returned function is
// called. They are registered on a mux of their own: importing net/http/pprof for its side
// effect would put them on http.DefaultServeMux.
func serveProfiles(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	slog.Warn("serving profiles (PPROF_ADDR); for measurement only", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// Main runs a command's run function with structured JSON logs (each line logged with a
// request's context carries its request_id) and exits non-zero with a one-line message naming
// the command when it fails (a bad setting, an unusable port).
func Main(name string, run func(ctx context.Context) error) {
	logs := newLineWriter(os.Stderr)
	slog.SetDefault(slog.New(NewLogHandler(logs, nil)))
	err := run(context.Background())
	logs.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Mount adds what every function serves besides its API: health, /metrics, and a problem+json
// 404 for every other path.
func Mount(mux *http.ServeMux, ready func(ctx context.Context) error, reg *prometheus.Registry) {
	Health(mux, ready)
	Metrics(mux, reg)
	mux.HandleFunc("/", NotFound)
}
