// Command maintain runs the maintenance function (one Knative Service, triggered by a
// PingSource at / or by operators at /api/v1/maintenance/run) and the legal-hold API.
package main

import (
	"context"
	"net/http"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/shared/web/openapi"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL), as a role with auditstore_maintainer.
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	Serve       web.ServeConfig
	Auth        auth.Config
	Maintain    maintain.Config
}

func main() { web.Main("maintain", run) }

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	reg := web.NewRegistry()
	kit, err := auth.Setup(cfg.Auth, reg)
	if err != nil {
		return err
	}
	svc, closeDB, err := maintain.Open(ctx, cfg.DatabaseURL, cfg.Maintain, reg, &kit)
	if err != nil {
		return err
	}
	defer closeDB()
	// The function seals as well as it maintains: give it min-scale 1 so the seal interval
	// holds (the schedule's runs seal too, when it does scale to zero).
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go svc.SealEvery(sctx)
	go svc.VerifyEvery(sctx, cfg.Maintain.Integrity.VerifyInterval)
	mux := http.NewServeMux()
	svc.Routes(mux)
	svc.ScheduleRoute(mux)
	openapi.Routes(mux)
	web.Mount(mux, svc.Ping, reg)
	return web.Serve(ctx, cfg.Serve, mux)
}
