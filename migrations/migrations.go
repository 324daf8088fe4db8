// Package migrations holds auditstore's SQL migrations, embedded in the binary, and applies
// them with golang-migrate. Each file runs as one implicit transaction (golang-migrate sends a
// file as one multi-statement query), so a failed migration leaves nothing half-applied.
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	// The pgx v5 driver registers the "pgx5" scheme.
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors a failed migration is told apart by (errors.Is); nothing of it was applied.
var (
	// ErrLockTimeout means a lock was not granted within the session's lock_timeout.
	ErrLockTimeout = errors.New("lock timeout")
	// ErrStatementTimeout means a statement ran past the session's statement_timeout.
	ErrStatementTimeout = errors.New("statement timeout")
)

// interpretError marks the failures a caller tells apart with this package's errors. It is
// the migrations' own translation point because golang-migrate runs the statements: its
// errors do not always unwrap to the driver's, but carry its text.
func interpretError(err error) error {
	code := ""
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code = pgErr.Code
	} else if _, rest, ok := strings.Cut(err.Error(), "(SQLSTATE "); ok && len(rest) >= 5 {
		code = rest[:5]
	}
	switch code {
	case "55P03": // lock_not_available
		return fmt.Errorf("%w: %w", ErrLockTimeout, err)
	case "57014": // query_canceled
		return fmt.Errorf("%w: %w", ErrStatementTimeout, err)
	}
	return err
}

// Files are the migration files, embedded.
//
//go:embed *.sql
var Files embed.FS

// Up applies every pending migration to the database named by databaseURL (a postgres:// URL).
func Up(databaseURL string) error {
	return run(databaseURL, func(m *migrate.Migrate) error { return m.Up() })
}

// UpWithProgress is Up that reports each migration applied (its version, name and duration)
// to logf, as it finishes.
func UpWithProgress(databaseURL string, logf func(format string, args ...any)) error {
	return run(databaseURL, func(m *migrate.Migrate) error {
		m.Log = progress(logf)
		return m.Up()
	})
}

// progress is golang-migrate's logger, quiet but for the line it prints per migration.
type progress func(format string, args ...any)

func (p progress) Printf(format string, args ...any) { p(format, args...) }

func (p progress) Verbose() bool { return false }

// Down reverts every applied migration.
func Down(databaseURL string) error {
	return run(databaseURL, func(m *migrate.Migrate) error { return m.Down() })
}

// Steps applies n migrations forward (n > 0) or reverts -n of them (n < 0).
func Steps(databaseURL string, n int) error {
	return run(databaseURL, func(m *migrate.Migrate) error { return m.Steps(n) })
}

// Version reports the applied version and whether the last migration failed half-way.
func Version(databaseURL string) (version uint, dirty bool, err error) {
	err = run(databaseURL, func(m *migrate.Migrate) error {
		version, dirty, err = m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		return err
	})
	return version, dirty, err
}

func run(databaseURL string, step func(*migrate.Migrate) error) error {
	src, err := iofs.New(Files, ".")
	if err != nil {
		return fmt.Errorf("migrations: open embedded files: %w", err)
	}
	u, err := driverURL(databaseURL)
	if err != nil {
		return err
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, u)
	if err != nil {
		return fmt.Errorf("migrations: connect: %w", err)
	}
	defer m.Close()
	if err := step(m); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrations: %w", interpretError(err))
	}
	return nil
}

// driverURL turns a postgres:// URL into the pgx5:// form golang-migrate's driver registers.
func driverURL(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("migrations: DATABASE_URL must be a postgres:// URL")
	}
	u.Scheme = "pgx5"
	return u.String(), nil
}
