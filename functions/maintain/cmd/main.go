// Command maintain runs the maintenance function (one Knative Service, triggered by a
// PingSource at / or by operators at /api/v1/maintenance/run) and the legal-hold API.
package main

import (
	"context"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	function.Config
	Maintain lifecycle.ServiceConfig
}

func main() { web.Main("maintain", run) }

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	srv, err := function.NewServer(cfg.Config)
	if err != nil {
		return err
	}
	svc, closeDB, err := lifecycle.Open(ctx, cfg.DatabaseURL, cfg.Maintain, srv.Registry)
	if err != nil {
		return err
	}
	defer closeDB()
	// The function seals as well as it maintains: give it min-scale 1 so the seal interval
	// holds (the schedule's runs seal too, when it does scale to zero).
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go svc.Keeper().SealEvery(sctx)
	go svc.Keeper().VerifyEvery(sctx, cfg.Maintain.Integrity.VerifyInterval)
	h := maintain.New(svc, srv.Registry, srv.Auth.Authorizer, srv.Auth.Metrics)
	return srv.Serve(ctx, srv.Writable(svc.Ping), h.Routes, h.ScheduleRoute)
}
