// Command seed fills an existing, migrated auditstore database with realistic audit events for
// the query benchmarks (make bench-query, test/querybench):
//
//	go run ./test/seed -db postgres://... -n 5000000 -months 3
//
// The events are those kubernaut's services leave behind: 100 event types
// (<service>.<object>.<action>) across 10 services, in correlations (remediations) of 10–30
// events that pass through the services in order over a few minutes; actor_id is the service,
// outcomes are mostly success with some failure and pending, and each event_data is a 700–900
// byte common envelope whose payload carries risk_score (0–100), retries (0–5), provider,
// workflow_id (a catalog of 200, a few common), execution_id (one per correlation) and filler.
// Retention classes follow category policies: notification 90 days, datastorage 365, the rest
// 2557, and a few events ask for 365. Timestamps cover the last -months months, in time order
// as they would have arrived, and event ids are UUIDv7s of their timestamps.
//
// Events are made in chunks of -chunk in memory (memory stays bounded whatever -n) and loaded
// with store.CopyEvents from -workers goroutines, one COPY connection each; CopyEvents creates
// the partitions the months need. Events of the last 7 days also get idempotency keys, as the
// write path would have left them. The same -seed makes the same events, so a database is
// seeded once: the tool refuses a database that already holds events unless -append is given
// (with another -seed). At the end it runs VACUUM (ANALYZE), as autovacuum would after a bulk
// insert, so the benchmarks see settled statistics and visibility maps.
//
// With -server and -database instead of -db (make bench-query), it makes sure that database
// exists on the server, is migrated and holds at least -n events: it creates and migrates a
// missing one, seeds an empty one, leaves one that is seeded alone, and drops and makes again
// one that holds fewer (a seed that was interrupted). It prints the database's URL on stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// config is the command line.
type config struct {
	db       string
	server   string
	database string
	n        int
	months   int
	workers  int
	seed     uint64
	chunk    int
	append   bool
	vacuum   bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.db, "db", os.Getenv("DATABASE_URL"), "postgres:// URL of an existing, migrated database (DATABASE_URL=... go run ./jobs/migrate migrates one); default $DATABASE_URL")
	flag.IntVar(&cfg.n, "n", 5_000_000, "events to load")
	flag.IntVar(&cfg.months, "months", 3, "months of history the events cover, ending now")
	flag.IntVar(&cfg.workers, "workers", 4, "concurrent COPY connections (2–4 suit a 2–4 core machine)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "random seed: the same seed makes the same events")
	flag.IntVar(&cfg.chunk, "chunk", 10_000, "events per COPY (and per transaction)")
	flag.BoolVar(&cfg.append, "append", false, "load even if the database already holds events (use another -seed)")
	flag.BoolVar(&cfg.vacuum, "vacuum", true, "run VACUUM (ANALYZE) at the end; false: ANALYZE only")
	flag.StringVar(&cfg.server, "server", "", "instead of -db: postgres:// URL of any database on a server, on which -database is created, migrated and seeded unless it already holds -n events; its URL is printed")
	flag.StringVar(&cfg.database, "database", "auditstore_bench_query", "with -server: the database to make sure of")
	flag.Parse()
	if cfg.server != "" {
		if cfg.db != "" && cfg.db != os.Getenv("DATABASE_URL") {
			fmt.Fprintln(os.Stderr, "seed: give -db or -server, not both")
			os.Exit(2)
		}
		db, err := ensure(cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			os.Exit(1)
		}
		fmt.Println(db)
		return
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	switch {
	case cfg.db == "":
		return errors.New("-db (or DATABASE_URL) is required: a postgres:// URL of a migrated database")
	case cfg.n < 1:
		return errors.New("-n must be at least 1")
	case cfg.months < 1 || cfg.months > 24:
		return errors.New("-months must be between 1 and 24")
	case cfg.workers < 1 || cfg.workers > 16:
		return errors.New("-workers must be between 1 and 16")
	case cfg.chunk < 100 || cfg.chunk > 100_000:
		return errors.New("-chunk must be between 100 and 100000")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := store.Open(ctx, cfg.db, store.PoolOptions{MaxConns: int32(cfg.workers) + 1})
	if err != nil {
		return err
	}
	defer pool.Close()
	existing, err := hasEvents(ctx, pool)
	if err != nil {
		return fmt.Errorf("is the database migrated? %w", err)
	}
	if existing && !cfg.append {
		return errors.New("audit_events already holds events; seed an empty database, or pass -append with another -seed")
	}

	now := time.Now().UTC()
	// The last correlation may run ~10 minutes past its start: end early enough that no event
	// lies in the future.
	end := now.Add(-15 * time.Minute)
	begin := end.AddDate(0, -cfg.months, 0)
	chunks := (cfg.n + cfg.chunk - 1) / cfg.chunk
	window := end.Sub(begin) / time.Duration(chunks)
	st := store.New(pool)
	logf("seeding %d events from %s to %s: %d chunks of %d, %d COPY connections, seed %d",
		cfg.n, begin.Format(time.DateTime), end.Format(time.DateTime), chunks, cfg.chunk, cfg.workers, cfg.seed)

	var next, loaded atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, cfg.workers)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := time.Now()
	for range cfg.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= chunks || wctx.Err() != nil {
					return
				}
				size := min(cfg.chunk, cfg.n-k*cfg.chunk)
				from := begin.Add(time.Duration(k) * window)
				events := newGenerator(cfg.seed, k).chunk(size, from, from.Add(window), 50*time.Millisecond)
				if err := st.CopyEvents(wctx, store.CopyParams{Events: events, KeysSince: now.AddDate(0, 0, -7)}); err != nil {
					errc <- fmt.Errorf("chunk %d: %w", k, err)
					cancel()
					return
				}
				loaded.Add(int64(len(events)))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	var last int64
	lastAt := started
progress:
	for {
		select {
		case <-done:
			break progress
		case t := <-tick.C:
			n := loaded.Load()
			rate := float64(n) / t.Sub(started).Seconds()
			eta := time.Duration(float64(int64(cfg.n)-n) / max(rate, 1) * float64(time.Second))
			logf("%d/%d events (%.0f%%), %.0f events/s now, %.0f overall, about %s left",
				n, cfg.n, 100*float64(n)/float64(cfg.n), float64(n-last)/t.Sub(lastAt).Seconds(), rate, eta.Round(time.Second))
			last, lastAt = n, t
		}
	}
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	took := time.Since(started)
	logf("loaded %d events in %s: %.0f events/s", loaded.Load(), took.Round(time.Second), float64(loaded.Load())/took.Seconds())

	vacuumed := time.Now()
	what := "ANALYZE"
	if cfg.vacuum {
		what = "VACUUM (ANALYZE)"
	}
	logf("%s audit_events ...", what)
	if err := settle(ctx, pool, cfg.vacuum); err != nil {
		return err
	}
	size, err := totalSize(ctx, pool)
	if err != nil {
		return err
	}
	logf("%s took %s; audit_events is %.2f GiB with its indexes (%.0f bytes/event); total %s",
		what, time.Since(vacuumed).Round(time.Second), float64(size)/(1<<30), float64(size)/float64(max(loaded.Load(), 1)),
		time.Since(started).Round(time.Second))
	return nil
}

// ensure makes sure cfg.database on cfg.server exists, is migrated and holds at least cfg.n
// events, seeding it when it must, and returns its URL.
func ensure(cfg config) (string, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u, err := url.Parse(cfg.server)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("-server %q is not a postgres:// URL", cfg.server)
	}
	if cfg.database == "" {
		return "", errors.New("-database must not be empty")
	}
	u.Path = "/" + cfg.database
	db := u.String()
	admin, err := pgx.Connect(ctx, cfg.server)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", cfg.database).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		// A migration added since the seed may build indexes over millions of events for
		// minutes: say so as each one ends.
		if err := migrations.UpWithProgress(db, logf); err != nil {
			return "", fmt.Errorf("migrate %s: %w", cfg.database, err)
		}
		n, err := countEvents(ctx, db)
		if err != nil {
			return "", err
		}
		switch {
		case n >= int64(cfg.n):
			logf("%s already holds %d events (at least %d): not seeding", cfg.database, n, cfg.n)
			return db, nil
		case n > 0:
			logf("%s holds %d events, fewer than %d: dropping it and seeding it again", cfg.database, n, cfg.n)
			if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{cfg.database}.Sanitize()+" WITH (FORCE)"); err != nil {
				return "", err
			}
			exists = false
		}
	}
	if !exists {
		logf("creating and migrating %s", cfg.database)
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cfg.database}.Sanitize()); err != nil {
			return "", err
		}
		if err := migrations.Up(db); err != nil {
			return "", fmt.Errorf("migrate %s: %w", cfg.database, err)
		}
	}
	cfg.db = db
	return db, run(cfg)
}

// The statements below are the seeding tool's own housekeeping, not queries of the product:
// they check the database is empty, settle it after the load and report its size.

func countEvents(ctx context.Context, db string) (int64, error) {
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var n int64
	err = c.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&n)
	return n, err
}

func hasEvents(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var ok bool
	err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM audit_events)").Scan(&ok)
	return ok, err
}

// settle runs VACUUM (ANALYZE) or ANALYZE on audit_events; on the partitioned root both
// recurse into every partition and also gather the root's own statistics.
func settle(ctx context.Context, pool *pgxpool.Pool, vacuum bool) error {
	sql := "ANALYZE audit_events"
	if vacuum {
		sql = "VACUUM (ANALYZE) audit_events"
	}
	if _, err := pool.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

func totalSize(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
		FROM pg_partition_tree('audit_events') WHERE isleaf`).Scan(&n)
	return n, err
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
