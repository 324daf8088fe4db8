// Command querybench measures the query function over HTTP next to the same queries run
// directly through the store, in one run, on a seeded database:
//
//	make bench-query   (or: go run ./test/querybench -db postgres://.../auditstore_bench_query)
//
// The database is one test/seed filled. Keys are sampled from it first (a plain SELECT over a
// block sample: with a count, EXPLAIN and SET LOCAL statement_timeout the only SQL of its
// own), then the query function is built and started on a free port (QUERY_MAX_CONNS=4, a
// cursor secret of its own, AUTH_MODE=none and QUERY_AUDIT_READS=false unless set, so the
// benchmark's own reads do not pile up in the database it measures; the rest of the
// environment is inherited). Each scenario runs its -keys keys one at a time, through one
// keep-alive HTTP client and through store.QueryEvents with the same QueryParams (that is the
// same SQL: the store makes it), alternating which goes first:
//
//	a  correlation timeline: correlation_id=<random correlation>
//	b  event_type=<service>.* or <service>.<object>.*, since=24h, limit 100
//	c  actor_id and event_outcome, since=7d, limit 100
//	d  data containment (data={...}) of four kinds from common to rare, limit 100
//	e  data_path predicates (ranges, a conjunction, an equality), limit 100
//	f  a broad filter walked with next_cursor to page -pages (limit 100): page 1 vs page N,
//	   and page N by offset for comparison; a filter whose page 1 takes over -walk-skip, or
//	   whose walk over -walk-budget, is not walked to the end (it is reported)
//	g  GET /api/v1/audit/export with -export-limit: events/s and the function's peak RSS
//	   (VmHWM; a fresh process, so the peak is the export's), next to StreamEvents directly
//
// With -compare-scope ns1,ns2, each key of a list scenario is also run directly twice more, as
// a cluster reader and as a reader of those namespaces (the scope the query function gives a
// namespace-scoped reader's filter), alternating which goes first, and the report sets the two
// side by side: what a scope costs, measured in one run.
//
// The report is Markdown on stdout: per scenario p50/p99/max both ways, the HTTP overhead at
// p50 and the goals of the issue; then a breakdown by kind of key, and EXPLAIN (ANALYZE,
// BUFFERS) of the slowest key of each scenario, run again with the exact SQL and values the
// store sent. Progress goes to stderr. The machine is shared by the function, PostgreSQL and
// this program; the load average is reported to show how quiet it was.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/fnproc"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kelseyhightower/envconfig"
)

// config is the command line.
type config struct {
	db           string
	keys         int
	warmup       int
	pages        int
	exportLimit  string
	scenarios    string
	seed         uint64
	maxConns     int
	queryBin     string
	explain      bool
	walkSkip     time.Duration
	walkBudget   time.Duration
	token        string
	scope        string
	compareScope []string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.db, "db", os.Getenv("DATABASE_URL"), "postgres:// URL of a database test/seed filled; default $DATABASE_URL")
	flag.IntVar(&cfg.keys, "keys", 200, "random keys per scenario")
	flag.IntVar(&cfg.warmup, "warmup", 20, "other keys run directly, untimed, before each scenario")
	flag.IntVar(&cfg.pages, "pages", 50, "page that scenario f walks to with cursors (limit 100)")
	flag.StringVar(&cfg.exportLimit, "export-limit", "since=30d", "filter of the export run (g), as query parameters: since, correlation_id, event_type (a prefix*), actor_id, event_outcome, namespace; empty: every event")
	flag.StringVar(&cfg.scenarios, "scenarios", "a,b,c,d,e,f,g", "comma-separated scenarios to run")
	flag.Uint64Var(&cfg.seed, "seed", 1, "random seed of the key sampling")
	flag.IntVar(&cfg.maxConns, "max-conns", 4, "QUERY_MAX_CONNS of the function, and the direct pool's size")
	flag.StringVar(&cfg.queryBin, "query-bin", "", "query function binary to run instead of building ./functions/query/cmd")
	flag.BoolVar(&cfg.explain, "explain", true, "append EXPLAIN (ANALYZE, BUFFERS) of each scenario's slowest key")
	flag.DurationVar(&cfg.walkSkip, "walk-skip", 250*time.Millisecond, "scenario f does not walk a filter whose page 1 takes longer than this (its page 1 still counts)")
	flag.DurationVar(&cfg.walkBudget, "walk-budget", 10*time.Second, "scenario f stops walking a filter one way after this long")
	flag.StringVar(&cfg.token, "token", "", "Bearer token every HTTP request sends (with AUTH_MODE=static and AUTH_TOKENS_FILE in the environment)")
	flag.StringVar(&cfg.scope, "scope", "", "comma-separated namespaces the token's reader is limited to: the direct queries get the same scope, so both run the same SQL")
	compareScope := flag.String("compare-scope", "", "comma-separated namespaces: scenarios a-e also run each key directly as a cluster reader and as a reader of these namespaces, alternating, and report the ratio")
	flag.Parse()
	if *compareScope != "" {
		cfg.compareScope = strings.Split(*compareScope, ",")
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "querybench:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	began := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	selected := map[string]bool{}
	for _, s := range strings.Split(cfg.scenarios, ",") {
		s = strings.TrimSpace(s)
		if len(s) != 1 || s < "a" || s > "g" {
			return fmt.Errorf("-scenarios: %q is not one of a, b, c, d, e, f, g", s)
		}
		selected[s] = true
	}
	exportSpec, err := parseSpec(cfg.exportLimit)
	if err != nil {
		return fmt.Errorf("-export-limit: %w", err)
	}
	switch {
	case cfg.db == "":
		return errors.New("-db (or DATABASE_URL) is required: a postgres:// URL of a seeded database")
	case cfg.keys < 1 || cfg.warmup < 0:
		return errors.New("-keys must be at least 1 and -warmup not negative")
	case cfg.pages < 2 || cfg.pages > 101:
		return errors.New("-pages must be between 2 and 101 (an offset is at most 10000)")
	case cfg.maxConns < 1:
		return errors.New("-max-conns must be at least 1")
	}

	// The direct pool is the function's (the query configuration from the environment, so the
	// same statement_timeout, planner settings and warmed connections), plus a tracer that
	// remembers the last statement for EXPLAIN.
	var qcfg query.Config
	if err := envconfig.Process("", &qcfg); err != nil {
		return err
	}
	pcfg, err := store.PoolConfig(cfg.db, qcfg.PoolOptions(int32(cfg.maxConns)))
	if err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	last := &lastQuery{}
	pcfg.ConnConfig.Tracer = last
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	info, err := describe(ctx, pool)
	if err != nil {
		return err
	}
	logf("database: %d events from %s to %s; sampling keys", info.events, info.oldest.Format(time.DateTime), info.newest.Format(time.DateTime))
	samples, err := sampleEvents(ctx, pool, 20_000, int64(cfg.seed))
	if err != nil {
		return err
	}
	km := &keyMaker{rng: rand.New(rand.NewPCG(cfg.seed, 0x5eed)), samples: samples, now: time.Now()}

	dir, err := os.MkdirTemp("", "querybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := cfg.queryBin
	if bin == "" {
		logf("building ./functions/query/cmd")
		if bin, err = buildQuery(ctx, dir); err != nil {
			return err
		}
	}
	b := &bench{
		client: &http.Client{Transport: bearer{token: cfg.token, next: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}},
		store:  store.New(pool),
		pool:   pool,
		last:   last,
	}
	rep := &report{cfg: cfg, info: info, loadBefore: loadavg()}

	lists := []listScenarioDef{
		{"a", "(a) correlation timeline", "p99 ≤ 10 ms", 10 * time.Millisecond, km.timeline},
		{"b", "(b) event_type prefix, last 24 h, limit 100", "p99 ≤ 25 ms", 25 * time.Millisecond, km.typePrefix},
		{"c", "(c) actor + outcome, last 7 d, limit 100", "p99 ≤ 25 ms", 25 * time.Millisecond, km.actorOutcome},
		{"d", "(d) data containment, limit 100", "p99 ≤ 50 ms", 50 * time.Millisecond, km.containment},
		{"e", "(e) data_path, limit 100", "", 0, km.dataPath},
	}
	needFunction := false
	for _, l := range lists {
		needFunction = needFunction || selected[l.id]
	}
	err = b.measure(ctx, cfg, runPlan{selected: selected, lists: lists, km: km, bin: bin, dir: dir, export: exportSpec, needFunction: needFunction}, rep)
	if err != nil {
		rep.aborted = err.Error()
	}
	rep.loadAfter = loadavg()
	rep.took = time.Since(began)
	if len(rep.lists) > 0 || len(rep.walks) > 0 || rep.export != nil {
		rep.write(os.Stdout)
	}
	return err
}

// listScenarioDef is one list scenario of the run.
type listScenarioDef struct {
	id, name, goal string
	goalP99        time.Duration
	keys           func(int) []spec
}

// runPlan is what measure runs.
type runPlan struct {
	selected     map[string]bool
	lists        []listScenarioDef
	km           *keyMaker
	bin, dir     string
	export       spec
	needFunction bool
}

// measure runs the selected scenarios into rep; what it measured before an error stays there.
func (b *bench) measure(ctx context.Context, cfg config, pl runPlan, rep *report) error {
	if pl.needFunction || pl.selected["f"] {
		f, err := startQuery(ctx, pl.bin, cfg.db, cfg.maxConns, pl.dir+"/query.log")
		if err != nil {
			return err
		}
		b.url = f.url
		for _, l := range pl.lists {
			if !pl.selected[l.id] {
				continue
			}
			keys, warm := scoped(l.keys(cfg.keys), cfg.scope), scoped(l.keys(cfg.warmup), cfg.scope)
			logf("%s: %d keys, e.g. %s", l.name, len(keys), keys[0])
			stall := fnproc.StartIOStall()
			ms, err := b.listScenario(ctx, keys, warm)
			if err != nil {
				_ = f.stop()
				return fmt.Errorf("%s: %w", l.name, err)
			}
			res := listResult{id: l.id, name: l.name, goal: l.goal, goalP99: l.goalP99, m: ms, ioStall: stall.Share()}
			if cfg.explain {
				slowest := slices.MaxFunc(ms, func(x, y measured) int { return cmp.Compare(x.direct, y.direct) })
				res.slowest = slowest
				if res.plan, err = b.explain(ctx, slowest.stmt); err != nil {
					res.plan = "EXPLAIN failed: " + err.Error()
				}
			}
			rep.lists = append(rep.lists, res)
			logf("%s: HTTP p50 %s p99 %s; direct p50 %s p99 %s; waited for the disk %s of the time", l.name,
				ms2(pct(ms, 0.5, httpOf)), ms2(pct(ms, 0.99, httpOf)), ms2(pct(ms, 0.5, directOf)), ms2(pct(ms, 0.99, directOf)), fnproc.Percent(res.ioStall))
			if len(cfg.compareScope) > 0 {
				ps, err := b.scopeScenario(ctx, keys, warm, cfg.compareScope)
				if err != nil {
					_ = f.stop()
					return fmt.Errorf("%s, scoped: %w", l.name, err)
				}
				sr := scopeResult{id: l.id, name: l.name, pairs: ps}
				if cfg.explain {
					slowest := slices.MaxFunc(ps, func(x, y scopePair) int { return cmp.Compare(x.scoped, y.scoped) })
					if sr.plan, err = b.explain(ctx, slowest.scopedStmt); err != nil {
						sr.plan = "EXPLAIN failed: " + err.Error()
					}
				}
				rep.scopes = append(rep.scopes, sr)
				logf("%s: cluster p50 %s p99 %s; scoped p50 %s p99 %s", l.name, ms2(pct(ps, 0.5, clusterOf)), ms2(pct(ps, 0.99, clusterOf)),
					ms2(pct(ps, 0.5, scopedOf)), ms2(pct(ps, 0.99, scopedOf)))
			}
		}
		if pl.selected["f"] {
			keys := pl.km.pagingFilters(cfg.keys)
			logf("(f) paging: %d filters walked to page %d, e.g. %s", len(keys), cfg.pages, keys[0])
			ws, err := b.walkScenario(ctx, keys, cfg.pages, cfg.walkSkip, cfg.walkBudget)
			if err != nil {
				_ = f.stop()
				return fmt.Errorf("(f): %w", err)
			}
			rep.walks = ws
			if cfg.explain {
				rep.walkPlan = b.explainWalk(ctx, ws, cfg.pages)
			}
		}
		if err := f.stop(); err != nil {
			logf("the query function did not stop cleanly: %v", err)
		}
	}
	if pl.selected["g"] {
		// One untimed pass first: the HTTP export, measured before the direct one, would
		// otherwise read from disk what the direct one then finds cached (after a fresh seed,
		// 49k against 89k events/s; 77k against 112k with both cached).
		logf("(g) warming the cache with one direct pass of %s", pl.export)
		if _, _, err := b.directExport(ctx, pl.export); err != nil {
			return fmt.Errorf("(g) warm-up: %w", err)
		}
		// A fresh process, so its VmHWM is the export's peak, not an earlier scenario's.
		f, err := startQuery(ctx, pl.bin, cfg.db, cfg.maxConns, pl.dir+"/query-export.log")
		if err != nil {
			return err
		}
		b.url = f.url
		var ex exported
		ex.startRSS, _ = procStatus(f.cmd.Process.Pid, "VmHWM")
		cpu0, _ := cpuTime(f.cmd.Process.Pid)
		logf("(g) export %s", pl.export)
		ex.events, ex.bytes, ex.took, err = b.httpExport(ctx, pl.export.values())
		ex.peakRSS, _ = procStatus(f.cmd.Process.Pid, "VmHWM")
		cpu1, _ := cpuTime(f.cmd.Process.Pid)
		ex.cpu = cpu1 - cpu0
		if stopErr := f.stop(); stopErr != nil {
			logf("the query function did not stop cleanly: %v", stopErr)
		}
		if err != nil {
			return fmt.Errorf("(g): %w\n%s", err, tail(f.log, 20))
		}
		logf("(g) %d events over HTTP in %s; now directly", ex.events, ex.took.Round(time.Millisecond))
		ex.direct, ex.directTook, ex.directError = b.directExport(ctx, pl.export)
		rep.export = &ex
		rep.exportSpec = pl.export
	}
	return nil
}

// explainWalk explains the page-N cursor fetch of the slowest walk that reached it.
func (b *bench) explainWalk(ctx context.Context, ws []walked, pages int) string {
	var slowest *walked
	for i := range ws {
		if ws[i].reached && (slowest == nil || ws[i].directLast > slowest.directLast) {
			slowest = &ws[i]
		}
	}
	if slowest == nil {
		return ""
	}
	plan, err := b.explain(ctx, slowest.lastStmt)
	if err != nil {
		return "EXPLAIN failed: " + err.Error()
	}
	return fmt.Sprintf("`%s`, page %d by cursor: measured %s directly; %s\n\n<details><summary>plan</summary>\n\n```\n%s```\n</details>",
		slowest.key, pages, ms2(slowest.directLast), planSummary(plan), plan)
}

// dbInfo describes the database under test.
type dbInfo struct {
	events         int64
	oldest, newest time.Time
	bytes          int64
	version        string
}

// describe counts the events and their span (setup, not a query under test).
func describe(ctx context.Context, pool *pgxpool.Pool) (dbInfo, error) {
	var d dbInfo
	err := pool.QueryRow(ctx, `SELECT count(*), coalesce(min(event_timestamp), now()), coalesce(max(event_timestamp), now()),
			(SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint FROM pg_partition_tree('audit_events') WHERE isleaf),
			current_setting('server_version')
		FROM audit_events`).Scan(&d.events, &d.oldest, &d.newest, &d.bytes, &d.version)
	if err != nil {
		return d, fmt.Errorf("describe the database (is it migrated and seeded?): %w", err)
	}
	return d, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// listResult is one list scenario's measurements.
type listResult struct {
	id, name, goal string
	goalP99        time.Duration
	m              []measured
	slowest        measured
	plan           string
	ioStall        float64 // share of the scenario's time some task waited for the disk; -1: unknown
}

func httpOf(m measured) time.Duration   { return m.http }
func directOf(m measured) time.Duration { return m.direct }

// pct is the q-quantile (nearest rank) of f over xs.
func pct[T any](xs []T, q float64, f func(T) time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(xs))
	for i, x := range xs {
		ds[i] = f(x)
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func medianInt(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func ms2(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// report is the Markdown report.
type report struct {
	cfg                   config
	info                  dbInfo
	lists                 []listResult
	scopes                []scopeResult
	walks                 []walked
	walkPlan              string
	aborted               string // why the run stopped early ("": it did not)
	export                *exported
	exportSpec            spec
	loadBefore, loadAfter string
	took                  time.Duration
}

const overheadGoal = 2 * time.Millisecond

func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "## Query benchmark: %d events, HTTP vs direct SQL\n\n", r.info.events)
	fmt.Fprintf(w, "Events %s .. %s, %.2f GiB with indexes; PostgreSQL %s; %d CPUs; %d keys per scenario, one HTTP client, sequential; QUERY_MAX_CONNS=%d, AUTH_MODE=%s, QUERY_AUDIT_READS=%s; load average %s before, %s after; run took %s.\n\n",
		r.info.oldest.Format(time.DateOnly), r.info.newest.Format(time.DateOnly), float64(r.info.bytes)/(1<<30), r.info.version,
		runtime.NumCPU(), r.cfg.keys, r.cfg.maxConns, cmp.Or(os.Getenv("AUTH_MODE"), "none"), cmp.Or(os.Getenv("QUERY_AUDIT_READS"), "false"),
		r.loadBefore, r.loadAfter, r.took.Round(time.Second))
	if r.aborted != "" {
		fmt.Fprintf(w, "**The run stopped early**: %s. What was measured before that follows.\n\n", r.aborted)
	}
	fmt.Fprintln(w, "| scenario | rows (median) | HTTP p50 | HTTP p99 | HTTP max | direct p50 | direct p99 | direct max | overhead p50 (paired) | goal | met? |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	var notes []string
	for _, l := range r.lists {
		rows := make([]int, len(l.m))
		mismatched, httpFailed, directFailed := 0, 0, 0
		for i, m := range l.m {
			rows[i] = m.directRows
			switch {
			case m.httpErr != "":
				httpFailed++
				notes = append(notes, fmt.Sprintf("%s: `%s` failed over HTTP: %s", l.name, m.key, m.httpErr))
			case m.directErr != "":
			case m.httpRows != m.directRows:
				mismatched++
			}
			if m.directErr != "" {
				directFailed++
				notes = append(notes, fmt.Sprintf("%s: `%s` failed directly: %s", l.name, m.key, m.directErr))
			}
		}
		hp50, hp99, dp50 := pct(l.m, 0.5, httpOf), pct(l.m, 0.99, httpOf), pct(l.m, 0.5, directOf)
		over := hp50 - dp50
		goal, met := "overhead ≤ 2 ms", yes(over <= overheadGoal)
		if l.goal != "" {
			goal = l.goal + "; " + goal
			met = yes(hp99 <= l.goalP99 && httpFailed == 0) + "; " + met
		}
		name := l.name
		if httpFailed+directFailed > 0 {
			name += fmt.Sprintf(" (%d keys failed over HTTP, %d directly)", httpFailed, directFailed)
		}
		if mismatched > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d keys returned different row counts over HTTP and directly (a since window that moved between the two)", l.name, mismatched))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s (%s) | %s | %s |\n", name, medianInt(rows),
			ms2(hp50), ms2(hp99), ms2(pct(l.m, 1, httpOf)), ms2(dp50), ms2(pct(l.m, 0.99, directOf)), ms2(pct(l.m, 1, directOf)),
			ms2(over), ms2(pct(l.m, 0.5, func(m measured) time.Duration { return m.http - m.direct })), goal, met)
	}
	if len(r.walks) > 0 {
		r.writeWalks(w, &notes)
	}
	r.writeScope(w)
	if ex := r.export; ex != nil {
		rate := float64(ex.events) / ex.took.Seconds()
		direct := "failed: " + fmt.Sprint(ex.directError)
		if ex.directError == nil {
			direct = fmt.Sprintf("%.0f events/s directly (StreamEvents, no encoding: %d in %s)", float64(ex.direct)/ex.directTook.Seconds(), ex.direct, ex.directTook.Round(time.Millisecond))
		}
		fmt.Fprintf(w, "| (g) export `%s`: %d events, %.0f MiB of NDJSON | | %.0f events/s over HTTP (%s; the function used %.1f µs CPU per event) | | | %s | | | | ≥ 50k events/s; peak RSS < 64 MiB (peak %.1f MiB, %.1f MiB when ready) | %s; %s |\n",
			r.exportSpec, ex.events, float64(ex.bytes)/(1<<20), rate, ex.took.Round(time.Millisecond), float64(ex.cpu.Microseconds())/float64(max(ex.events, 1)), direct,
			float64(ex.peakRSS)/(1<<20), float64(ex.startRSS)/(1<<20), yes(rate >= 50_000), yes(ex.peakRSS < 64<<20))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Goals are checked on the HTTP figures (a key that failed over HTTP misses its goal); overhead p50 is HTTP p50 − direct p50, and in parentheses the median of each key's HTTP − direct time, which a wide spread of key times disturbs less. Rows is the median number of events a key returned.")
	if len(r.lists) > 0 {
		stalls := make([]string, len(r.lists))
		for i, l := range r.lists {
			stalls[i] = "(" + l.id + ") " + fnproc.Percent(l.ioStall)
		}
		fmt.Fprintf(w, "\nShare of each scenario's time in which some task waited for the disk (Linux PSI, io some): %s. Much above 0 means the seeded tables were not all in memory and the tails are partly the disk's.\n",
			strings.Join(stalls, ", "))
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		const most = 20
		for i, n := range notes {
			if i == most {
				fmt.Fprintf(w, "- ... and %d more\n", len(notes)-most)
				break
			}
			fmt.Fprintf(w, "- %s\n", n)
		}
	}

	fmt.Fprint(w, "\n### By kind of key\n\n")
	fmt.Fprintln(w, "| scenario | kind | keys | rows (median) | HTTP p50 | HTTP p99 | direct p50 | direct p99 | direct max |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, l := range r.lists {
		for _, k := range kindsOf(l.m, func(m measured) string { return m.key.kind }) {
			ms := slices.DeleteFunc(slices.Clone(l.m), func(m measured) bool { return m.key.kind != k })
			rows := make([]int, len(ms))
			for i, m := range ms {
				rows[i] = m.directRows
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s | %s | %s |\n", l.id, k, len(ms), medianInt(rows),
				ms2(pct(ms, 0.5, httpOf)), ms2(pct(ms, 0.99, httpOf)), ms2(pct(ms, 0.5, directOf)), ms2(pct(ms, 0.99, directOf)), ms2(pct(ms, 1, directOf)))
		}
	}
	for _, k := range kindsOf(r.walks, func(x walked) string { return x.key.kind }) {
		ws := slices.DeleteFunc(slices.Clone(r.walks), func(x walked) bool { return x.key.kind != k })
		reached := slices.DeleteFunc(slices.Clone(ws), func(x walked) bool { return !x.reached })
		fmt.Fprintf(w, "| f page 1 | %s | %d | 100 | %s | %s | %s | %s | %s |\n", k, len(ws),
			ms2(pct(ws, 0.5, httpFirst)), ms2(pct(ws, 0.99, httpFirst)), ms2(pct(ws, 0.5, directFirst)), ms2(pct(ws, 0.99, directFirst)), ms2(pct(ws, 1, directFirst)))
		if len(reached) > 0 {
			fmt.Fprintf(w, "| f page %d, cursor | %s | %d | 100 | %s | %s | %s | %s | %s |\n", r.cfg.pages, k, len(reached),
				ms2(pct(reached, 0.5, httpLast)), ms2(pct(reached, 0.99, httpLast)), ms2(pct(reached, 0.5, directLast)), ms2(pct(reached, 0.99, directLast)), ms2(pct(reached, 1, directLast)))
			fmt.Fprintf(w, "| f page %d, offset | %s | %d | 100 | %s | %s | %s | %s | %s |\n", r.cfg.pages, k, len(reached),
				ms2(pct(reached, 0.5, httpOffset)), ms2(pct(reached, 0.99, httpOffset)), ms2(pct(reached, 0.5, directOffset)), ms2(pct(reached, 0.99, directOffset)), ms2(pct(reached, 1, directOffset)))
		}
	}
	if r.cfg.explain {
		fmt.Fprintln(w, "\n### Plans of the slowest keys\n\nEach scenario's slowest key (directly), run again with the exact SQL and values the store sent: warm now, so often faster than measured.")
		for _, l := range r.lists {
			fmt.Fprintf(w, "\n%s: `%s`, measured %s directly, %s over HTTP; %s\n", l.name, l.slowest.key, ms2(l.slowest.direct), ms2(l.slowest.http), planSummary(l.plan))
			fmt.Fprintf(w, "\n<details><summary>plan</summary>\n\n```\n%s```\n</details>\n", l.plan)
		}
		if r.walkPlan != "" {
			fmt.Fprintf(w, "\n(f) %s\n", r.walkPlan)
		}
	}
}

// writeWalks writes the rows of scenario f.
func (r *report) writeWalks(w io.Writer, notes *[]string) {
	n := r.cfg.pages
	var reached, skipped []walked
	for _, x := range r.walks {
		switch {
		case x.reached:
			reached = append(reached, x)
		case x.skipped != "":
			skipped = append(skipped, x)
		case x.failed != "":
			*notes = append(*notes, fmt.Sprintf("(f) `%s` failed: %s", x.key, x.failed))
		}
	}
	if len(skipped) > 0 {
		var eg []string
		for _, x := range skipped[:min(len(skipped), 5)] {
			eg = append(eg, fmt.Sprintf("`%s` (%s; page 1 %s over HTTP, %s directly)", x.key, x.skipped, ms2(x.httpFirst), ms2(x.directFirst)))
		}
		*notes = append(*notes, fmt.Sprintf("(f) %d filters were not walked to page %d because page 1 took over %s or the walk over %s, e.g. %s",
			len(skipped), n, r.cfg.walkSkip, r.cfg.walkBudget, strings.Join(eg, ", ")))
	}
	all := slices.DeleteFunc(slices.Clone(r.walks), func(x walked) bool { return x.failed != "" })
	hf50, hf99 := pct(all, 0.5, httpFirst), pct(all, 0.99, httpFirst)
	df50 := pct(all, 0.5, directFirst)
	fmt.Fprintf(w, "| (f) page 1, limit 100 (all %d filters that did not fail) | 100 | %s | %s | %s | %s | %s | %s | %s | overhead ≤ 2 ms | %s |\n",
		len(all), ms2(hf50), ms2(hf99), ms2(pct(all, 1, httpFirst)), ms2(df50), ms2(pct(all, 0.99, directFirst)), ms2(pct(all, 1, directFirst)),
		ms2(hf50-df50), yes(hf50-df50 <= overheadGoal))
	if len(reached) == 0 {
		*notes = append(*notes, fmt.Sprintf("(f) no filter reached page %d both ways", n))
		return
	}
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }
	rf50, rf99 := pct(reached, 0.5, httpFirst), pct(reached, 0.99, httpFirst)
	rl50, rl99 := pct(reached, 0.5, httpLast), pct(reached, 0.99, httpLast)
	dl50 := pct(reached, 0.5, directLast)
	fmt.Fprintf(w, "| (f) page 1 of the %d filters that reach page %d | 100 | %s | %s | %s | %s | %s | %s | %s | | |\n",
		len(reached), n, ms2(rf50), ms2(rf99), ms2(pct(reached, 1, httpFirst)), ms2(pct(reached, 0.5, directFirst)), ms2(pct(reached, 0.99, directFirst)), ms2(pct(reached, 1, directFirst)),
		ms2(rf50-pct(reached, 0.5, directFirst)))
	fmt.Fprintf(w, "| (f) page %d by cursor, same filters | 100 | %s | %s | %s | %s | %s | %s | %s | ≤ 1.5× page 1 (HTTP: p50 %.2f×, p99 %.2f×; direct: p50 %.2f×, p99 %.2f×); overhead ≤ 2 ms | %s; %s |\n",
		n, ms2(rl50), ms2(rl99), ms2(pct(reached, 1, httpLast)), ms2(dl50), ms2(pct(reached, 0.99, directLast)), ms2(pct(reached, 1, directLast)), ms2(rl50-dl50),
		ratio(rl50, rf50), ratio(rl99, rf99), ratio(dl50, pct(reached, 0.5, directFirst)), ratio(pct(reached, 0.99, directLast), pct(reached, 0.99, directFirst)),
		yes(ratio(rl50, rf50) <= 1.5 && ratio(rl99, rf99) <= 1.5), yes(rl50-dl50 <= overheadGoal))
	ho50, do50 := pct(reached, 0.5, httpOffset), pct(reached, 0.5, directOffset)
	fmt.Fprintf(w, "| (f) page %d by offset=%d, same filters (comparison) | 100 | %s | %s | %s | %s | %s | %s | %s | (HTTP: p50 %.2f×, p99 %.2f× page 1) | |\n",
		n, (n-1)*100, ms2(ho50), ms2(pct(reached, 0.99, httpOffset)), ms2(pct(reached, 1, httpOffset)), ms2(do50), ms2(pct(reached, 0.99, directOffset)), ms2(pct(reached, 1, directOffset)),
		ms2(ho50-do50), ratio(ho50, rf50), ratio(pct(reached, 0.99, httpOffset), rf99))
}

func httpFirst(x walked) time.Duration    { return x.httpFirst }
func httpLast(x walked) time.Duration     { return x.httpLast }
func httpOffset(x walked) time.Duration   { return x.httpOffset }
func directFirst(x walked) time.Duration  { return x.directFirst }
func directLast(x walked) time.Duration   { return x.directLast }
func directOffset(x walked) time.Duration { return x.directOffset }

// kindsOf lists the kinds of key in xs in order of first appearance.
func kindsOf[T any](xs []T, kind func(T) string) []string {
	var out []string
	for _, x := range xs {
		if k := kind(x); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// planSummary picks the planning and execution times out of an EXPLAIN ANALYZE.
func planSummary(plan string) string {
	var parts []string
	for _, l := range strings.Split(plan, "\n") {
		if strings.HasPrefix(l, "Planning Time:") || strings.HasPrefix(l, "Execution Time:") {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return strings.TrimSpace(plan)
	}
	return "EXPLAIN ANALYZE: " + strings.Join(parts, ", ")
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// bearer sends a token with every request (none when empty).
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.next.RoundTrip(r)
}

// scoped gives every key the reader's scope (-scope), as the query function gives its filter.
func scoped(keys []spec, scope string) []spec {
	if scope == "" {
		return keys
	}
	for i := range keys {
		keys[i].scope = strings.Split(scope, ",")
	}
	return keys
}
