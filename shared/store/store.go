// Package store is auditstore's only door to PostgreSQL: every SQL statement lives here, built
// with placeholders only. Decisions (what to store, what to drop) belong to the callers.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors callers can test for with errors.Is; every database error is translated to one of
// these (or wrapped as it is) in interpretError.
var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique key is already taken by other content.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the database cannot be reached or is refusing work now; a retry
	// later may succeed. A connection lost during a statement is this too: its transaction may
	// or may not have committed, so nothing of it is acknowledged and a retry (by event id) is
	// a duplicate or a new write, never a loss.
	ErrUnavailable = errors.New("database unavailable")
	// ErrReadOnly means the database takes no writes now: a standby, a primary being demoted,
	// or one set read-only. It is also ErrUnavailable (a failover or a reconnection heals it).
	ErrReadOnly = fmt.Errorf("%w: the database is read-only", ErrUnavailable)
	// ErrImmutable means the database refused to change or delete a stored event.
	ErrImmutable = errors.New("audit events are immutable")
	// ErrTimeout means a statement ran past its statement_timeout.
	ErrTimeout = errors.New("statement timed out")
	// ErrInvalid means the database refused a value as invalid (a CHECK, a malformed jsonpath):
	// the request is at fault, not the database.
	ErrInvalid = errors.New("invalid value")
	// ErrNoPartition means a row met no partition of audit_events (its month or class has
	// none yet). It is also ErrInvalid, as the database's check violation it comes from.
	ErrNoPartition = fmt.Errorf("%w: no partition of audit_events for the row", ErrInvalid)
	// ErrLockTimeout means a statement gave up waiting for a lock (lock_timeout); a later
	// attempt retries.
	ErrLockTimeout = errors.New("lock timeout")
	// ErrNoTable means a statement named a table that is not there (maintenance dropped a
	// month a query had listed).
	ErrNoTable = errors.New("no such table")
	// ErrForbidden means the role may not do what the statement asked (a table it was not
	// granted).
	ErrForbidden = errors.New("permission denied")
)

// DBTX is what the store needs of a connection: both *pgxpool.Pool and pgx.Tx satisfy it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store runs auditstore's statements over a DBTX.
type Store struct {
	db DBTX

	// partitions remembers the (class, month) partitions known to exist, so the write path
	// asks the database to create one only the first time it meets a month.
	mu         sync.Mutex
	partitions map[partitionKey]struct{}

	// claimFirst counts down the batches that InsertEvents claims with ON CONFLICT first,
	// after one met an id already taken (see expectTakenKeys).
	claimFirst atomic.Int32

	// flatOnly is set once the role was refused a partition read directly (see queryLeaves):
	// queries then go through the partitioned table.
	flatOnly atomic.Bool

	// nsStats caches the leaves' namespace statistics a scoped query's first window is scaled
	// by (see scopeShare).
	nsStats namespaceStats
}

// New returns a Store over db, usually a *pgxpool.Pool.
func New(db DBTX) *Store {
	return &Store{db: db, partitions: make(map[partitionKey]struct{})}
}

// PoolOptions shape a pool.
type PoolOptions struct {
	// MaxConns bounds the pool's connections (0: pgx's default).
	MaxConns int32
	// StatementTimeout, when set, is every statement's statement_timeout on the server.
	StatementTimeout time.Duration
	// RandomPageCost, when set, is the planner's random_page_cost for this pool's sessions.
	// PostgreSQL's default of 4 (spinning disks) made it shun the composite (x, event_timestamp)
	// indexes: an actor + outcome + 7 days query took 98 ms on the time index, 2 ms on its own.
	RandomPageCost float64
	// WarmTimelines opens every connection up front (MinConns = MaxConns) and runs the
	// correlation timeline on each before it serves: the timeline keeps a cached plan, and
	// PostgreSQL plans a cached statement's first five runs with its values, each across every
	// partition (4–9 ms at 5M events against under a millisecond once generic), so the first
	// investigators on a new connection paid for it.
	WarmTimelines bool
	// Writes marks a pool that writes: a connection whose server no longer takes writes (a
	// standby after a failover, a demoted primary) is closed when released, not reused.
	Writes bool
}

// Open makes a pool for databaseURL. It does not wait for the database: a function starts
// while PostgreSQL is down and reports not ready until it answers.
func Open(ctx context.Context, databaseURL string, opts PoolOptions) (*pgxpool.Pool, error) {
	cfg, err := PoolConfig(databaseURL, opts)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", interpretError(err))
	}
	return pool, nil
}

// Connect opens a pool for databaseURL (as Open does) and returns a Store over it; Close
// closes the pool.
func Connect(ctx context.Context, databaseURL string, opts PoolOptions) (*Store, error) {
	pool, err := Open(ctx, databaseURL, opts)
	if err != nil {
		return nil, err
	}
	return New(pool), nil
}

// Close closes the store's pool, when it is over one (a Store over a transaction leaves it
// to its owner).
func (s *Store) Close() {
	if pool, ok := s.db.(*pgxpool.Pool); ok {
		pool.Close()
	}
}

// PoolConfig is the configuration Open uses, for a caller that adds to it (a benchmark's
// tracer) and must otherwise run exactly as the functions do.
func PoolConfig(databaseURL string, opts PoolOptions) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10)
	}
	// Short, selective statements: JIT compilation cost a rare jsonpath query 250–420 ms of
	// a 660 ms run at 5M events, and never paid back here.
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	if opts.RandomPageCost > 0 {
		cfg.ConnConfig.RuntimeParams["random_page_cost"] = strconv.FormatFloat(opts.RandomPageCost, 'g', -1, 64)
	}
	if opts.WarmTimelines {
		cfg.MinConns = cfg.MaxConns
		cfg.AfterConnect = warmTimelines
	}
	if opts.Writes {
		cfg.AfterRelease = writable
	}
	return cfg, nil
}

// writable keeps a released connection of a write pool only while its server takes writes.
// PostgreSQL (14 and later) reports in_hot_standby and default_transaction_read_only to the
// client when a session starts and whenever they change, so this reads no more than pgx
// already holds: a connection to a standby, or to a primary set read-only, is closed after
// the statement it failed, and the next one is made anew — with target_session_attrs=read-write,
// to the host that now takes writes.
func writable(c *pgx.Conn) bool {
	ps := c.PgConn().ParameterStatus
	return ps("in_hot_standby") != "on" && ps("default_transaction_read_only") != "on"
}

// Ping reports whether the database answers a trivial query.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.db.Exec(ctx, "SELECT 1")
	return interpretError(err)
}

// PingWritable is Ping for a writer: ErrReadOnly when the database answers but takes no writes
// (a standby, or a primary set read-only).
func (s *Store) PingWritable(ctx context.Context) error {
	var readOnly bool
	err := s.db.QueryRow(ctx, `SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'`).Scan(&readOnly)
	if err != nil {
		return interpretError(err)
	}
	if readOnly {
		return ErrReadOnly
	}
	return nil
}

// setting sets a run-time parameter to d in milliseconds through set_config, which takes the
// value as a placeholder (SET does not): for the transaction when local, else for the
// session.
func setting(ctx context.Context, db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}, name string, d time.Duration, local bool) error {
	_, err := db.Exec(ctx, `SELECT set_config($1, $2, $3)`, name, strconv.FormatInt(d.Milliseconds(), 10), local)
	return interpretError(err)
}

// SQLSTATEs the store tells apart.
const (
	sqlstateUniqueViolation       = "23505"
	sqlstateCheckViolation        = "23514"
	sqlstateImmutable             = "AS001" // raised by audit_events_guard
	sqlstateHeld                  = "AS002" // raised by audit_events_guard: the erasure of a held event
	sqlstateLockNotAvailable      = "55P03" // lock_timeout
	sqlstateQueryCanceled         = "57014" // statement_timeout
	sqlstateUndefinedTable        = "42P01"
	sqlstateInsufficientPrivilege = "42501"
	sqlstateReadOnlyTransaction   = "25006" // a write on a standby or in a read-only session
	sqlstateNotInRecovery         = "55000" // object_not_in_prerequisite_state: "recovery is in progress", among others
)

// interpretError translates a database error into the store's errors, in one place. Anything
// that is not the server's answer to a statement (a connection refused, reset or closed, an
// unexpected EOF in the middle of a COPY or a COMMIT) is ErrUnavailable: whether that statement
// took effect is unknown, so the caller must not acknowledge it and may retry.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == sqlstateUniqueViolation:
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.Message)
		case pgErr.Code == sqlstateQueryCanceled:
			return fmt.Errorf("%w: %s", ErrTimeout, pgErr.Message)
		case pgErr.Code == sqlstateLockNotAvailable:
			return fmt.Errorf("%w: %w", ErrLockTimeout, err)
		case pgErr.Code == sqlstateUndefinedTable:
			return fmt.Errorf("%w: %s", ErrNoTable, pgErr.Message)
		case pgErr.Code == sqlstateInsufficientPrivilege:
			return fmt.Errorf("%w: %s", ErrForbidden, pgErr.Message)
		case pgErr.Code == sqlstateCheckViolation && pgErr.ConstraintName == "":
			// "no partition of relation ... found for row", from a partitioned table.
			return fmt.Errorf("%w: %s", ErrNoPartition, pgErr.Message)
		case pgErr.Code == sqlstateHeld:
			return fmt.Errorf("%w: %s", ErrHeld, pgErr.Message)
		case pgErr.Code == sqlstateImmutable:
			return fmt.Errorf("%w: %s", ErrImmutable, pgErr.Message)
		case pgErr.Code == sqlstateReadOnlyTransaction,
			pgErr.Code == sqlstateNotInRecovery && strings.Contains(pgErr.Message, "recovery is in progress"):
			return fmt.Errorf("%w: %s", ErrReadOnly, pgErr.Message)
		case pgErr.Code[:2] == "08", // connection exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, crash, starting
			pgErr.Code == "53300",                        // too many connections
			pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock: retry
			return fmt.Errorf("%w: %s", ErrUnavailable, pgErr.Message)
		case pgErr.Code[:2] == "22", pgErr.Code[:2] == "23", pgErr.Code == "42601":
			return fmt.Errorf("%w: %s", ErrInvalid, pgErr.Message)
		}
		return err
	}
	if errors.Is(err, pgconn.ErrReadOnlyConnection) {
		// target_session_attrs=read-write found no host that takes writes: mid-failover.
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	}
	if connectionLost(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// connectionLost reports whether err is a failure of the connection rather than an answer of
// the server. pgx returns these both wrapped (its own error types, which all say whether a
// retry is safe) and bare (io.ErrUnexpectedEOF from a COPY whose server died).
func connectionLost(err error) bool {
	var netErr net.Error
	var connErr *pgconn.ConnectError
	var pgconnErr interface{ SafeToRetry() bool }
	return errors.As(err, &connErr) || errors.As(err, &netErr) || errors.As(err, &pgconnErr) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, net.ErrClosed)
}
