// Command ddlstall measures how long partition DDL stalls writers: under a steady load of
// single-event inserts into the same retention class, it creates a month, and removes a
// 1M-row month the way maintenance does (DETACH ... CONCURRENTLY, then DROP) and, for
// comparison, with a plain DETACH and a plain DROP. The stall is the longest gap between two
// successful inserts around each operation.
//
//	go run ./test/ddlstall -db "$TEST_DATABASE_URL" -rows 1000000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	db := flag.String("db", os.Getenv("TEST_DATABASE_URL"), "server URL (its maintenance database); a scratch database is made there")
	rows := flag.Int("rows", 1_000_000, "rows in the month that is removed")
	writers := flag.Int("writers", 4, "concurrent writers")
	longTx := flag.Duration("long-tx", 1500*time.Millisecond, "one more writer keeps an insert transaction open this long, again and again (0: none): DDL must queue behind it")
	flag.Parse()
	if *db == "" {
		log.Fatal("-db or TEST_DATABASE_URL is required")
	}
	ctx := context.Background()
	name := fmt.Sprintf("auditstore_ddlstall_%d", time.Now().Unix())
	admin, err := pgx.Connect(ctx, *db)
	check(err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	check(err)
	defer func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
		admin.Close(context.Background())
	}()
	u, _ := url.Parse(*db)
	u.Path = "/" + name
	check(migrations.Up(u.String()))
	pool, err := pgxpool.New(ctx, u.String())
	check(err)
	defer pool.Close()
	s := store.New(pool)

	now := time.Now().UTC()
	old := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -6, 0)
	leaf := store.LeafName(90, old)
	load := func() time.Duration {
		_, err := s.CreatePartitions(ctx, old, old, []int{90})
		check(err)
		start := time.Now()
		// Seeding only: plain SQL is the fastest way to fill a month.
		_, err = pool.Exec(ctx, `INSERT INTO audit_events (event_id, event_timestamp, retention_days, event_type, event_category,
			event_action, event_outcome, correlation_id, actor_type, actor_id, submitted_by, content_hash, event_data)
			SELECT gen_random_uuid(), $1::timestamptz + (i % 2000000) * interval '1 second', 90, 'gateway.signal.received', 'gateway',
			'received', 'success', 'rr-' || (i / 20), 'service', 'gateway', 'seed', sha256(i::text::bytea),
			jsonb_build_object('version','1.0','service','gateway','operation','signal.received','status','success','payload',jsonb_build_object('i', i, 'filler', repeat('x', 600)))
			FROM generate_series(1, $2) AS i`, old, *rows)
		check(err)
		_, err = pool.Exec(ctx, "ANALYZE "+leaf)
		check(err)
		return time.Since(start)
	}

	// Writers: single events into the current month of the same class, as fast as they can.
	var mu sync.Mutex
	var okTimes []time.Time
	var errs atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	startWriters := func() {
		stop.Store(false)
		if *longTx > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					tx, err := pool.Begin(ctx)
					check(err)
					// Measurement harness only: an insert transaction that stays open.
					_, err = tx.Exec(ctx, `INSERT INTO audit_events (event_id, event_timestamp, retention_days, event_type, event_category,
						event_action, event_outcome, correlation_id, actor_type, actor_id, submitted_by, content_hash, event_data)
						VALUES (gen_random_uuid(), now(), 90, 'gateway.long.tx', 'gateway', 'tx', 'success', 'rr-long', 'service', 'gateway', 'long', sha256('x'), '{}')`)
					check(err)
					time.Sleep(*longTx)
					check(tx.Commit(ctx))
				}
			}()
		}
		for range *writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					e := event(time.Now())
					if _, _, err := s.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{e}}); err != nil {
						errs.Add(1)
						continue
					}
					t := time.Now()
					mu.Lock()
					okTimes = append(okTimes, t)
					mu.Unlock()
				}
			}()
		}
	}
	measure := func(label string, op func() error) {
		mu.Lock()
		okTimes = okTimes[:0]
		mu.Unlock()
		startWriters()
		time.Sleep(2 * time.Second)
		opStart := time.Now()
		err := op()
		opDur := time.Since(opStart)
		time.Sleep(2 * time.Second)
		stop.Store(true)
		wg.Wait()
		check(err)
		mu.Lock()
		ts := append([]time.Time(nil), okTimes...)
		mu.Unlock()
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		var worst, baseline time.Duration
		for i := 1; i < len(ts); i++ {
			gap := ts[i].Sub(ts[i-1])
			if ts[i].Before(opStart) && gap > baseline {
				baseline = gap
			}
			if !ts[i].Before(opStart) && !ts[i-1].After(opStart.Add(opDur)) && gap > worst {
				worst = gap
			}
		}
		fmt.Printf("| %s | %.1f ms | %.1f ms | %.1f ms | %d | %d |\n", label, ms(opDur), ms(worst), ms(baseline), len(ts), errs.Swap(0))
	}

	fmt.Printf("loaded %d rows into %s in %s\n\n", *rows, leaf, load().Round(time.Millisecond))
	fmt.Printf("%d writers of single events, plus one transaction held open %s at a time\n\n", *writers, *longTx)
	fmt.Println("| operation | duration | longest writer gap during it | longest gap before it | inserts | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	far := now.AddDate(2, 0, 0)
	measure("create a month (CREATE ... LIKE + ATTACH)", func() error {
		_, err := s.CreatePartitions(ctx, far, far, []int{90})
		return err
	})
	measure("remove 1M-row month: DETACH CONCURRENTLY + DROP (maintenance)", func() error {
		m, err := store.New(pool).BeginMaintenance(ctx)
		if err != nil {
			return err
		}
		defer m.End()
		return m.DetachAndDrop(ctx, store.LeafPartition{Name: leaf, Class: 90, Month: old}, 2*time.Second)
	})
	load()
	measure("remove 1M-row month: plain DETACH + DROP", func() error {
		if _, err := pool.Exec(ctx, "ALTER TABLE audit_events_r90 DETACH PARTITION "+leaf); err != nil {
			return err
		}
		_, err := pool.Exec(ctx, "DROP TABLE "+leaf)
		return err
	})
	load()
	measure("remove 1M-row month: DROP of the attached partition", func() error {
		_, err := pool.Exec(ctx, "DROP TABLE "+leaf)
		return err
	})
}

var seq atomic.Int64

func event(now time.Time) audit.Event {
	n := seq.Add(1)
	s := func(v string) *string { return &v }
	in := audit.Input{EventType: s("gateway.signal.received"), EventOutcome: s("success"),
		CorrelationID: s(fmt.Sprintf("rr-w-%d", n/20)), EventData: []byte(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"n":` + fmt.Sprint(n) + `}}`)}
	days := int64(90)
	in.RetentionDays = &days
	e, errs := in.Prepare(audit.Defaults{Now: now, Principal: "ddlstall", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	if len(errs) > 0 {
		log.Fatal(errs)
	}
	return e
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
