// Package pgcluster finds or starts a PostgreSQL server for the project's
// tests and for `make run`.
//
// The order of attempts follows the project contract: a container through
// testcontainers-go when a Docker engine answers, else a cluster started from
// the installed PostgreSQL server binaries (as a non-root user when the
// process runs as root), else an error that says what to install. Callers
// that honour TEST_DATABASE_URL or DATABASE_URL check those before calling
// Start; this package never reads them, so that a test helper and `make run`
// can each decide which variable applies to them.
//
// The package is meant for Unix-like systems: it relies on process
// credentials, process groups and flock(2).
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoServer is wrapped by the error Start returns when neither a Docker
// engine nor PostgreSQL server binaries are available. Tests use it to tell
// "this machine cannot run PostgreSQL" (skip) from a real failure (fail).
var ErrNoServer = errors.New("no PostgreSQL server available")

// Options configures Start.
type Options struct {
	// DataDir, when set, keeps a persistent cluster there for `make run`:
	// Start initialises it on first use, starts it if it is stopped and
	// reuses it if it is already running, always on the same port (recorded
	// in DataDir) so the URL stays stable between runs. Stop leaves a
	// persistent server running so the next run finds it; StopPersistent
	// shuts it down. Persistent clusters always use the server binaries,
	// never Docker, because a container's data would not survive it.
	//
	// When DataDir is empty, Start creates a throwaway server (a container,
	// or a cluster in a fresh temporary directory) that Stop shuts down and
	// removes.
	DataDir string

	// Logf receives progress lines. It may be nil, in which case progress
	// goes to slog at debug level.
	Logf func(format string, args ...any)
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
		return
	}
	slog.Debug(fmt.Sprintf(format, args...), "component", "pgcluster")
}

// Server is a running PostgreSQL server.
type Server struct {
	// URL connects as the superuser "postgres" to the database "postgres",
	// e.g. postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
	URL string

	// dir is the temporary directory of a throwaway cluster ("" otherwise);
	// the tests check that Stop removed it.
	dir string

	stop     func() error
	stopOnce sync.Once
	stopErr  error
}

// Stop shuts a throwaway server down and removes its data. For a persistent
// server (Options.DataDir set) it does nothing, so the server keeps running
// between runs. Calling Stop more than once is harmless.
func (s *Server) Stop() error {
	if s == nil {
		return nil
	}
	s.stopOnce.Do(func() {
		if s.stop != nil {
			s.stopErr = s.stop()
		}
	})
	return s.stopErr
}

// defaultStartTimeout bounds Start when ctx has no deadline, so a server that
// never becomes ready fails the run instead of hanging it.
const defaultStartTimeout = 2 * time.Minute

// Start finds or starts a PostgreSQL server as described in the package
// documentation and returns once it accepts connections.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}

	if opts.DataDir != "" {
		bin, err := findBinaries()
		if err != nil {
			return nil, fmt.Errorf("%w for a persistent cluster in %s: %v; "+
				"set DATABASE_URL to an existing server, or install the PostgreSQL server binaries "+
				"(e.g. `apt-get install postgresql`, `dnf install postgresql-server` or `brew install postgresql@16`)",
				ErrNoServer, opts.DataDir, err)
		}
		return startPersistent(ctx, opts, bin)
	}

	dockerOK, dockerReason := dockerAvailable(ctx)
	if dockerOK {
		opts.logf("pgcluster: Docker engine found (%s); starting a container", dockerReason)
		return startContainer(ctx, opts)
	}

	bin, err := findBinaries()
	if err != nil {
		return nil, fmt.Errorf("%w: no Docker engine (%s) and no PostgreSQL server binaries (%v); "+
			"set TEST_DATABASE_URL (tests) or DATABASE_URL (make run) to an existing server, "+
			"start a Docker engine, or install the PostgreSQL server binaries "+
			"(e.g. `apt-get install postgresql`, `dnf install postgresql-server` or `brew install postgresql@16`)",
			ErrNoServer, dockerReason, err)
	}
	opts.logf("pgcluster: no Docker engine (%s); using server binaries in %s", dockerReason, bin.dir)
	return startThrowaway(ctx, opts, bin)
}

// waitReady connects to url until a `select 1` succeeds or ctx ends. When
// wantDataDir is set it also checks that the server answering is the
// cluster in that directory, because a port recorded earlier may since have
// been taken by another server.
func waitReady(ctx context.Context, url, wantDataDir string) error {
	var lastErr error
	for {
		err := ping(ctx, url, wantDataDir)
		if err == nil {
			return nil
		}
		var wrong *wrongClusterError
		if errors.As(err, &wrong) {
			return err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s not ready: %w (last error: %v)", redact(url), ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type wrongClusterError struct{ got, want string }

func (e *wrongClusterError) Error() string {
	return fmt.Sprintf("the server on this port serves data directory %s, not %s", e.got, e.want)
}

// ping makes one connection attempt, bounded so that a server that accepts
// TCP but never answers cannot swallow the whole start timeout.
func ping(ctx context.Context, url, wantDataDir string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil {
		return err
	}
	if wantDataDir == "" {
		return nil
	}
	var got string
	if err := conn.QueryRow(ctx, "show data_directory").Scan(&got); err != nil {
		return err
	}
	if !samePath(got, wantDataDir) {
		return &wrongClusterError{got: got, want: wantDataDir}
	}
	return nil
}
