// Command write runs the write function alone (one Knative Service).
package main

import (
	"context"
	"net/http"
	"os"
	"runtime/debug"

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
	// The write path makes short-lived garbage at a steady rate with a small live heap: half
	// as many collections (GOGC 200) cost the CPU under load a few percent less. The soft
	// limit makes the collector work harder well before the container's 512 MiB limit, which
	// many 5 MiB batches at once could otherwise approach. GOGC and GOMEMLIMIT in the
	// environment override both.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(384 << 20)
	}
	web.Main("write", run)
}

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	pool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.MaxConns})
	if err != nil {
		return err
	}
	defer pool.Close()
	s := store.New(pool)
	reg := web.NewRegistry()
	kit, err := auth.Setup(cfg.Auth, reg)
	if err != nil {
		return err
	}
	h, err := write.New(s, cfg.Write, reg, write.WithAuthorizer(kit.Authorizer, kit.Metrics), write.WithRateLimiter(kit.Limiter),
		write.WithRetentionPolicies(s), write.WithDeadLetters(s))
	if err != nil {
		return err
	}
	defer h.Close() // after the server stopped: finish queued commits
	mux := http.NewServeMux()
	h.Routes(mux)
	openapi.Routes(mux)
	web.Mount(mux, s.Ping, reg)
	return web.Serve(ctx, cfg.Serve, mux)
}
