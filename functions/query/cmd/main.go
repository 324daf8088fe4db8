// Command query runs the query function alone (one Knative Service).
package main

import (
	"context"
	"net/http"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/ledger"
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
	Serve    web.ServeConfig
	Auth     auth.Config
	Query    query.Config
}

func main() { web.Main("query", run) }

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	pool, err := store.Open(ctx, cfg.DatabaseURL, cfg.Query.PoolOptions(cfg.MaxConns))
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
	_, keys, err := ledger.ParseKeys("", cfg.Query.IntegrityPublicKeys)
	if err != nil {
		return err
	}
	h, err := query.New(s, cfg.Query, reg, query.WithAuthorizer(kit.Authorizer, kit.Metrics), query.WithReadAuditTo(s),
		query.WithIntegrity(s, keys))
	if err != nil {
		return err
	}
	defer h.Close()
	mux := http.NewServeMux()
	h.Routes(mux)
	openapi.Routes(mux)
	web.Mount(mux, s.Ping, reg)
	return web.Serve(ctx, cfg.Serve, mux)
}
