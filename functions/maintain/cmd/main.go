// Command maintain runs the maintenance function (one Knative Service, triggered by a
// PingSource at / or by operators at /api/v1/maintenance/run) and the legal-hold API.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/shared/web/openapi"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL), as a role with auditstore_maintainer.
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	// RetentionClasses are the stored retention periods in days, ascending, ending with 2557.
	RetentionClasses string `envconfig:"RETENTION_CLASSES" default:"90,180,365,730,1095,1825,2557"`
	Serve            web.ServeConfig
	Auth             auth.Config
	Lifecycle        lifecycle.Config
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "maintain:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	classes, err := audit.ParseRetentionClasses(cfg.RetentionClasses)
	if err != nil {
		return fmt.Errorf("RETENTION_CLASSES: %w", err)
	}
	if err := cfg.Lifecycle.Validate(); err != nil {
		return err
	}
	ctx := context.Background()
	pool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: 4})
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := web.NewRegistry()
	az, err := auth.New(cfg.Auth, nil)
	if err != nil {
		return err
	}
	svc := maintain.New(pool, cfg.Lifecycle, classes, reg, az, auth.NewMetrics(reg))
	mux := http.NewServeMux()
	svc.Routes(mux)
	svc.ScheduleRoute(mux)
	web.Health(mux, store.New(pool).Ping)
	web.Metrics(mux, reg)
	openapi.Routes(mux)
	mux.HandleFunc("/", web.NotFound)
	return web.Serve(ctx, cfg.Serve, mux)
}
