package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// bench runs queries both ways: through the query function's HTTP API with one keep-alive
// client, one request at a time, and directly through the store over a pool like the
// function's own.
type bench struct {
	client *http.Client
	url    string // the running function's base URL
	store  *store.Store
	pool   *pgxpool.Pool
	last   *lastQuery
}

// page is what a list reply is read into.
type page struct {
	Data       []json.RawMessage `json:"data"`
	Pagination struct {
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

// httpList GETs one page; the time is until the whole body is read. A reply other than 200
// is a statusError (the key failed, the run goes on); a transport error means the function is
// gone.
func (b *bench) httpList(ctx context.Context, v url.Values) (time.Duration, page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/api/v1/audit/events?"+v.Encode(), nil)
	if err != nil {
		return 0, page{}, err
	}
	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, page{}, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return 0, page{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return took, page{}, &statusError{fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))}
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		return 0, page{}, fmt.Errorf("GET %s: %w", v.Encode(), err)
	}
	return took, p, nil
}

// statusError is a reply other than 200: that key failed (a 504 past QUERY_TIMEOUT, say).
type statusError struct{ msg string }

func (e *statusError) Error() string { return e.msg }

// keyFailed reports whether err is the failure of one key rather than of the run: a reply
// other than 200, or a store error while the run's context is live.
func keyFailed(ctx context.Context, err error) bool {
	var se *statusError
	var ue *url.Error
	switch {
	case errors.As(err, &se):
		return true
	case errors.As(err, &ue): // the function went away
		return false
	}
	return ctx.Err() == nil && !errors.Is(err, context.Canceled)
}

// directList runs the same query through the store.
func (b *bench) directList(ctx context.Context, p store.QueryParams) (time.Duration, store.Page, error) {
	start := time.Now()
	pg, err := b.store.QueryEvents(ctx, p)
	return time.Since(start), pg, err
}

// measured is one key's measurement.
type measured struct {
	key                spec
	http, direct       time.Duration
	httpRows           int
	directRows         int
	httpErr, directErr string    // why the key failed that way ("": it did not)
	stmt               statement // what the store sent for it, for EXPLAIN
}

// listScenario runs every key through HTTP and directly, alternating which goes first so
// neither always meets the cache the other warmed.
func (b *bench) listScenario(ctx context.Context, keys []spec, warmup []spec) ([]measured, error) {
	for _, k := range warmup {
		if _, _, err := b.directList(ctx, k.params(time.Now())); err != nil && !keyFailed(ctx, err) {
			return nil, fmt.Errorf("warm-up %s: %w", k, err)
		}
	}
	out := make([]measured, len(keys))
	for i, k := range keys {
		m := &out[i]
		m.key = k
		viaHTTP := func() error {
			d, p, err := b.httpList(ctx, k.values())
			m.http, m.httpRows = d, len(p.Data)
			var se *statusError
			if errors.As(err, &se) {
				m.httpErr, err = se.msg, nil
			}
			return err
		}
		direct := func() error {
			d, p, err := b.directList(ctx, k.params(time.Now()))
			m.direct, m.directRows, m.stmt = d, len(p.Events), b.last.take()
			if err != nil && keyFailed(ctx, err) {
				m.directErr, err = err.Error(), nil
			}
			return err
		}
		first, second := viaHTTP, direct
		if i%2 == 1 {
			first, second = direct, viaHTTP
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// walked is one paging key's measurement: the fetch of page 1, of page N after following
// next_cursor, and of the same page by offset.
type walked struct {
	key                                      spec
	httpFirst, httpLast, httpOffset          time.Duration
	directFirst, directLast, directOffset    time.Duration
	reached                                  bool   // both ways reached page N
	skipped                                  string // why the walk stopped early ("": it did not)
	failed                                   string // why a fetch failed ("": none did)
	httpLastRows, directLastRows, offsetRows int
	lastStmt                                 statement // what the store sent for page N
}

// walkScenario walks each key to page pages with cursors, through HTTP and directly, and
// fetches that page by offset too. A key whose page 1 takes longer than skipOver (either way)
// is not walked further, nor one whose walk one way takes longer than budget: 50 slow pages
// of 200 keys would take hours; its page 1 still counts.
func (b *bench) walkScenario(ctx context.Context, keys []spec, pages int, skipOver, budget time.Duration) ([]walked, error) {
	out := make([]walked, len(keys))
	for i, k := range keys {
		w := &out[i]
		w.key = k
		var httpReached, directReached bool
		// stop says whether to stop after page n of a walk that began at start.
		stop := func(n int, d time.Duration, start time.Time) bool {
			switch {
			case w.skipped != "":
			case n == 1 && d > skipOver:
				w.skipped = fmt.Sprintf("page 1 took %s", d.Round(time.Millisecond))
			case n > 1 && time.Since(start) > budget:
				w.skipped = fmt.Sprintf("%d pages took over %s", n, budget)
			default:
				return false
			}
			return true
		}
		viaHTTP := func() error {
			v := k.values()
			start := time.Now()
			for n := 1; n <= pages; n++ {
				d, p, err := b.httpList(ctx, v)
				if err != nil {
					return err
				}
				switch n {
				case 1:
					w.httpFirst = d
				case pages:
					w.httpLast, w.httpLastRows, httpReached = d, len(p.Data), true
				}
				if stop(n, d, start) {
					return nil
				}
				if p.Pagination.NextCursor == nil {
					return nil
				}
				v.Set("cursor", *p.Pagination.NextCursor)
			}
			v = k.values()
			v.Set("offset", strconv.Itoa((pages-1)*100))
			d, p, err := b.httpList(ctx, v)
			w.httpOffset, w.offsetRows = d, len(p.Data)
			return err
		}
		direct := func() error {
			p := k.params(time.Now())
			start := time.Now()
			for n := 1; n <= pages; n++ {
				d, pg, err := b.directList(ctx, p)
				if err != nil {
					return err
				}
				switch n {
				case 1:
					w.directFirst = d
				case pages:
					w.directLast, w.directLastRows, directReached = d, len(pg.Events), true
					w.lastStmt = b.last.take()
				}
				if stop(n, d, start) {
					return nil
				}
				if !pg.HasMore {
					return nil
				}
				last := pg.Events[len(pg.Events)-1]
				p.After = &store.Cursor{EventTimestamp: last.EventTimestamp, EventID: last.EventID}
			}
			p = k.params(time.Now())
			p.Offset = (pages - 1) * 100
			d, _, err := b.directList(ctx, p)
			w.directOffset = d
			return err
		}
		first, second := viaHTTP, direct
		if i%2 == 1 {
			first, second = direct, viaHTTP
		}
		// When page 1 is too slow one way, the other way still fetches page 1, then stops.
		for _, walk := range []func() error{first, second} {
			if err := walk(); err != nil {
				if !keyFailed(ctx, err) {
					return nil, err
				}
				w.failed = err.Error()
				break
			}
		}
		w.reached = httpReached && directReached && w.failed == "" && w.skipped == ""
		if (i+1)%20 == 0 {
			logf("(f) %d of %d filters walked", i+1, len(keys))
		}
	}
	return out, nil
}

// exported is the measurement of one export.
type exported struct {
	events      int64
	bytes       int64
	took        time.Duration
	peakRSS     int64         // the function's VmHWM after the export
	startRSS    int64         // its VmHWM when it was ready, before the export
	cpu         time.Duration // the function's CPU time during the export
	direct      int64
	directTook  time.Duration
	directError error
}

// httpExport streams GET /api/v1/audit/export and counts the NDJSON lines.
func (b *bench) httpExport(ctx context.Context, v url.Values) (int64, int64, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/api/v1/audit/export?"+v.Encode(), nil)
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return 0, 0, 0, fmt.Errorf("GET export?%s: %s: %s", v.Encode(), resp.Status, bytes.TrimSpace(body))
	}
	r := bufio.NewReaderSize(resp.Body, 256<<10)
	var lines, n int64
	buf := make([]byte, 256<<10)
	for {
		k, err := r.Read(buf)
		n += int64(k)
		lines += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return lines, n, time.Since(start), fmt.Errorf("export read after %d events: %w", lines, err)
		}
	}
	return lines, n, time.Since(start), nil
}

// directExport streams the same filter through the store, encoding nothing.
func (b *bench) directExport(ctx context.Context, k spec) (int64, time.Duration, error) {
	p := k.params(time.Now())
	start := time.Now()
	n, err := b.store.StreamEvents(ctx, store.StreamParams{Filter: p.Filter, Order: p.Order, Timeout: 30 * time.Minute},
		func(*audit.Event) error { return nil })
	return n, time.Since(start), err
}

// statement is one SQL statement and its arguments, as the store sent it.
type statement struct {
	sql  string
	args []any
	// settings is the set_config statement the store ran before it in the same transaction
	// (the bitmap-only reads of a sparse containment), or "".
	settings string
}

// lastQuery remembers the last query the direct pool sent, so the slowest key of a scenario
// can be explained with exactly the SQL, values and settings the store used. Transaction
// control and settings are not queries of their own: a setting is kept for the queries after
// it, until its transaction ends.
type lastQuery struct {
	mu       sync.Mutex
	last     statement
	settings string
}

func (t *lastQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	sql := strings.TrimSpace(d.SQL)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case strings.HasPrefix(strings.ToLower(sql), "begin"), strings.EqualFold(sql, "commit"), strings.EqualFold(sql, "rollback"):
		t.settings = "" // set_config(..., true) lasts until the transaction ends
	case strings.HasPrefix(sql, "SELECT set_config("):
		t.settings = sql
	default:
		t.last = statement{sql: d.SQL, args: d.Args, settings: t.settings}
	}
	return ctx
}

func (t *lastQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the last statement sent.
func (t *lastQuery) take() statement {
	t.mu.Lock()
	defer t.mu.Unlock()
	return statement{sql: t.last.sql, args: slices.Clone(t.last.args), settings: t.last.settings}
}

// explain returns EXPLAIN (ANALYZE, BUFFERS) of st, with the same values and protocol (an
// unnamed statement, planned with the values). It may run far past QUERY_TIMEOUT: the slowest
// key is the one worth seeing.
func (b *bench) explain(ctx context.Context, st statement) (string, error) {
	if st.sql == "" {
		return "", errors.New("no statement was recorded")
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = '5min'"); err != nil {
		return "", err
	}
	if st.settings != "" {
		if _, err := tx.Exec(ctx, st.settings); err != nil {
			return "", err
		}
	}
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+st.sql, st.args...)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	return strings.Join(lines, "\n") + "\n", nil
}
