// Command standalone runs every auditstore function in one process — write, query,
// maintenance with its schedule, legal holds — on one port, for `make run` and single-machine
// installs.
package main

import (
	"cmp"
	"context"
	"time"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	function.Config
	// WriteMaxConns bounds the write path's connections.
	WriteMaxConns int32 `envconfig:"WRITE_MAX_CONNS" default:"8"`
	// QueryMaxConns bounds the query path's own pool, so reads cannot starve writes.
	QueryMaxConns int32 `envconfig:"QUERY_MAX_CONNS" default:"4"`
	// MaintenanceInterval is how often the process runs maintenance itself (0: never; use the
	// job or the maintain function instead).
	MaintenanceInterval time.Duration `envconfig:"MAINTENANCE_INTERVAL" default:"1h"`
	// Sealing is whether the process seals new events into the integrity log. Off where the
	// maintain function seals (the process then serves the API only): one sealer is enough.
	Sealing bool `envconfig:"SEALING" default:"true"`
	// MaintainDatabaseURL is the database URL of maintenance and legal holds (a role with
	// auditstore_maintainer), so the write and query paths can use a role without it; unset,
	// DATABASE_URL.
	MaintainDatabaseURL string `envconfig:"MAINTAIN_DATABASE_URL"`
	Write               write.Config
	Query               query.Config
	Maintain            lifecycle.ServiceConfig
}

func main() { web.Main("standalone", run) }

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	writeStore, closeWrites, err := function.OpenStore(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: cfg.WriteMaxConns, Writes: true})
	if err != nil {
		return err
	}
	defer closeWrites()
	queryStore, closeQueries, err := function.OpenStore(ctx, cfg.DatabaseURL, cfg.Query.PoolOptions(cfg.QueryMaxConns))
	if err != nil {
		return err
	}
	defer closeQueries()
	replica, _, closeReplica, err := query.OpenReplica(ctx, cfg.DatabaseURL, cfg.Query, cfg.QueryMaxConns, queryStore)
	if err != nil {
		return err
	}
	defer closeReplica()

	srv, err := function.NewServer(cfg.Config)
	if err != nil {
		return err
	}
	wh, err := write.Open(ctx, srv, writeStore, cfg.Write)
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
	qh, err := query.Open(srv, queryStore, writeStore, keys, cfg.Query, replica...)
	if err != nil {
		return err
	}
	defer qh.Close()
	ms, closeMaintain, err := lifecycle.Open(ctx, cmp.Or(cfg.MaintainDatabaseURL, cfg.DatabaseURL), cfg.Maintain, srv.Registry)
	if err != nil {
		return err
	}
	defer closeMaintain()
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	if cfg.MaintenanceInterval > 0 {
		go ms.Every(mctx, cfg.MaintenanceInterval)
	}
	if cfg.Sealing {
		go ms.Keeper().SealEvery(mctx)
	}
	go ms.Keeper().VerifyEvery(mctx, cfg.Maintain.Integrity.VerifyInterval)

	mh := maintain.New(ms, srv.Registry, srv.Auth.Authorizer, srv.Auth.Metrics)
	return srv.Serve(ctx, srv.Writable(writeStore.PingWritable), wh.Routes, qh.Routes, mh.Routes)
}
