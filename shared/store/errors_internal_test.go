package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestInterpretError_ConnectionLevel holds every failure that is not the server's answer to a
// statement to ErrUnavailable, and the read-only answers to ErrReadOnly: a write that met one
// is answered 503, never 500, and never acknowledged.
func TestInterpretError_ConnectionLevel(t *testing.T) {
	t.Parallel()
	// A real connection error: nothing listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, refused := pgx.Connect(ctx, "postgres://x@"+addr+"/x?sslmode=disable&connect_timeout=2")
	require.Error(t, refused)

	pg := func(code, msg string) error { return &pgconn.PgError{Severity: "FATAL", Code: code, Message: msg} }
	for _, tc := range []struct {
		name     string
		err      error
		want     error
		readOnly bool
	}{
		{"unexpected EOF from a COPY", io.ErrUnexpectedEOF, ErrUnavailable, false},
		{"wrapped unexpected EOF", fmt.Errorf("insert events: %w", io.ErrUnexpectedEOF), ErrUnavailable, false},
		{"conn closed", fmt.Errorf("commit: %w", pgconn.ErrConnClosed), ErrUnavailable, false},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, ErrUnavailable, false},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), ErrUnavailable, false},
		{"connection refused", refused, ErrUnavailable, false},
		{"admin shutdown", pg("57P01", "terminating connection due to administrator command"), ErrUnavailable, false},
		{"crash shutdown", pg("57P02", "terminating connection because of crash of another server process"), ErrUnavailable, false},
		{"cannot connect now", pg("57P03", "the database system is starting up"), ErrUnavailable, false},
		{"too many connections", pg("53300", "sorry, too many clients already"), ErrUnavailable, false},
		{"connection failure", pg("08006", "connection failure"), ErrUnavailable, false},
		{"read-only transaction", pg("25006", "cannot execute COPY in a read-only transaction"), ErrReadOnly, true},
		{"recovery", pg("55000", "recovery is in progress"), ErrReadOnly, true},
		{"no read-write host", fmt.Errorf("connect: %w", pgconn.ErrReadOnlyConnection), ErrReadOnly, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := interpretError(tc.err)
			require.ErrorIs(t, got, tc.want)
			require.ErrorIs(t, got, ErrUnavailable, "every read-only error is also unavailable")
			require.Equal(t, tc.readOnly, errors.Is(got, ErrReadOnly))
		})
	}
	// Not connection failures: the server's own refusals, and errors of our own making.
	require.NotErrorIs(t, interpretError(pg("55000", "cannot refresh materialized view concurrently")), ErrUnavailable)
	require.NotErrorIs(t, interpretError(pg("42P01", "relation does not exist")), ErrUnavailable)
	require.NotErrorIs(t, interpretError(errors.New("can't scan into dest[0]")), ErrUnavailable)
}

// TestInterpretError_Sentinels: every SQLSTATE a caller tells apart becomes one of the store's
// sentinel errors here, so no caller looks at a SQLSTATE.
func TestInterpretError_Sentinels(t *testing.T) {
	t.Parallel()
	noPartition := &pgconn.PgError{Code: "23514", Message: `no partition of relation "audit_events_r90" found for row`}
	check := &pgconn.PgError{Code: "23514", Message: "violates check constraint", ConstraintName: "audit_events_outcome_check"}
	for _, tc := range []struct {
		name string
		err  error
		want error
		not  error
	}{
		{"unique violation", &pgconn.PgError{Code: "23505"}, ErrConflict, ErrInvalid},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, ErrTimeout, ErrUnavailable},
		{"lock timeout", fmt.Errorf("detach: %w", &pgconn.PgError{Code: "55P03"}), ErrLockTimeout, ErrUnavailable},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, ErrNoTable, ErrUnavailable},
		{"insufficient privilege", &pgconn.PgError{Code: "42501"}, ErrForbidden, ErrUnavailable},
		{"no partition for the row", noPartition, ErrNoPartition, ErrConflict},
		{"no partition is invalid too", noPartition, ErrInvalid, ErrUnavailable},
		{"a check constraint", check, ErrInvalid, ErrNoPartition},
		{"immutable", &pgconn.PgError{Code: "AS001"}, ErrImmutable, ErrInvalid},
		{"no rows", pgx.ErrNoRows, ErrNotFound, ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := interpretError(tc.err)
			require.ErrorIs(t, got, tc.want)
			require.NotErrorIs(t, got, tc.not)
		})
	}
}
