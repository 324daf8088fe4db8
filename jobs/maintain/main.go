// Command maintain runs one maintenance run and exits (a Kubernetes CronJob with
// concurrencyPolicy: Forbid; the advisory lock also keeps overlapping runs apart). It prints
// the run's report as JSON and exits non-zero when a step failed.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL), as a role with auditstore_maintainer.
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	// RetentionClasses are the stored retention periods in days, ascending, ending with 2557.
	RetentionClasses string `envconfig:"RETENTION_CLASSES" default:"90,180,365,730,1095,1825,2557"`
	Lifecycle        lifecycle.Config
}

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		fail(err)
	}
	classes, err := audit.ParseRetentionClasses(cfg.RetentionClasses)
	if err != nil {
		fail(fmt.Errorf("RETENTION_CLASSES: %w", err))
	}
	if err := cfg.Lifecycle.Validate(); err != nil {
		fail(err)
	}
	ctx := context.Background()
	pool, err := store.Open(ctx, cfg.DatabaseURL, store.PoolOptions{MaxConns: 2})
	if err != nil {
		fail(err)
	}
	defer pool.Close()
	rep, err := maintain.New(pool, cfg.Lifecycle, classes, nil, nil, nil).Run(ctx)
	if errors.Is(err, store.ErrLocked) {
		slog.Info("another maintenance run is in progress; nothing to do")
		return
	}
	_ = json.NewEncoder(os.Stdout).Encode(rep)
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "maintain:", err)
	os.Exit(1)
}
