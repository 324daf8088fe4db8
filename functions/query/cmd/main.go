// Command query runs the query function alone (one Knative Service).
package main

import (
	"context"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	function.Config
	// MaxConns bounds the pool.
	MaxConns int32 `envconfig:"QUERY_MAX_CONNS" default:"4"`
	Query    query.Config
}

func main() { web.Main("query", run) }

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	s, closeDB, err := function.OpenStore(ctx, cfg.DatabaseURL, cfg.Query.PoolOptions(cfg.MaxConns))
	if err != nil {
		return err
	}
	defer closeDB()
	replica, ready, closeReplica, err := query.OpenReplica(ctx, cfg.DatabaseURL, cfg.Query, cfg.MaxConns, s)
	if err != nil {
		return err
	}
	defer closeReplica()
	srv, err := function.NewServer(cfg.Config)
	if err != nil {
		return err
	}
	// The key that signs exports is published with the others.
	_, keys, err := ledger.ParseKeys(cfg.Query.SigningKey, cfg.Query.IntegrityPublicKeys)
	if err != nil {
		return err
	}
	h, err := query.Open(srv, s, s, keys, cfg.Query, replica...)
	if err != nil {
		return err
	}
	defer h.Close()
	return srv.Serve(ctx, ready, h.Routes)
}
