// Command maintain runs one maintenance run and exits (a Kubernetes CronJob with
// concurrencyPolicy: Forbid; the advisory lock also keeps overlapping runs apart). It prints
// the run's report as JSON and exits non-zero when a step failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"

	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL), as a role with auditstore_maintainer.
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	Maintain    lifecycle.ServiceConfig
}

func main() { web.Main("maintain", run) }

func run(ctx context.Context) error {
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	svc, closeDB, err := lifecycle.Open(ctx, cfg.DatabaseURL, cfg.Maintain, nil)
	if err != nil {
		return err
	}
	defer closeDB()
	rep, err := svc.Run(ctx)
	if errors.Is(err, store.ErrLocked) {
		slog.Info("another maintenance run is in progress; nothing to do")
		return nil
	}
	if encErr := json.NewEncoder(os.Stdout).Encode(rep); encErr != nil {
		return encErr
	}
	return err
}
