package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

func TestDeadLetters_StoreListReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := store.New(pool)

	ce, err := s.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker", CEID: ptr("1"), CESource: ptr("gateway"),
		CEType: ptr("gateway.signal.received"), ErrorCode: ptr(400), ErrorDest: ptr("http://write.auditstore.svc/"),
		ErrorData: ptr(`{"status":400}`), Event: json.RawMessage(`{"specversion":"1.0","id":"1","source":"gateway","type":"gateway.signal.received"}`)})
	require.NoError(t, err)
	require.NotEqual(t, uuid.Nil, ce.DeadLetterID)
	require.WithinDuration(t, time.Now(), ce.ReceivedAt, time.Minute)
	require.JSONEq(t, `{"specversion":"1.0","id":"1","source":"gateway","type":"gateway.signal.received"}`, string(ce.Event))
	require.Equal(t, 400, *ce.ErrorCode)

	raw, err := s.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker", ContentType: ptr("text/plain"),
		Headers: map[string]string{"Ce-Id": "2"}, Body: []byte("not a cloudevent \x00\xff"), ParseError: ptr("no specversion")})
	require.NoError(t, err)
	require.Nil(t, raw.Event)
	require.Equal(t, map[string]string{"Ce-Id": "2"}, raw.Headers)
	require.Equal(t, []byte("not a cloudevent \x00\xff"), raw.Body)

	_, err = s.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker"})
	require.ErrorIs(t, err, store.ErrInvalid, "a dead letter keeps either the event or the body")

	all, err := s.ListDeadLetters(ctx, store.DeadLetterParams{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, ce.DeadLetterID, all[0].DeadLetterID, "oldest first")

	byType, err := s.ListDeadLetters(ctx, store.DeadLetterParams{CEType: "gateway.signal.received"})
	require.NoError(t, err)
	require.Len(t, byType, 1)
	next, err := s.ListDeadLetters(ctx, store.DeadLetterParams{After: &ce.DeadLetterID, Limit: 10})
	require.NoError(t, err)
	require.Len(t, next, 1)
	require.Equal(t, raw.DeadLetterID, next[0].DeadLetterID)
	future := time.Now().Add(time.Hour)
	none, err := s.ListDeadLetters(ctx, store.DeadLetterParams{Since: &future})
	require.NoError(t, err)
	require.Empty(t, none)

	n, err := s.PendingDeadLetters(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	done, err := s.MarkDeadLetterReplayed(ctx, ce.DeadLetterID, "admin")
	require.NoError(t, err)
	require.Equal(t, "admin", *done.ReplayedBy)
	require.NotNil(t, done.ReplayedAt)
	_, err = s.MarkDeadLetterReplayed(ctx, ce.DeadLetterID, "admin")
	require.ErrorIs(t, err, store.ErrReplayed)
	_, err = s.MarkDeadLetterReplayed(ctx, uuid.New(), "admin")
	require.ErrorIs(t, err, store.ErrNotFound)

	pending, err := s.ListDeadLetters(ctx, store.DeadLetterParams{Pending: true})
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.Equal(t, raw.DeadLetterID, pending[0].DeadLetterID)
	n, err = s.PendingDeadLetters(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

// A dead letter is evidence: its content never changes, a replay is recorded once, and one
// waiting for its replay is never deleted — also not by the table's owner.
func TestDeadLetters_Guard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	d, err := s.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker", Event: json.RawMessage(`{"id":"x"}`)})
	require.NoError(t, err)

	_, err = pool.Exec(ctx, `UPDATE audit_deadletters SET event = '{"id":"forged"}' WHERE deadletter_id = $1`, d.DeadLetterID)
	requireSQLState(t, err, "AS001")
	_, err = pool.Exec(ctx, `DELETE FROM audit_deadletters WHERE deadletter_id = $1`, d.DeadLetterID)
	requireSQLState(t, err, "AS001")
	_, err = s.MarkDeadLetterReplayed(ctx, d.DeadLetterID, "admin")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE audit_deadletters SET replayed_by = 'someone else' WHERE deadletter_id = $1`, d.DeadLetterID)
	requireSQLState(t, err, "AS001")
}

// The write function's role may store dead letters and record replays, nothing more; readers
// may only read them.
func TestDeadLetters_Roles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	d, err := store.New(pool).InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker", Event: json.RawMessage(`{"id":"x"}`)})
	require.NoError(t, err)

	// asRole runs fn in a transaction as role, and rolls it back.
	asRole := func(role string, fn func(s *store.Store, tx pgx.Tx) error) error {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, "SET LOCAL ROLE "+role)
		require.NoError(t, err)
		return fn(store.New(tx), tx)
	}
	require.NoError(t, asRole("auditstore_writer", func(s *store.Store, _ pgx.Tx) error {
		if _, err := s.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "broker", Body: []byte("x")}); err != nil {
			return err
		}
		if _, err := s.ListDeadLetters(ctx, store.DeadLetterParams{}); err != nil {
			return err
		}
		_, err := s.MarkDeadLetterReplayed(ctx, d.DeadLetterID, "admin")
		return err
	}))
	requireSQLState(t, asRole("auditstore_writer", func(_ *store.Store, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE audit_deadletters SET event = '{}' WHERE deadletter_id = $1`, d.DeadLetterID)
		return err
	}), "42501")
	require.NoError(t, asRole("auditstore_reader", func(s *store.Store, _ pgx.Tx) error {
		_, err := s.ListDeadLetters(ctx, store.DeadLetterParams{})
		return err
	}))
	requireSQLState(t, asRole("auditstore_reader", func(_ *store.Store, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO audit_deadletters (deadletter_id, submitted_by, body) VALUES ($1, 'reader', 'x')`, uuid.New())
		return err
	}), "42501")
}

func requireSQLState(t *testing.T, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
}
