// Command standalone runs every auditstore function in one process: the write and query APIs
// on one port, for `make run` and single-machine installs.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/shared/web/openapi"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL).
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	// WriteMaxConns bounds the write path's connections.
	WriteMaxConns int32 `envconfig:"WRITE_MAX_CONNS" default:"8"`
	// QueryMaxConns bounds the query path's own pool, so reads cannot starve writes.
	QueryMaxConns int32 `envconfig:"QUERY_MAX_CONNS" default:"4"`
	// MaintenanceInterval is how often the process runs maintenance itself (0: never; use the
	// job or the maintain function instead).
	MaintenanceInterval time.Duration `envconfig:"MAINTENANCE_INTERVAL" default:"1h"`
	// RetentionClasses are the stored retention periods in days, ascending, ending with 2557.
	RetentionClasses string `envconfig:"RETENTION_CLASSES" default:"90,180,365,730,1095,1825,2557"`
	Lifecycle        lifecycle.Config
	// AuditReads records every query and export as an auditstore.query.executed event.
	AuditReads bool `envconfig:"QUERY_AUDIT_READS" default:"true"`
	Serve      web.ServeConfig
	Auth       auth.Config
	Write      write.Config
	Query      query.Config
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "standalone:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	ctx := context.Background()
	writePool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.WriteMaxConns})
	if err != nil {
		return err
	}
	defer writePool.Close()
	queryPool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.QueryMaxConns, StatementTimeout: cfg.Query.Timeout})
	if err != nil {
		return err
	}
	defer queryPool.Close()
	writeStore, queryStore := store.New(writePool), store.New(queryPool)

	reg := web.NewRegistry()
	az, err := auth.New(cfg.Auth, nil)
	if err != nil {
		return err
	}
	if cfg.Auth.RateLimit <= 0 || cfg.Auth.RateBurst < 1 {
		return fmt.Errorf("RATE_LIMIT_EVENTS_PER_SEC must be positive and RATE_LIMIT_BURST at least 1")
	}
	am := auth.NewMetrics(reg)
	wh, err := write.New(writeStore, cfg.Write, reg, write.WithAuthorizer(az, am),
		write.WithRateLimiter(auth.NewRateLimiter(cfg.Auth.RateLimit, cfg.Auth.RateBurst)))
	if err != nil {
		return err
	}
	defer wh.Close() // after the server stopped: finish queued commits
	qopts := []query.Option{query.WithAuthorizer(az, am)}
	if cfg.AuditReads {
		rec := query.NewReadRecorder(writeStore, "auditstore-query", reg)
		defer rec.Close()
		qopts = append(qopts, query.WithReadAudit(rec))
	}
	qh, err := query.New(queryStore, cfg.Query, reg, qopts...)
	if err != nil {
		return err
	}
	classes, err := audit.ParseRetentionClasses(cfg.RetentionClasses)
	if err != nil {
		return fmt.Errorf("RETENTION_CLASSES: %w", err)
	}
	if err := cfg.Lifecycle.Validate(); err != nil {
		return err
	}
	maintainPool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: 2})
	if err != nil {
		return err
	}
	defer maintainPool.Close()
	ms := maintain.New(maintainPool, cfg.Lifecycle, classes, reg, az, am)
	if cfg.MaintenanceInterval > 0 {
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		go ms.Every(mctx, cfg.MaintenanceInterval)
	}

	mux := http.NewServeMux()
	wh.Routes(mux)
	qh.Routes(mux)
	ms.Routes(mux)
	web.Health(mux, writeStore.Ping)
	web.Metrics(mux, reg)
	openapi.Routes(mux)
	mux.HandleFunc("/", web.NotFound)
	return web.Serve(ctx, cfg.Serve, mux)
}
