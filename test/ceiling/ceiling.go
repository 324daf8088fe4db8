// Package ceiling is the database's own ingest ceiling: events written into audit_events by
// the fastest plain paths PostgreSQL has, pgx CopyFrom and multi-row INSERT, with no
// idempotency keys and no duplicate detection. The store benchmark and the load generator
// (test/loadgen) both measure the write path against it, in the same run, so that their
// ratios to the ceiling mean the same thing.
package ceiling

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Columns are the columns of audit_events the ceiling writes, in Row's order: the row as the
// store describes it (store.EventColumns), so the ceiling writes what the write path writes.
var Columns = func() []string {
	var names []string
	for _, c := range store.EventColumns() {
		names = append(names, c.Name)
	}
	return names
}()

// Row returns e's values in Columns' order, as pgx takes them.
func Row(e *audit.Event) ([]any, error) { return store.EventValues(e) }

// Copy writes events into audit_events with one COPY (pgx CopyFrom) on a connection of pool.
func Copy(ctx context.Context, pool *pgxpool.Pool, events []audit.Event) error {
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"audit_events"}, Columns,
		pgx.CopyFromSlice(len(events), func(i int) ([]any, error) { return Row(&events[i]) }))
	if err != nil {
		return fmt.Errorf("ceiling: copy %d events: %w", len(events), err)
	}
	return nil
}

// InsertRows is the number of rows of one statement of Insert.
const InsertRows = 100

// Insert writes events into audit_events with multi-row INSERT statements of InsertRows rows
// (the last one shorter when len(events) is not a multiple), one after the other, each its own
// transaction.
func Insert(ctx context.Context, pool *pgxpool.Pool, events []audit.Event) error {
	for len(events) > 0 {
		n := min(len(events), InsertRows)
		args := make([]any, 0, n*len(Columns))
		for i := range n {
			row, err := Row(&events[i])
			if err != nil {
				return fmt.Errorf("ceiling: %w", err)
			}
			args = append(args, row...)
		}
		if _, err := pool.Exec(ctx, insertSQL(n), args...); err != nil {
			return fmt.Errorf("ceiling: insert %d events: %w", n, err)
		}
		events = events[n:]
	}
	return nil
}

var (
	insertMu    sync.Mutex
	insertCache = map[int]string{}
)

// insertSQL returns the INSERT statement for rows rows, built once per row count (pgx then
// prepares it once per connection).
func insertSQL(rows int) string {
	insertMu.Lock()
	defer insertMu.Unlock()
	if s, ok := insertCache[rows]; ok {
		return s
	}
	var sql strings.Builder
	fmt.Fprintf(&sql, "INSERT INTO audit_events (%s) VALUES ", strings.Join(Columns, ","))
	cols := store.EventColumns()
	n := len(cols)
	for r := range rows {
		if r > 0 {
			sql.WriteByte(',')
		}
		sql.WriteByte('(')
		for c := range n {
			if c > 0 {
				sql.WriteByte(',')
			}
			fmt.Fprintf(&sql, "$%d::%s", r*n+c+1, cols[c].Type)
		}
		sql.WriteByte(')')
	}
	insertCache[rows] = sql.String()
	return insertCache[rows]
}

// WriteFunc writes one batch of events; Copy and Insert are WriteFuncs.
type WriteFunc func(ctx context.Context, pool *pgxpool.Pool, events []audit.Event) error

// Run writes events with write in batches of batch events from workers goroutines, each taking
// the next batch as soon as it is done with its last, and returns the events written per
// second of wall time. pool should allow at least workers connections. The first error stops
// every worker and is returned.
func Run(ctx context.Context, pool *pgxpool.Pool, events []audit.Event, workers, batch int, write WriteFunc) (eventsPerSec float64, err error) {
	if workers < 1 || batch < 1 {
		return 0, fmt.Errorf("ceiling: workers (%d) and batch (%d) must be positive", workers, batch)
	}
	if len(events) == 0 {
		return 0, fmt.Errorf("ceiling: no events")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)-1) * batch
				if i >= len(events) {
					return
				}
				if werr := write(ctx, pool, events[i:min(i+batch, len(events))]); werr != nil {
					once.Do(func() { err = werr; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(len(events)) / elapsed.Seconds(), nil
}
