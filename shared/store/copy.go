package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The write path COPYs in PostgreSQL's binary format, encoded here rather than by pgx's
// CopyFrom: pgx looks up an encode plan for each of the 29 values of a row (and sends a
// uuid.UUID through driver.Valuer, to text and back), which cost the client about 4 µs of CPU
// per event, on the cores the server needs. The encoding of each column must match its type
// in the migration; TestCopyEncoding checks it against pgx's own.

// keyColumns are the audit_event_keys columns COPY writes, in appendKeyRow's order
// (first_seen and xid are defaults: now() and the writing transaction).
var keyColumns = []string{"event_id", "event_timestamp", "retention_days", "content_hash", "event_hash"}

var (
	copyEventsSQL = copySQL("audit_events", copyColumns)
	copyKeysSQL   = copySQL("audit_event_keys", keyColumns)
)

func copySQL(table string, columns []string) string {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = pgx.Identifier{c}.Sanitize()
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", pgx.Identifier{table}.Sanitize(), strings.Join(quoted, ", "))
}

// copyTx is the transaction of a write that begins with a COPY (insertCopy, CopyEvents).
// Over a pool neither its BEGIN nor its COMMIT is a round trip of its own: they go out in one
// message with its first and its last COPY (first, last), so a group commit of the write path
// takes two round trips instead of four. Over a caller's transaction (a Store made over a
// pgx.Tx) it is a nested one, as Begin gives.
type copyTx struct {
	conn *pgx.Conn
	// begin goes ahead of the first statement: "BEGIN; " until it was sent.
	begin string
	pc    *pgxpool.Conn // the pool's connection; nil over a caller's transaction
	tx    pgx.Tx        // the nested transaction over a caller's; nil over a pool
	// sentCommit: the COMMIT went out after the last statement (last).
	sentCommit bool
}

// beginCopy starts a copyTx; end it (deferred) after its Commit or without one.
func (s *Store) beginCopy(ctx context.Context) (*copyTx, error) {
	if pool, ok := s.db.(*pgxpool.Pool); ok {
		pc, err := pool.Acquire(ctx)
		if err != nil {
			return nil, interpretError(err)
		}
		return &copyTx{conn: pc.Conn(), pc: pc, begin: "BEGIN; "}, nil
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, interpretError(err)
	}
	return &copyTx{conn: tx.Conn(), tx: tx}, nil
}

// first returns sql, a statement of the simple protocol (a COPY), with the pending BEGIN
// ahead of it.
func (t *copyTx) first(sql string) string {
	sql, t.begin = t.begin+sql, ""
	return sql
}

// last returns sql, the transaction's last statement (a COPY), with its COMMIT after it in
// the same message, over a pool: a COPY that succeeds is then committed, and Commit has
// nothing left to send. Over a caller's transaction it is sql (Commit releases the nested
// one).
func (t *copyTx) last(sql string) string {
	if t.tx != nil {
		return sql
	}
	t.sentCommit = true
	return sql + "; COMMIT"
}

// db returns the transaction for a statement with parameters, which the extended protocol
// sends alone: the pending BEGIN goes first, on its own.
func (t *copyTx) db(ctx context.Context) (DBTX, error) {
	if t.begin != "" {
		if _, err := t.conn.Exec(ctx, "begin"); err != nil {
			return nil, interpretError(err)
		}
		t.begin = ""
	}
	return t.conn, nil
}

// Commit commits the transaction (pgx.Tx's Commit: a COMMIT the server answered with
// ROLLBACK is pgx.ErrTxCommitRollback).
func (t *copyTx) Commit(ctx context.Context) error {
	switch {
	case t.tx != nil:
		return t.tx.Commit(ctx)
	case t.begin != "", t.sentCommit:
		return nil // nothing was sent, or the COMMIT was (last)
	}
	tag, err := t.conn.Exec(ctx, "commit")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// end rolls back what was not committed and gives the connection back.
func (t *copyTx) end(ctx context.Context) {
	if t.tx != nil {
		_ = t.tx.Rollback(ctx) // a no-op after Commit
		return
	}
	if t.conn.PgConn().TxStatus() != 'I' {
		// Should it fail, Release drops the connection, which is still in the transaction.
		_, _ = t.conn.Exec(ctx, "rollback")
	}
	t.pc.Release()
}

// copyEventRows COPYs events[idx] into audit_events; with last, as tx's last statement
// (copyTx.last).
func copyEventRows(ctx context.Context, tx *copyTx, events []audit.Event, idx []int, last bool) error {
	sql := copyEventsSQL
	if last {
		sql = tx.last(sql)
	}
	return copyRows(ctx, tx, sql, len(idx), func(buf []byte, r int) ([]byte, error) {
		return appendEventRow(buf, &events[idx[r]])
	})
}

// copyKeyRows COPYs the idempotency keys of events[idx] into audit_event_keys.
func copyKeyRows(ctx context.Context, tx *copyTx, events []audit.Event, idx []int) error {
	return copyRows(ctx, tx, copyKeysSQL, len(idx), func(buf []byte, r int) ([]byte, error) {
		return appendKeyRow(buf, &events[idx[r]]), nil
	})
}

// copyRows runs sql, a COPY ... FROM STDIN (FORMAT binary), with n rows that row appends.
// The rows are encoded while they are sent, a send buffer at a time.
func copyRows(ctx context.Context, tx *copyTx, sql string, n int, row func(buf []byte, r int) ([]byte, error)) error {
	bp := copyBuffers.Get().(*[]byte)
	src := &copyStream{n: n, row: row, buf: append((*bp)[:0], copySignature...)}
	src.buf = binary.BigEndian.AppendUint32(src.buf, 0) // flags
	src.buf = binary.BigEndian.AppendUint32(src.buf, 0) // header extension length
	_, err := tx.conn.PgConn().CopyFrom(ctx, src, tx.first(sql))
	if src.err != nil { // the server only saw the COPY fail
		return src.err
	}
	// Only a COPY that succeeded gives its buffer back: when the connection fails, pgconn
	// may return before its sending goroutine has stopped reading src. A buffer a huge row
	// grew is let go too.
	if err == nil && cap(src.buf) <= copyBufferSize {
		*bp = src.buf[:0]
		copyBuffers.Put(bp)
	}
	return err
}

// copyBufferSize is a COPY's encoding buffer: a little over pgconn's 64 KiB send buffer, so
// each read fills one send. The buffers are recycled: one made for each COPY was a quarter of
// the write function's allocated bytes under single events (two COPYs a transaction).
const copyBufferSize = 72 << 10

var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, copyBufferSize)
	return &b
}}

var copySignature = []byte("PGCOPY\n\xff\r\n\x00")

// copyStream is the io.Reader of a binary COPY: header (already in buf), rows, trailer.
type copyStream struct {
	buf  []byte // encoded, buf[off:] not yet read
	off  int
	n    int // rows
	next int // next row to encode
	row  func(buf []byte, r int) ([]byte, error)
	done bool // trailer appended
	err  error
}

func (s *copyStream) Read(p []byte) (int, error) {
	if s.off > 0 {
		s.buf, s.off = append(s.buf[:0], s.buf[s.off:]...), 0
	}
	for len(s.buf) < len(p) && !s.done {
		if s.next == s.n {
			s.buf, s.done = append(s.buf, 0xff, 0xff), true // trailer: field count -1
			break
		}
		var err error
		if s.buf, err = s.row(s.buf, s.next); err != nil {
			s.err = err
			return 0, err
		}
		s.next++
	}
	if len(s.buf) == 0 && s.done {
		return 0, io.EOF
	}
	s.off = copy(p, s.buf)
	return s.off, nil
}

// appendKeyRow appends e's idempotency key as one tuple in keyColumns' order.
func appendKeyRow(b []byte, e *audit.Event) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(keyColumns)))
	b = appendUUID(b, e.EventID)
	b = appendTimestamptz(b, e.EventTimestamp)
	b = appendInt4(b, int32(e.RetentionDays))
	b = appendBytes(b, e.ContentHash)
	if e.EventHash == nil {
		return appendNull(b)
	}
	return appendBytes(b, e.EventHash)
}

func appendNull(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff) }

func appendUUID(b []byte, id [16]byte) []byte {
	return append(append(b, 0, 0, 0, 16), id[:]...)
}

// microsecFromUnixEpochToY2K: timestamptz counts microseconds from 2000-01-01 00:00 UTC.
const microsecFromUnixEpochToY2K = 946_684_800 * 1_000_000

func appendTimestamptz(b []byte, t time.Time) []byte {
	b = append(b, 0, 0, 0, 8)
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMicro()-microsecFromUnixEpochToY2K))
}

func appendInt4(b []byte, v int32) []byte {
	b = append(b, 0, 0, 0, 4)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// appendInet appends addr as an inet host address: family (PGSQL_AF_INET 2, PGSQL_AF_INET6
// 3), prefix bits, is_cidr, address length, address.
func appendInet(b []byte, addr netip.Addr) []byte {
	if addr.Is4() {
		a := addr.As4()
		return append(append(b, 0, 0, 0, 8, 2, 32, 0, 4), a[:]...)
	}
	a := addr.As16()
	return append(append(b, 0, 0, 0, 20, 3, 128, 0, 16), a[:]...)
}
