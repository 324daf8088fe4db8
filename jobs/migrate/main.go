// Command migrate applies auditstore's migrations to DATABASE_URL and exits: the `make migrate`
// step and the Kubernetes Job. Functions never migrate on start-up, because parallel
// instances would race.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/auditstore/auditstore/migrations"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL).
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
}

func main() {
	down := flag.Bool("down", false, "revert every migration instead (drops all audit data)")
	flag.Parse()
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(2)
	}
	apply := migrations.Up
	if *down {
		apply = migrations.Down
	}
	if err := apply(cfg.DatabaseURL); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
	v, dirty, err := migrations.Version(cfg.DatabaseURL)
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
	fmt.Printf("migrate: database at version %d (dirty=%t)\n", v, dirty)
}
