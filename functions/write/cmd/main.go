// Command write runs the write function alone (one Knative Service).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/shared/web/openapi"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL).
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	// MaxConns bounds the pool.
	MaxConns int32 `envconfig:"WRITE_MAX_CONNS" default:"8"`
	Serve    web.ServeConfig
	Auth     auth.Config
	Write    write.Config
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "write:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	ctx := context.Background()
	pool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.MaxConns})
	if err != nil {
		return err
	}
	defer pool.Close()
	s := store.New(pool)
	reg := web.NewRegistry()
	az, err := auth.New(cfg.Auth, nil)
	if err != nil {
		return err
	}
	if cfg.Auth.RateLimit <= 0 || cfg.Auth.RateBurst < 1 {
		return fmt.Errorf("RATE_LIMIT_EVENTS_PER_SEC must be positive and RATE_LIMIT_BURST at least 1")
	}
	h, err := write.New(s, cfg.Write, reg, write.WithAuthorizer(az, auth.NewMetrics(reg)),
		write.WithRateLimiter(auth.NewRateLimiter(cfg.Auth.RateLimit, cfg.Auth.RateBurst)))
	if err != nil {
		return err
	}
	defer h.Close() // after the server stopped: finish queued commits
	mux := http.NewServeMux()
	h.Routes(mux)
	web.Health(mux, s.Ping)
	web.Metrics(mux, reg)
	openapi.Routes(mux)
	mux.HandleFunc("/", web.NotFound)
	return web.Serve(ctx, cfg.Serve, mux)
}
