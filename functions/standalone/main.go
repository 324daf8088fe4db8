// Command standalone runs every auditstore function in one process: the write and query APIs
// on one port, for `make run` and single-machine installs.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
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
	Serve         web.ServeConfig
	Write         write.Config
	Query         query.Config
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
	wh, err := write.New(writeStore, cfg.Write, reg)
	if err != nil {
		return err
	}
	defer wh.Close() // after the server stopped: finish queued commits
	qh, err := query.New(queryStore, cfg.Query, reg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	wh.Routes(mux)
	qh.Routes(mux)
	web.Health(mux, writeStore.Ping)
	web.Metrics(mux, reg)
	openapi.Routes(mux)
	mux.HandleFunc("/", web.NotFound)
	slog.Warn("AUTH_MODE=none: every caller is anonymous; for local use only")
	return web.Serve(ctx, cfg.Serve, mux)
}
