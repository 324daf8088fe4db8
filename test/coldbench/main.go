// Command coldbench measures the cold tier on a seeded database (test/seed): it moves every
// month older than -hot-months to Parquet files in a directory (file://), gives files written
// without a lookup filter theirs (as a maintenance run does), then reports, from one run: bytes
// per event hot and cold, correlation timeline latency (p50/p99) for hot and for cold
// correlations from file:// and through an S3 server (gofakes3, in process, holding a copy of
// the files), what a lookup costs (files opened, requests, bytes read) as the number of cold
// months grows and as its since/until span grows, and a cold export's events/s and peak RSS
// (measured in a process of its own).
//
//	go run ./test/seed -server $URL -database auditstore_bench_cold -n 6000000 -months 6
//	go run ./test/coldbench -db $URL_OF_THAT_DATABASE -dir /var/tmp/auditstore-cold
package main

import (
	"bufio"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

type config struct {
	db, dir   string
	hotMonths int
	samples   int
	export    string // internal: run the export measurement of this month (YYYY-MM) and exit
	skipS3    bool
	skipMove  bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.db, "db", os.Getenv("DATABASE_URL"), "postgres:// URL of a seeded, migrated database")
	flag.StringVar(&cfg.dir, "dir", "", "directory of the cold tier (file://); made if missing")
	flag.IntVar(&cfg.hotMonths, "hot-months", 1, "HOT_MONTHS for every class: older months go cold")
	flag.IntVar(&cfg.samples, "samples", 400, "timelines looked up per measurement")
	flag.StringVar(&cfg.export, "export-month", "", "internal: measure an export of this cold month (YYYY-MM) and exit")
	flag.BoolVar(&cfg.skipS3, "skip-s3", false, "do not measure through the S3 server")
	flag.BoolVar(&cfg.skipMove, "skip-move", false, "measure the cold tier as it is, moving nothing")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "coldbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(cfg config) error {
	if cfg.db == "" || cfg.dir == "" {
		return fmt.Errorf("-db and -dir are required")
	}
	ctx := context.Background()
	pool, err := store.Open(ctx, cfg.db, store.PoolOptions{MaxConns: 8})
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	bucket, err := archive.OpenBucket(ctx, "file://"+cfg.dir)
	if err != nil {
		return err
	}
	defer bucket.Close()
	if cfg.export != "" {
		return measureExport(ctx, st, bucket, cfg.export)
	}

	// The run finishes what an earlier, interrupted one began, and moves what is left.
	var hotBytesPerEvent float64
	if !cfg.skipMove {
		// Bytes per event of the months about to go cold, as PostgreSQL holds them (heap,
		// TOAST and indexes).
		var bytes, rows int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
			WHERE c.relname ~ '^audit_events_r[0-9]+_[0-9]{4}_[0-9]{2}$' AND to_date(right(c.relname, 7), 'YYYY_MM') < date_trunc('month', now()) - make_interval(months => $1)`, cfg.hotMonths).Scan(&bytes); err != nil {
			return err
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE event_timestamp < date_trunc('month', now()) - make_interval(months => $1)`, cfg.hotMonths).Scan(&rows); err != nil {
			return err
		}
		hotBytesPerEvent = float64(bytes) / float64(max(rows, 1))
		logf("moving %d events (%.0f bytes/event in PostgreSQL) older than %d hot months to %s", rows, hotBytesPerEvent, cfg.hotMonths, cfg.dir)
		began := time.Now()
		var hot lifecycle.HotMonths
		if err := hot.Decode(strconv.Itoa(cfg.hotMonths)); err != nil {
			return err
		}
		runner := &lifecycle.Runner{Store: st, Classes: audit.DefaultRetentionClasses, Now: time.Now,
			Config: lifecycle.Config{PremakeMonths: 1, LockTimeout: 2 * time.Second, IdempotencyWindow: 168 * time.Hour, HotMonths: hot},
			Cold:   &cold.Mover{Store: st, Tier: archive.NewCold(bucket, archive.ColdOptions{})}}
		m, err := st.BeginMaintenance(ctx)
		if err != nil {
			return err
		}
		rep, err := runner.Run(ctx, m)
		m.End()
		if err != nil {
			return err
		}
		var moved int64
		for _, a := range rep.Actions {
			if a.Kind == "partition.cold" {
				moved += a.Rows
			}
		}
		el := time.Since(began)
		fmt.Printf("move: %d events to the cold tier in %s (%.0f events/s)\n", moved, el.Round(time.Second), float64(moved)/el.Seconds())
		fmt.Printf("hot bytes/event (the moved months, in PostgreSQL): %.0f\n", hotBytesPerEvent)
	}
	// Files moved before lookup filters existed get theirs, as the next maintenance run does.
	began := time.Now()
	acts, err := (&cold.Mover{Store: st, Tier: archive.NewCold(bucket, archive.ColdOptions{})}).ExpireCold(ctx, func(int, time.Time) bool { return false })
	if err != nil {
		return err
	}
	if len(acts) > 0 {
		fmt.Printf("lookup filters computed for %d files written without one in %s\n", len(acts), time.Since(began).Round(time.Millisecond))
	}
	files, err := st.ColdFiles(ctx)
	if err != nil {
		return err
	}
	var coldBytes, coldRows, filterBytes int64
	months := map[time.Time]bool{}
	for _, f := range files {
		coldBytes += f.Bytes
		coldRows += f.Rows
		filterBytes += int64(len(f.LookupFilter))
		months[f.Month] = true
	}
	var hotRows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&hotRows); err != nil {
		return err
	}
	fmt.Printf("tiers: %d hot events, %d cold events in %d files over %d class-months\n", hotRows, coldRows, len(files), len(months))
	fmt.Printf("cold bytes/event: %.1f (%d files, %.1f MiB); lookup filters in the catalogue: %.2f bytes/event, %.0f bytes/file\n",
		float64(coldBytes)/float64(coldRows), len(files), float64(coldBytes)/(1<<20), float64(filterBytes)/float64(coldRows), float64(filterBytes)/float64(max(len(files), 1)))

	// Correlations to look up: cold ones from the files, hot ones from the partitions.
	rnd := rand.New(rand.NewPCG(1, 2))
	tier := archive.NewCold(bucket, archive.ColdOptions{})
	coldIDs, err := sampleCold(ctx, tier, files, rnd, cfg.samples)
	if err != nil {
		return err
	}
	rows, err := pool.Query(ctx, `SELECT correlation_id FROM audit_events TABLESAMPLE SYSTEM (1) LIMIT $1`, cfg.samples)
	if err != nil {
		return err
	}
	var hotIDs []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return err
		}
		hotIDs = append(hotIDs, c)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	fileTier := cold.NewTiered(st, cold.NewReader(bucket, 0))
	measure := func(name string, t *cold.Tiered, ids []string) error {
		// One pass to open the files (footers, page indexes, bloom filters), as a running
		// query function has; then the measured pass.
		if _, err := timelines(ctx, t, ids[:min(len(ids), 20)]); err != nil {
			return err
		}
		d, err := timelines(ctx, t, ids)
		if err != nil {
			return err
		}
		fmt.Printf("%-44s p50 %7.2f ms  p99 %7.2f ms  (%d timelines)\n", name, ms(pct(d, 50)), ms(pct(d, 99)), len(d))
		return nil
	}
	if err := measure("timeline, hot correlation (file://)", fileTier, hotIDs); err != nil {
		return err
	}
	if err := measure("timeline, cold correlation (file://)", fileTier, coldIDs); err != nil {
		return err
	}
	// First lookup of a process: nothing open yet.
	firstReader := cold.NewReader(bucket, 0)
	first := cold.NewTiered(st, firstReader)
	began = time.Now()
	if _, err := timelines(ctx, first, coldIDs[:1]); err != nil {
		return err
	}
	fmt.Printf("%-44s %7.2f ms (%d files opened of %d)\n", "timeline, cold, first of a process (file://)", ms(time.Since(began)), firstReader.Stats().Opened, len(files))

	// Growth: correlations of the oldest month looked up by a process that has nothing open
	// yet, with the catalogue cut to the oldest k months (no time bounds), then with the whole
	// tier and since/until spanning the oldest k months. What a lookup costs is the files it
	// opens and the bytes it reads; the catalogue decides which, so neither should grow with k.
	var sorted []time.Time
	for m := range months {
		sorted = append(sorted, m)
	}
	slices.SortFunc(sorted, time.Time.Compare)
	oldest := sorted[0]
	var oldIDs []string
	for _, f := range files {
		if f.Month.Equal(oldest) {
			ids, err := sampleCold(ctx, tier, []store.ColdFile{f}, rnd, max(cfg.samples/len(files), 5))
			if err != nil {
				return err
			}
			oldIDs = append(oldIDs, ids...)
		}
	}
	oldIDs = oldIDs[:min(len(oldIDs), 100)]
	var ks []int
	for k := 1; k < len(sorted); k *= 2 {
		ks = append(ks, k)
	}
	ks = append(ks, len(sorted))
	growth := func(name string, hot cold.Hot, since, until time.Time) error {
		r := cold.NewReader(bucket, 0)
		d, err := timelinesIn(ctx, cold.NewTiered(hot, r), oldIDs, since, until)
		if err != nil {
			return err
		}
		st := r.Stats()
		n := float64(len(d))
		fmt.Printf("%-44s p50 %7.2f ms  p99 %7.2f ms  files opened/lookup %5.2f  requests/lookup %6.1f  KiB read/lookup %7.1f\n",
			name, ms(pct(d, 50)), ms(pct(d, 99)), float64(st.Opened+st.Swept)/n, float64(st.Requests)/n, float64(st.Bytes)/1024/n)
		return nil
	}
	for _, k := range ks {
		if err := growth(fmt.Sprintf("timeline, cold, %d cold month(s) in tier", k), &someMonths{Store: st, upTo: sorted[k-1]}, time.Time{}, time.Time{}); err != nil {
			return err
		}
	}
	for _, k := range ks {
		if err := growth(fmt.Sprintf("timeline, cold, since/until span %d of %d months", k, len(sorted)), st, oldest, sorted[k-1].AddDate(0, 1, 0)); err != nil {
			return err
		}
	}

	if !cfg.skipS3 {
		s3b, stop, err := s3Copy(ctx, bucket, files)
		if err != nil {
			return err
		}
		defer stop()
		if err := measure("timeline, cold correlation (S3 server)", cold.NewTiered(st, cold.NewReader(s3b, 0)), coldIDs); err != nil {
			return err
		}
		firstReader := cold.NewReader(s3b, 0)
		first := cold.NewTiered(st, firstReader)
		began := time.Now()
		if _, err := timelines(ctx, first, coldIDs[:1]); err != nil {
			return err
		}
		fmt.Printf("%-44s %7.2f ms (%d files opened of %d)\n", "timeline, cold, first of a process (S3)", ms(time.Since(began)), firstReader.Stats().Opened, len(files))
	}

	// Export of one cold month, in a process of its own so its peak RSS is its own.
	month := sorted[len(sorted)/2].Format("2006-01")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, limit := range []string{"", "96MiB"} {
		cmd := exec.Command(self, "-db", cfg.db, "-dir", cfg.dir, "-export-month", month)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Env = os.Environ()
		if limit != "" {
			cmd.Env = append(cmd.Env, "GOMEMLIMIT="+limit)
		}
		fmt.Printf("export, GOMEMLIMIT=%s: ", cmp.Or(limit, "(unset)"))
		if err := cmd.Run(); err != nil {
			return err
		}
	}
	return nil
}

// someMonths is the store with the catalogue cut to the months up to upTo.
type someMonths struct {
	*store.Store
	upTo time.Time
}

func (s *someMonths) ColdFilesFor(ctx context.Context, q store.ColdFileQuery) ([]store.ColdFile, error) {
	files, err := s.Store.ColdFilesFor(ctx, q)
	return slices.DeleteFunc(files, func(f store.ColdFile) bool { return f.Month.After(s.upTo) }), err
}

func timelines(ctx context.Context, t *cold.Tiered, ids []string) ([]time.Duration, error) {
	return timelinesIn(ctx, t, ids, time.Time{}, time.Time{})
}

// timelinesIn looks up each correlation's timeline, within [since, until) when they are set.
func timelinesIn(ctx context.Context, t *cold.Tiered, ids []string, since, until time.Time) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		f := store.Filter{CorrelationIDs: []string{id}, ExceptCategories: []string{audit.OwnCategory}}
		if !since.IsZero() {
			f.Since, f.Until = &since, &until
		}
		began := time.Now()
		page, err := t.QueryEvents(ctx, store.QueryParams{Filter: f, Order: store.Ascending, Limit: 100})
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(began))
		if len(page.Events) == 0 {
			return nil, fmt.Errorf("timeline %s is empty", id)
		}
	}
	return out, nil
}

// sampleCold picks n correlation ids from random files.
func sampleCold(ctx context.Context, tier *archive.Cold, files []store.ColdFile, rnd *rand.Rand, n int) ([]string, error) {
	var out []string
	for len(out) < n {
		f := files[rnd.IntN(len(files))]
		var ids []string
		err := tier.Scan(ctx, archive.ColdFile{Key: f.Key, Rows: f.Rows, Bytes: f.Bytes, SHA256: f.SHA256, RowsSHA256: f.RowsSHA256}, func(r *archive.ColdRow) error {
			if len(ids) == 0 || ids[len(ids)-1] != r.CorrelationID {
				ids = append(ids, strings.Clone(r.CorrelationID))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for range min(20, n-len(out)) {
			out = append(out, ids[rnd.IntN(len(ids))])
		}
	}
	return out, nil
}

// s3Copy starts an S3 server in process and copies the cold files into a bucket of it.
func s3Copy(ctx context.Context, from *blob.Bucket, files []store.ColdFile) (*blob.Bucket, func(), error) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("cold")}); err != nil {
		srv.Close()
		return nil, nil, err
	}
	b, err := s3blob.OpenBucket(ctx, client, "cold", nil)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	for _, f := range files {
		body, err := from.ReadAll(ctx, f.Key)
		if err != nil {
			return nil, nil, err
		}
		if err := b.WriteAll(ctx, f.Key, body, nil); err != nil {
			return nil, nil, err
		}
	}
	return b, func() { b.Close(); srv.Close() }, nil
}

// measureExport streams one cold month in time order, as the export route does (each event's
// JSON), and prints events/s and the process's peak RSS.
func measureExport(ctx context.Context, st *store.Store, bucket *blob.Bucket, month string) error {
	m, err := time.Parse("2006-01", month)
	if err != nil {
		return err
	}
	end := m.AddDate(0, 1, 0)
	t := cold.NewTiered(st, cold.NewReader(bucket, 0))
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	var buf []byte
	began := time.Now()
	n, err := t.StreamEvents(ctx, store.StreamParams{Filter: store.Filter{Since: &m, Until: &end}, Order: store.Ascending}, func(e *audit.Event) error {
		buf = append(e.AppendJSON(buf[:0]), '\n')
		_, err := w.Write(buf)
		return err
	})
	if err != nil {
		return err
	}
	el := time.Since(began)
	fmt.Printf("export of cold month %s: %d events in %s, %.0f events/s, peak RSS %s\n", month, n, el.Round(time.Millisecond), float64(n)/el.Seconds(), peakRSS())
	return nil
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		}
	}
	return "unknown"
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
