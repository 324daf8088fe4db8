// Package pgtest gives each test its own migrated PostgreSQL database (README "Two commands"), so
// tests and packages run in parallel against a real server, never a mock.
//
// The server is TEST_DATABASE_URL when set; else one that pgcluster starts for this test
// process (testcontainers when a Docker engine answers, else a throwaway cluster from the
// installed server binaries). Migrations run once into a template database named after a hash
// of the migration files; each test clones it with CREATE DATABASE ... TEMPLATE (about 0.3 s)
// and drops its clone when it ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/test/pgcluster"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	serverOnce sync.Once
	serverURL  string
	serverErr  error
	server     *pgcluster.Server

	templateMu    sync.Mutex
	templateNames = map[bool]string{}
)

// Main runs a package's tests and then stops the server pgtest started for them, if any. Call
// it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	dropMu.Lock()
	for _, drop := range drops {
		drop()
	}
	dropMu.Unlock()
	if server != nil {
		if err := server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop server:", err)
		}
	}
	os.Exit(code)
}

// ServerURL returns the URL of the server's maintenance database, starting a server when
// TEST_DATABASE_URL is not set. It fails the test when no server can be had, with a message
// that says what to install.
func ServerURL(t testing.TB) string {
	t.Helper()
	u, err := startServer()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

func startServer() (string, error) {
	serverOnce.Do(func() {
		if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
			serverURL = u
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		server, serverErr = pgcluster.Start(ctx, pgcluster.Options{})
		if serverErr == nil {
			serverURL = server.URL
		}
	})
	if serverErr != nil {
		return "", fmt.Errorf("no PostgreSQL for tests: %w", serverErr)
	}
	return serverURL, nil
}

var (
	dropMu sync.Mutex
	drops  []func()
)

// Database creates a migrated database outside any test, for Example functions (which get no
// testing.TB), and returns its URL. Main drops it when the package's tests end.
func Database(ctx context.Context) (string, error) {
	base, err := startServer()
	if err != nil {
		return "", err
	}
	tmpl, err := template(ctx, base, true)
	if err != nil {
		return "", fmt.Errorf("template database: %w", err)
	}
	name := "auditstore_test_" + randomHex(6)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(base), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, pgx.Identifier{name}.Sanitize(), pgx.Identifier{tmpl}.Sanitize())); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	dropMu.Lock()
	drops = append(drops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize()))
			_ = c.Close(ctx)
		}
	})
	dropMu.Unlock()
	return withDatabase(base, name), nil
}

// Options change what NewDatabase makes.
type Options struct {
	// Empty leaves the database unmigrated (for migration tests).
	Empty bool
}

// NewDatabase creates a database for this test only, migrated unless opts.Empty, and returns
// its URL. The database is dropped when the test ends.
func NewDatabase(t testing.TB, opts Options) string {
	t.Helper()
	base := ServerURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	tmpl, err := template(ctx, base, !opts.Empty)
	if err != nil {
		t.Fatalf("pgtest: template database: %v", err)
	}
	name := "auditstore_test_" + randomHex(6)
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", redact(base), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, pgx.Identifier{name}.Sanitize(), pgx.Identifier{tmpl}.Sanitize())); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{name}.Sanitize())); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return withDatabase(base, name)
}

// NewPool returns a pool on a fresh migrated database of its own, closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Connect(t, NewDatabase(t, Options{}))
}

// Connect opens a small pool on databaseURL, closed when the test ends.
func Connect(t testing.TB, databaseURL string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = 8 // tests run in parallel against one server with a connection limit
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// template returns the name of a template database (migrated or empty), creating it once per
// server. Its name carries a hash of the migrations, so a changed migration gets a new
// template; a session-level advisory lock keeps parallel test processes from building the same
// one twice, and the template gets its final name only once complete.
func template(ctx context.Context, base string, migrated bool) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	if name, ok := templateNames[migrated]; ok {
		return name, nil
	}
	name := "auditstore_tmpl_empty"
	if migrated {
		name = "auditstore_tmpl_" + migrationsHash()
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(base), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, name); err != nil {
		return "", err
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, name) //nolint:errcheck

	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		building := name + "_building"
		if _, err := admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, pgx.Identifier{building}.Sanitize())); err != nil {
			return "", err
		}
		if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'`, pgx.Identifier{building}.Sanitize())); err != nil {
			return "", err
		}
		if migrated {
			if err := migrations.Up(withDatabase(base, building)); err != nil {
				return "", err
			}
		}
		if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, pgx.Identifier{building}.Sanitize(), pgx.Identifier{name}.Sanitize())); err != nil {
			return "", err
		}
	}
	templateNames[migrated] = name
	return name, nil
}

func migrationsHash() string {
	h := sha256.New()
	err := fs.WalkDir(migrations.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.Files, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("pgtest: server URL is not a URL: %v", err))
	}
	u.Path = "/" + name
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Tamper runs sql in one transaction as the superuser tests connect as, with every trigger of
// the event and log tables switched off (and left so), as an attacker with the owner's or a
// superuser's rights would: what the guards stop, tamper evidence must reveal.
func Tamper(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatalf("pgtest: tamper: %v", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after a commit, nothing to roll back
	for _, table := range []string{"audit_events", "audit_log_batches", "audit_checkpoints", "audit_log_nodes"} {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+table+" DISABLE TRIGGER ALL"); err != nil {
			t.Fatalf("pgtest: tamper: %v", err)
		}
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: tamper: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("pgtest: tamper: %v", err)
	}
}
