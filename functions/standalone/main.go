// Command standalone runs every auditstore function in one process — write, query,
// maintenance with its schedule, legal holds — on one port, for `make run` and single-machine
// installs.
package main

import (
	"context"
	"net/http"
	"time"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
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
	// WriteMaxConns bounds the write path's connections.
	WriteMaxConns int32 `envconfig:"WRITE_MAX_CONNS" default:"8"`
	// QueryMaxConns bounds the query path's own pool, so reads cannot starve writes.
	QueryMaxConns int32 `envconfig:"QUERY_MAX_CONNS" default:"4"`
	// MaintenanceInterval is how often the process runs maintenance itself (0: never; use the
	// job or the maintain function instead).
	MaintenanceInterval time.Duration `envconfig:"MAINTENANCE_INTERVAL" default:"1h"`
	Serve               web.ServeConfig
	Auth                auth.Config
	Write               write.Config
	Query               query.Config
	Maintain            maintain.Config
}

func main() { web.Main("standalone", run) }

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	writePool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.WriteMaxConns})
	if err != nil {
		return err
	}
	defer writePool.Close()
	queryPool, err := store.Open(ctx, cfg.DatabaseURL, cfg.Query.PoolOptions(cfg.QueryMaxConns))
	if err != nil {
		return err
	}
	defer queryPool.Close()
	writeStore := store.New(writePool)

	reg := web.NewRegistry()
	kit, err := auth.Setup(cfg.Auth, reg)
	if err != nil {
		return err
	}
	wh, err := write.New(writeStore, cfg.Write, reg, write.WithAuthorizer(kit.Authorizer, kit.Metrics), write.WithRateLimiter(kit.Limiter),
		write.WithRetentionPolicies(writeStore), write.WithDeadLetters(writeStore))
	if err != nil {
		return err
	}
	defer wh.Close() // after the server stopped: finish queued commits
	// Reads are recorded through the write pool: the query pool's statement timeout is for reads.
	// One process signs and publishes: the public keys are the signing key's and the extra ones.
	_, keys, err := ledger.ParseKeys(cfg.Maintain.Integrity.SigningKey, cfg.Maintain.Integrity.PublicKeys)
	if err != nil {
		return err
	}
	queryStore := store.New(queryPool)
	qh, err := query.New(queryStore, cfg.Query, reg, query.WithAuthorizer(kit.Authorizer, kit.Metrics), query.WithReadAuditTo(writeStore),
		query.WithIntegrity(queryStore, keys))
	if err != nil {
		return err
	}
	defer qh.Close()
	ms, closeMaintain, err := maintain.Open(ctx, cfg.DatabaseURL, cfg.Maintain, reg, &kit)
	if err != nil {
		return err
	}
	defer closeMaintain()
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	if cfg.MaintenanceInterval > 0 {
		go ms.Every(mctx, cfg.MaintenanceInterval)
	}
	go ms.SealEvery(mctx)
	go ms.VerifyEvery(mctx, cfg.Maintain.Integrity.VerifyInterval)

	mux := http.NewServeMux()
	wh.Routes(mux)
	qh.Routes(mux)
	ms.Routes(mux)
	openapi.Routes(mux)
	web.Mount(mux, writeStore.Ping, reg)
	return web.Serve(ctx, cfg.Serve, mux)
}
