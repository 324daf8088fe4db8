package store_test

// Benchmarks of the write path against the database's own ceiling, in the same run:
//
//	make bench   (or: go test ./shared/store -run '^$' -bench . -benchtime 200x)
//
// Every sub-benchmark gets a fresh migrated database and writes b.N batches of
// pre-generated, realistic events (~800-byte event_data) from 4 goroutines (4 connections).
// "events/s" is the figure to compare: InsertEvents/batch=1000 against the faster of
// Ceiling/copy and Ceiling/insert, which write the same events into the same schema with
// plain COPY and plain multi-row INSERT (no idempotency keys, no duplicate detection).

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/ceiling"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

const benchWorkers = 4

// benchEvents makes n events of 25 per correlation, with timestamps a millisecond apart in the
// last hours (distinct keys, as real traffic has; identical ones would let B-tree
// deduplication shrink the indexes unrealistically).
func benchEvents(b *testing.B, n int) []audit.Event {
	b.Helper()
	events := make([]audit.Event, n)
	start := time.Now().Add(-time.Duration(n) * time.Millisecond)
	run := strconv.FormatInt(start.UnixNano(), 36)
	for i := range events {
		ts := start.Add(time.Duration(i) * time.Millisecond)
		events[i] = audittest.Event(b, &audittest.EventOpts{
			CorrelationID:  "rr-" + run + "-" + strconv.Itoa(i/25),
			ResourceID:     "fp-" + strconv.Itoa(i%997),
			EventTimestamp: ts,
			Now:            ts,
		})
	}
	return events
}

// runBatches runs write over the events in batches from benchWorkers goroutines and reports
// events/s.
func runBatches(b *testing.B, events []audit.Event, batch int, write func(ctx context.Context, batch []audit.Event) error) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchWorkers)
	b.ResetTimer()
	start := time.Now()
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)-1) * batch
				if i >= len(events) {
					return
				}
				if err := write(ctx, events[i:min(i+batch, len(events))]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(events))/elapsed.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

func benchPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	url := pgtest.NewDatabase(b, pgtest.Options{})
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchWorkers
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

func BenchmarkInsertEvents(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			pool := benchPool(b)
			s := store.New(pool)
			events := benchEvents(b, b.N*batch)
			runBatches(b, events, batch, func(ctx context.Context, evs []audit.Event) error {
				_, _, err := s.InsertEvents(ctx, store.InsertParams{Events: evs})
				return err
			})
		})
	}
}

// BenchmarkCeiling writes the same events with the database's fastest plain paths (package
// test/ceiling, which the write function's load generator measures against too).
func BenchmarkCeiling(b *testing.B) {
	b.Run("copy", func(b *testing.B) {
		pool := benchPool(b)
		events := benchEvents(b, b.N*1000)
		runBatches(b, events, 1000, func(ctx context.Context, evs []audit.Event) error { return ceiling.Copy(ctx, pool, evs) })
	})
	b.Run("insert", func(b *testing.B) {
		pool := benchPool(b)
		events := benchEvents(b, b.N*100)
		runBatches(b, events, 100, func(ctx context.Context, evs []audit.Event) error { return ceiling.Insert(ctx, pool, evs) })
	})
}

// BenchmarkStorage loads STORAGE_EVENTS events (default 1,000,000) with InsertEvents in batches
// of 1000 and reports on-disk bytes per event: heap, TOAST and indexes of audit_events, and
// the idempotency keys separately. Run it alone: it takes minutes.
//
//	go test ./shared/store -run '^$' -bench Storage -benchtime 1x -timeout 60m
func BenchmarkStorage(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("STORAGE_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	pool := benchPool(b)
	s := store.New(pool)
	ctx := context.Background()
	const chunk = 100_000
	for done := 0; done < n; done += chunk {
		events := benchEvents(b, min(chunk, n-done))
		runBatches(b, events, 1000, func(ctx context.Context, evs []audit.Event) error {
			_, _, err := s.InsertEvents(ctx, store.InsertParams{Events: evs})
			return err
		})
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
	var heap, toast, index, keys int64
	err := pool.QueryRow(ctx, `
		SELECT coalesce(sum(pg_relation_size(c.oid)), 0),
		       coalesce(sum(pg_total_relation_size(c.reltoastrelid)) FILTER (WHERE c.reltoastrelid <> 0), 0),
		       coalesce(sum(pg_indexes_size(c.oid)), 0),
		       pg_total_relation_size('audit_event_keys')
		FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'audit\_events\_r%'`).Scan(&heap, &toast, &index, &keys)
	if err != nil {
		b.Fatal(err)
	}
	per := func(v int64) float64 { return float64(v) / float64(n) }
	b.ReportMetric(per(heap), "heap-B/event")
	b.ReportMetric(per(toast), "toast-B/event")
	b.ReportMetric(per(index), "index-B/event")
	b.ReportMetric(per(heap+toast+index), "table-B/event")
	b.ReportMetric(per(keys), "keys-B/event")
}
