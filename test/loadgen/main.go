// Command loadgen measures the write function over loopback next to the database's own ingest
// ceiling, in one run:
//
//	make bench-write   (or: go run ./test/loadgen -duration 10s)
//
// It creates a fresh migrated database (name prefix auditstore_loadgen_) for every
// measurement on the server of -db, and drops it afterwards. First the ceiling: pre-generated
// events written with pgx CopyFrom (4 connections, 1000-row batches) and with multi-row INSERT
// (4 connections, 100 rows per statement), package test/ceiling, for as long as a scenario
// runs; the faster is 1.00. Then it builds the write function, starts it as a subprocess per
// scenario (so that each peak RSS is that scenario's own) and sends it:
//
//	json    single JSON events from -clients closed-loop clients
//	batch   JSON arrays of -batch-size events from -batch-clients clients
//	ce      CloudEvents in binary mode (ce-* headers, body = event_data) from -clients clients
//	paced   single JSON events at a steady -rate a second, open loop: each request is sent
//	        when due whatever earlier ones are doing, and its latency counts from then
//	emitter the batch scenario's events emitted by -emitters goroutines of this process into
//	        the client SDK's Emitter (shared/client), which batches them (-batch-size events a
//	        request, -batch-clients requests at once); its rate counts from the first Emit
//	        until Close has drained the buffer
//
// for -duration each (or -events events). Every event has a fresh UUIDv7 event_id, so every
// request stores new rows. The write function's settings (WRITE_MAX_CONNS, WRITE_COMMITTERS,
// WRITE_GROUP_WAIT, ...) come from the environment. The report is a Markdown table on stdout;
// progress goes to stderr.
//
// The load generator, the function and PostgreSQL share this machine's cores: the figures are
// what they do together, and the CPU columns say who used what. To see where the CPU goes,
// -fn-profiles DIR takes CPU and allocation profiles of the write function under each scenario
// (go tool pprof DIR/json-cpu.pprof) and -cpuprofile one of the generator itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditstore/auditstore/test/ceiling"
	"github.com/auditstore/auditstore/test/fnproc"
	"github.com/auditstore/auditstore/test/pgcluster"
	"github.com/google/uuid"
)

// config is the command line.
type config struct {
	db            string
	scenarios     string
	clients       int
	batchClients  int
	batchSize     int
	duration      time.Duration
	events        int64
	rate          int
	emitters      int
	ceilingEvents int
	skipCeiling   bool
	writeBin      string
	cpuProfile    string
	fnProfiles    string
	sealInterval  time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.db, "db", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL server to create the databases on (a postgres:// URL of a database to connect to for CREATE DATABASE); default $TEST_DATABASE_URL, else a throwaway server of its own")
	flag.StringVar(&cfg.scenarios, "scenarios", "json,batch,ce,paced", "comma-separated scenarios to run: json, batch, ce, paced, emitter")
	flag.IntVar(&cfg.clients, "clients", 64, "concurrent clients of the json and ce scenarios")
	flag.IntVar(&cfg.batchClients, "batch-clients", 8, "concurrent clients of the batch scenario")
	flag.IntVar(&cfg.batchSize, "batch-size", 100, "events per request of the batch scenario (1..1000)")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long each scenario runs")
	flag.Int64Var(&cfg.events, "events", 0, "run each scenario for this many events instead of -duration (0: use -duration)")
	flag.IntVar(&cfg.rate, "rate", 1000, "events a second offered by the paced scenario")
	flag.IntVar(&cfg.emitters, "emitters", 8, "goroutines calling Emit in the emitter scenario")
	flag.IntVar(&cfg.ceilingEvents, "ceiling-events", 50_000, "pre-generated events the ceiling writes again and again (with fresh ids) for -duration or -events")
	flag.BoolVar(&cfg.skipCeiling, "skip-ceiling", false, "do not measure the ceiling (no ratios)")
	flag.StringVar(&cfg.writeBin, "write-bin", "", "write function binary to run instead of building ./functions/write/cmd")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator itself to this file")
	flag.StringVar(&cfg.fnProfiles, "fn-profiles", "", "write CPU and allocation profiles of the write function under each scenario into this directory (<scenario>-cpu.pprof, <scenario>-allocs.pprof): from 1s after the start to 1s before the end of -duration; the function serves them on a loopback port of its own (PPROF_ADDR)")
	flag.DurationVar(&cfg.sealInterval, "seal-interval", time.Second, "how often the batch-sealed scenario's sealer runs (SEAL_INTERVAL)")
	flag.Parse()
	// Event ids come from a buffered pool of randomness instead of a getrandom call each.
	uuid.EnableRandPool()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// scenario is one kind of traffic.
type scenario struct {
	name      string
	describe  string
	path      string
	clients   int
	paced     bool
	emitter   bool
	templates func() ([]*template, error)
	// env is added to the write function's environment.
	env []string
	// sealed runs the integrity sealer during the load and verifies the database after it.
	sealed bool
}

// measurement is one row of the report.
type measurement struct {
	name, describe string
	clients        string
	rate           float64 // events/s
	tally          *tally
	peakRSS        int64
	cpu            usage
	events         int64
	rows           int64
	seal           *sealResult
	// commits and committed are the write function's transactions and the events in them
	// (audit_write_batch_size), so events per commit shows how well group commit coalesced.
	commits, committed float64
}

func run(cfg config) error {
	began := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	scenarios := map[string]scenario{
		"json": {name: "json", describe: "single JSON events", path: "/api/v1/audit/events", clients: cfg.clients,
			templates: func() ([]*template, error) { return jsonTemplates(1000, 0) }},
		"batch": {name: "batch", describe: fmt.Sprintf("JSON batches of %d", cfg.batchSize), path: "/api/v1/audit/events", clients: cfg.batchClients,
			templates: func() ([]*template, error) { return jsonTemplates(10, cfg.batchSize) }},
		"ce": {name: "ce", describe: "CloudEvents binary mode", path: "/", clients: cfg.clients,
			templates: func() ([]*template, error) { return ceTemplates(1000) }},
		"batch-sealed": {name: "batch-sealed", describe: fmt.Sprintf("JSON batches of %d, integrity on (hashed, sealed every %s)", cfg.batchSize, cfg.sealInterval),
			path: "/api/v1/audit/events", clients: cfg.batchClients, sealed: true,
			templates: func() ([]*template, error) { return jsonTemplates(10, cfg.batchSize) }},
		"batch-unhashed": {name: "batch-unhashed", describe: fmt.Sprintf("JSON batches of %d, integrity off (WRITE_EVENT_HASH=false, no sealer)", cfg.batchSize),
			path: "/api/v1/audit/events", clients: cfg.batchClients, env: []string{"WRITE_EVENT_HASH=false"},
			templates: func() ([]*template, error) { return jsonTemplates(10, cfg.batchSize) }},
		"batch-v1": {name: "batch-v1", describe: fmt.Sprintf("JSON batches of %d, hashed with version 1 (WRITE_HASH_VERSION=1), sealed every %s", cfg.batchSize, cfg.sealInterval),
			path: "/api/v1/audit/events", clients: cfg.batchClients, sealed: true, env: []string{"WRITE_HASH_VERSION=1"},
			templates: func() ([]*template, error) { return jsonTemplates(10, cfg.batchSize) }},
		"batch-v2": {name: "batch-v2", describe: fmt.Sprintf("JSON batches of %d, hashed with version 2 (each member salted, erasable), sealed every %s", cfg.batchSize, cfg.sealInterval),
			path: "/api/v1/audit/events", clients: cfg.batchClients, sealed: true, env: []string{"WRITE_HASH_VERSION=2"},
			templates: func() ([]*template, error) { return jsonTemplates(10, cfg.batchSize) }},
		"paced": {name: "paced", describe: fmt.Sprintf("single JSON events, paced at %d/s (open loop)", cfg.rate), path: "/api/v1/audit/events", paced: true,
			templates: func() ([]*template, error) { return jsonTemplates(1000, 0) }},
		"emitter": {name: "emitter", describe: fmt.Sprintf("client Emitter, batches of %d from %d goroutines", cfg.batchSize, cfg.emitters), clients: cfg.batchClients, emitter: true,
			templates: func() ([]*template, error) { return nil, nil }},
	}
	var selected []scenario
	for _, name := range strings.Split(cfg.scenarios, ",") {
		sc, ok := scenarios[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("-scenarios: %q is not one of json, batch, ce, batch-sealed, batch-unhashed, batch-v1, batch-v2, paced, emitter", name)
		}
		selected = append(selected, sc)
	}
	switch {
	case cfg.clients < 1 || cfg.batchClients < 1 || cfg.emitters < 1:
		return errors.New("-clients, -batch-clients and -emitters must be at least 1")
	case cfg.batchClients > 64:
		return errors.New("-batch-clients must be at most 64")
	case cfg.batchSize < 1 || cfg.batchSize > 1000:
		return errors.New("-batch-size must be between 1 and 1000")
	case cfg.duration <= 0 && cfg.events <= 0:
		return errors.New("-duration must be positive (or set -events)")
	case cfg.rate < 1 || cfg.rate > 1_000_000:
		return errors.New("-rate must be between 1 and 1000000")
	case cfg.ceilingEvents < 4000 && !cfg.skipCeiling:
		return errors.New("-ceiling-events must be at least 4000 (4 connections × 1000-row batches)")
	}

	if cfg.db == "" {
		logf("TEST_DATABASE_URL is not set: starting a throwaway PostgreSQL")
		srv, err := pgcluster.Start(ctx, pgcluster.Options{Logf: logf})
		if err != nil {
			return err
		}
		defer srv.Stop() //nolint:errcheck // best effort on the way out
		cfg.db = srv.URL
	}
	if u, err := url.Parse(cfg.db); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("-db must be a postgres:// URL")
	}
	pgVersion, err := serverVersion(ctx, cfg.db)
	if err != nil {
		return err
	}
	srv := server{base: cfg.db}

	tmp, err := os.MkdirTemp("", "auditstore-loadgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := cfg.writeBin
	if bin == "" {
		logf("building ./functions/write/cmd")
		if bin, err = buildWrite(ctx, tmp); err != nil {
			return err
		}
	}

	var ceilings []measurement
	var best float64
	if !cfg.skipCeiling {
		if ceilings, err = measureCeiling(ctx, cfg, srv); err != nil {
			return err
		}
		for _, m := range ceilings {
			best = max(best, m.rate)
		}
	}

	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var results []measurement
	for i, sc := range selected {
		m, err := measureScenario(ctx, cfg, srv, bin, sc, fmt.Sprintf("%s/write-%d.log", tmp, i))
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		results = append(results, m)
	}

	report(os.Stdout, cfg, pgVersion, ceilings, best, results, time.Since(began))
	return nil
}

// measureCeiling writes the same events with COPY and with multi-row INSERT, each into a
// fresh database for as long as a scenario runs: passes over a pool of n events, each pass
// with fresh event ids.
func measureCeiling(ctx context.Context, cfg config, srv server) ([]measurement, error) {
	logf("generating %d events for the ceiling", cfg.ceilingEvents)
	events, err := ceilingEvents(cfg.ceilingEvents)
	if err != nil {
		return nil, err
	}
	defer debug.FreeOSMemory() // the events are garbage once measured
	var out []measurement
	for _, c := range []struct {
		name  string
		batch int
		write ceiling.WriteFunc
	}{
		{"ceiling: COPY", 1000, ceiling.Copy},
		{"ceiling: INSERT", ceiling.InsertRows, ceiling.Insert},
	} {
		u, drop, err := srv.fresh(ctx)
		if err != nil {
			return nil, err
		}
		m, err := func() (measurement, error) {
			defer drop()
			pool, err := openPool(ctx, u, 4)
			if err != nil {
				return measurement{}, err
			}
			defer pool.Close()
			logf("%s: 4 connections, %d-row batches, for %s", c.name, c.batch, span(cfg))
			m := measurement{name: c.name, describe: fmt.Sprintf("4 connections × %d-row batches", c.batch), clients: "4"}
			meter := startMeter(0)
			var busy time.Duration
			for pass := 0; ; pass++ {
				if pass > 0 {
					for i := range events {
						events[i].EventID = uuid.Must(uuid.NewV7())
					}
				}
				start := time.Now()
				if _, err := ceiling.Run(ctx, pool, events, 4, c.batch, c.write); err != nil {
					return m, err
				}
				busy += time.Since(start)
				m.events += int64(len(events))
				if (cfg.events > 0 && m.events >= cfg.events) || (cfg.events <= 0 && busy >= cfg.duration) {
					break
				}
			}
			pids, err := serverPids(ctx, u)
			if err != nil {
				return m, err
			}
			m.cpu = meter.stop(pids)
			m.rate = float64(m.events) / busy.Seconds()
			m.rows, err = countRows(ctx, u)
			return m, err
		}()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		logf("%s: %.0f events/s", c.name, m.rate)
		out = append(out, m)
	}
	return out, nil
}

// measureScenario runs one scenario against a write function of its own on a fresh database.
func measureScenario(ctx context.Context, cfg config, srv server, bin string, sc scenario, logPath string) (measurement, error) {
	templates, err := sc.templates()
	if err != nil {
		return measurement{}, err
	}
	u, drop, err := srv.fresh(ctx)
	if err != nil {
		return measurement{}, err
	}
	defer drop()
	env := sc.env
	var profileAddr string
	if cfg.fnProfiles != "" {
		var penv []string
		if penv, profileAddr, err = profileEnv(); err != nil {
			return measurement{}, err
		}
		env = append(slices.Clone(env), penv...)
	}
	fn, err := startWrite(ctx, bin, u, logPath, env...)
	if err != nil {
		return measurement{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			fn.stop() //nolint:errcheck // on an error path
		}
	}()
	pid := fn.cmd.Process.Pid
	l := &load{url: fn.url + sc.path, templates: templates}
	defer l.close()

	m := measurement{name: sc.name, describe: sc.describe, tally: newTally(), clients: fmt.Sprint(sc.clients)}
	if sc.paced {
		m.clients = "open loop"
		logf("%s: %s for %s", sc.name, sc.describe, span(cfg))
	} else {
		logf("%s: %s, %d clients, for %s", sc.name, sc.describe, sc.clients, span(cfg))
	}
	var seal *sealing
	if sc.sealed {
		if seal, err = startSealing(ctx, u, cfg.sealInterval); err != nil {
			return m, err
		}
	}
	meter := startMeter(pid)
	var prof *profiler
	if profileAddr != "" {
		prof = startProfiles(ctx, profileAddr, cfg.fnProfiles, sc.name, cfg.duration-2*profileWarmup)
	}
	var elapsed time.Duration
	if sc.emitter {
		el := &emitterLoad{url: fn.url, batchSize: cfg.batchSize, senders: sc.clients, emitters: cfg.emitters}
		if elapsed, err = el.run(ctx, m.tally, cfg.duration, cfg.events); err != nil {
			return m, err
		}
		if n := el.full.Load(); n > 0 {
			logf("%s: Emit found the buffer full %d times (and emitted again)", sc.name, n)
		}
	} else if sc.paced {
		elapsed = l.paced(ctx, m.tally, cfg.rate, cfg.duration, cfg.events, 2048)
	} else {
		elapsed = l.closedLoop(ctx, m.tally, sc.clients, cfg.duration, cfg.events)
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	if prof != nil {
		if err := prof.wait(); err != nil {
			return m, err
		}
		logf("%s: profiles of the write function in %s", sc.name, cfg.fnProfiles)
	}
	pids, err := serverPids(ctx, u)
	if err != nil {
		return m, err
	}
	m.cpu = meter.stop(pids)
	if seal != nil {
		sr, err := seal.finish(ctx)
		if err != nil {
			return m, err
		}
		m.seal = &sr
	}
	if m.peakRSS, err = peakRSS(pid); err != nil {
		return m, err
	}
	m.commits, m.committed = commitStats(ctx, fn.url)
	stopped = true
	if err := fn.stop(); err != nil {
		logf("%s: the write function did not stop cleanly: %v\n%s", sc.name, err, tail(logPath, 10))
	}
	m.events = m.tally.events
	m.rate = float64(m.tally.events) / elapsed.Seconds()
	if m.rows, err = countRows(ctx, u); err != nil {
		return m, err
	}
	logf("%s: %.0f events/s, %d requests, %d errors", sc.name, m.rate, m.tally.requests, m.tally.errors())
	return m, nil
}

func span(cfg config) string {
	if cfg.events > 0 {
		return fmt.Sprintf("%d events", cfg.events)
	}
	return cfg.duration.String()
}

// report writes the Markdown report.
func report(w io.Writer, cfg config, pgVersion string, ceilings []measurement, best float64, results []measurement, took time.Duration) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("## Write function load test\n\n")
	p("%s; %d CPU cores shared by the load generator, the write function and PostgreSQL %s; %s; commit %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), pgVersion, runtime.Version(), gitDescribe())
	p("Each measurement on a fresh migrated database; %s per scenario; write function settings: %s.\n\n", span(cfg), writeEnv())
	p("| measurement | clients | events/s | × ceiling | p50 ms | p99 ms | max ms | peak RSS MiB | errors | CPU µs/event fn / pg / gen | other load (cores) | disk wait |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	ratio := func(r float64) string {
		if best == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", r/best)
	}
	cpu := func(m measurement) string {
		per := func(d time.Duration, known bool) string {
			if m.events == 0 || !known {
				return "–"
			}
			return fmt.Sprintf("%.0f", float64(d.Microseconds())/float64(m.events))
		}
		return fmt.Sprintf("%s / %s / %s", per(m.cpu.fn, m.tally != nil), per(m.cpu.pg, m.cpu.pgKnown), per(m.cpu.gen, true))
	}
	other := func(m measurement) string {
		return fmt.Sprintf("%.2f | %s", m.cpu.other.Seconds()/m.cpu.wall.Seconds(), fnproc.Percent(m.cpu.ioStall))
	}
	for _, m := range ceilings {
		p("| %s (%s) | %s | %.0f | %s | – | – | – | – | 0 | %s | %s |\n", m.name, m.describe, m.clients, m.rate, ratio(m.rate), cpu(m), other(m))
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	for _, m := range results {
		lat := sorted(m.tally.latencies)
		p("| %s: %s | %s | %.0f | %s | %s | %s | %s | %.0f | %d | %s | %s |\n", m.name, m.describe, m.clients, m.rate, ratio(m.rate),
			ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100)), float64(m.peakRSS)/(1<<20), m.tally.errors(), cpu(m), other(m))
	}
	p("\n")
	p("- events/s: acknowledged (2xx) events over the wall time from the first request to the last answer. Latency is per request")
	p(" (a batch is one request), of 2xx answers; the paced run counts it from each request's due time, not from when it went out.\n")
	p("- CPU µs/event: the write function's process, the server processes of the measurement's database (its backends and autovacuum")
	p(" workers, and the WAL writer, checkpointer and background writer every database shares; – when the server is not on this machine),")
	p(" and the load generator, each divided by the events acknowledged. Other load: the CPU the rest of the machine used meanwhile,")
	p(" in cores; anything much above 0 means the figures of that row are depressed by work that is not part of the test.")
	p(" Disk wait: the share of the time some task of the machine waited for the disk (Linux PSI, io some); high values go with")
	p(" latency tails that are the disk's.\n")
	for _, m := range ceilings {
		if m.rows != m.events {
			p("- **%s: %d rows stored for %d events written.**\n", m.name, m.rows, m.events)
		}
	}
	for _, m := range results {
		var st []string
		for _, k := range slices.Sorted(maps.Keys(m.tally.statuses)) {
			st = append(st, fmt.Sprintf("%s × %d", k, m.tally.statuses[k]))
		}
		p("- %s: %d requests (%s); %d events acknowledged, %d rows stored", m.name, m.tally.requests, strings.Join(st, ", "), m.events, m.rows)
		if m.commits > 0 {
			p("; %.0f transactions, %.1f events each", m.commits, m.committed/m.commits)
		}
		if m.rows != m.events {
			p(" **(rows ≠ acknowledged events)**")
		}
		if m.tally.lag != nil {
			lag := sorted(m.tally.lag)
			p("; sending lag behind schedule p99 %s ms, max %s ms", ms(percentile(lag, 99)), ms(percentile(lag, 100)))
		}
		p(".\n")
		if sr := m.seal; sr != nil {
			lags := sorted(sr.lags)
			p("  - integrity: %d events sealed, seal lag (write to seal) p50 %s ms, p99 %s ms, max %s ms; verify: %d events in %s = %.0f events/s, %s.\n",
				len(lags), ms(percentile(lags, 50)), ms(percentile(lags, 99)), ms(percentile(lags, 100)), sr.verified, sr.took.Round(time.Millisecond),
				float64(sr.verified)/sr.took.Seconds(), map[bool]string{true: "clean", false: fmt.Sprintf("**%d problems**", sr.problems)}[sr.ok])
		}
		for _, k := range slices.Sorted(maps.Keys(m.tally.samples)) {
			p("  - first %s: `%s`\n", k, strings.ReplaceAll(m.tally.samples[k], "\n", " "))
		}
	}
	p("- The whole run took %s.\n", took.Round(time.Second))
}

// commitStats reads the write function's audit_write_batch_size histogram: how many
// transactions it committed and how many events they held (0, 0 when unreadable).
func commitStats(ctx context.Context, fnURL string) (commits, events float64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fnURL+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "audit_write_batch_size_count":
			commits = v
		case "audit_write_batch_size_sum":
			events = v
		}
	}
	return commits, events
}

// writeEnv lists the write function's settings taken from the environment.
func writeEnv() string {
	var set []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "WRITE_") || k == "RETENTION_CLASSES" || k == "MAX_CLOCK_SKEW" || k == "MAX_EVENT_AGE" {
			set = append(set, "`"+kv+"`")
		}
	}
	if len(set) == 0 {
		return "defaults"
	}
	slices.Sort(set)
	return strings.Join(set, ", ")
}

func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
