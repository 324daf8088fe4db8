// Command query runs the query function alone (one Knative Service).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/auditstore/auditstore/functions/query"
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
	MaxConns int32 `envconfig:"QUERY_MAX_CONNS" default:"4"`
	// AuditReads records every query and export as an auditstore.query.executed event.
	AuditReads bool `envconfig:"QUERY_AUDIT_READS" default:"true"`
	Serve      web.ServeConfig
	Auth       auth.Config
	Query      query.Config
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	ctx := context.Background()
	pool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.MaxConns, StatementTimeout: cfg.Query.Timeout})
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
	opts := []query.Option{query.WithAuthorizer(az, auth.NewMetrics(reg))}
	if cfg.AuditReads {
		rec := query.NewReadRecorder(s, "auditstore-query", reg)
		defer rec.Close()
		opts = append(opts, query.WithReadAudit(rec))
	}
	h, err := query.New(s, cfg.Query, reg, opts...)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	web.Health(mux, s.Ping)
	web.Metrics(mux, reg)
	openapi.Routes(mux)
	mux.HandleFunc("/", web.NotFound)
	return web.Serve(ctx, cfg.Serve, mux)
}
