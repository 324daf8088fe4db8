// Command migrate applies auditstore's migrations to DATABASE_URL and exits: the `make migrate`
// step and the Kubernetes Job. Functions never migrate on start-up, because parallel
// instances would race.
//
// It never waits without bound: each lock within MIGRATE_LOCK_TIMEOUT, each statement within
// MIGRATE_STATEMENT_TIMEOUT, the whole run within MIGRATE_TIMEOUT (a commit that waits for a
// synchronous standby that is not connected waits on no lock and runs no statement). It
// prints a line for each migration applied.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/auditstore/auditstore/migrations"
	"github.com/kelseyhightower/envconfig"
)

type config struct {
	// DatabaseURL names the database (postgres:// URL).
	DatabaseURL string `envconfig:"DATABASE_URL" required:"true"`
	// LockTimeout bounds each wait for a lock (a table a long transaction holds, another
	// migration's advisory lock): past it the run fails and changes nothing.
	LockTimeout time.Duration `envconfig:"MIGRATE_LOCK_TIMEOUT" default:"30s"`
	// StatementTimeout bounds each statement of a migration.
	StatementTimeout time.Duration `envconfig:"MIGRATE_STATEMENT_TIMEOUT" default:"10m"`
	// Timeout bounds the whole run, waits no statement runs included (a commit waiting for a
	// synchronous standby that is not connected).
	Timeout time.Duration `envconfig:"MIGRATE_TIMEOUT" default:"30m"`
}

func main() {
	down := flag.Bool("down", false, "revert every migration instead (drops all audit data)")
	flag.Parse()
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(2)
	}
	if err := run(cfg, *down); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

func run(cfg config, down bool) error {
	if cfg.LockTimeout <= 0 || cfg.StatementTimeout <= 0 || cfg.Timeout <= 0 {
		return errors.New("MIGRATE_LOCK_TIMEOUT, MIGRATE_STATEMENT_TIMEOUT and MIGRATE_TIMEOUT must be positive")
	}
	dbURL, err := withTimeouts(cfg.DatabaseURL, cfg.LockTimeout, cfg.StatementTimeout)
	if err != nil {
		return err
	}
	apply := func() error {
		return migrations.UpWithProgress(dbURL, func(format string, args ...any) {
			fmt.Printf("migrate: applied "+format, args...)
		})
	}
	if down {
		apply = func() error { return migrations.Down(dbURL) }
	}
	done := make(chan error, 1)
	go func() { done <- apply() }()
	select {
	case err = <-done:
	case <-time.After(cfg.Timeout):
		return fmt.Errorf("no end within MIGRATE_TIMEOUT (%s): a migration is waiting on something no timeout covers, most often a commit waiting for a synchronous standby that is not connected (see pg_stat_replication and synchronous_standby_names); its transaction may commit once the standby is back", cfg.Timeout)
	}
	if err != nil {
		return explain(err, cfg)
	}
	v, dirty, err := migrations.Version(dbURL)
	if err != nil {
		return err
	}
	fmt.Printf("migrate: database at version %d (dirty=%t)\n", v, dirty)
	return nil
}

// withTimeouts sets the session's lock_timeout and statement_timeout in the URL (runtime
// parameters the driver sends at connection).
func withTimeouts(databaseURL string, lock, statement time.Duration) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", errors.New("DATABASE_URL is not a URL")
	}
	q := u.Query()
	q.Set("lock_timeout", strconv.FormatInt(lock.Milliseconds(), 10))
	q.Set("statement_timeout", strconv.FormatInt(statement.Milliseconds(), 10))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// explain names the setting a timeout came from.
func explain(err error, cfg config) error {
	switch {
	case errors.Is(err, migrations.ErrLockTimeout):
		return fmt.Errorf("a lock was not granted within MIGRATE_LOCK_TIMEOUT (%s), so nothing of the migration was applied; a long transaction or another migration holds it (see pg_locks), retry once it ends: %w", cfg.LockTimeout, err)
	case errors.Is(err, migrations.ErrStatementTimeout):
		return fmt.Errorf("a statement ran past MIGRATE_STATEMENT_TIMEOUT (%s), so nothing of the migration was applied; raise it for a large table: %w", cfg.StatementTimeout, err)
	}
	return err
}
