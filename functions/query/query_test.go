package query_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

type queryFixture struct {
	url   string
	pool  *pgxpool.Pool
	store *store.Store
}

func newQueryFixture(t *testing.T, cfg query.Config) *queryFixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.CursorSecret == "" {
		cfg.CursorSecret = "test-secret"
	}
	h, err := query.New(s, cfg, prometheus.NewRegistry())
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &queryFixture{url: srv.URL, pool: pool, store: s}
}

func (f *queryFixture) insert(t *testing.T, events ...audit.Event) {
	t.Helper()
	for len(events) > 0 {
		n := min(len(events), 1000)
		_, _, err := f.store.InsertEvents(context.Background(), store.InsertParams{Events: events[:n]})
		require.NoError(t, err)
		events = events[n:]
	}
}

type listBody struct {
	Data       []audit.Event `json:"data"`
	Pagination struct {
		Limit      int     `json:"limit"`
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
		Total      *int64  `json:"total"`
	} `json:"pagination"`
}

func (f *queryFixture) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(f.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func (f *queryFixture) list(t *testing.T, params string) listBody {
	t.Helper()
	status, b := f.get(t, "/api/v1/audit/events?"+params)
	require.Equal(t, http.StatusOK, status, "%s: %s", params, b)
	var lb listBody
	require.NoError(t, json.Unmarshal(b, &lb))
	return lb
}

func idsOf(events []audit.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventID.String()
	}
	return out
}

// remediation seeds one multi-service remediation (rr-7) and noise around it.
func remediation(t *testing.T, base time.Time) (timeline []audit.Event, noise []audit.Event) {
	steps := []struct {
		typ, actor, outcome, resourceType string
		data                              string
	}{
		{"gateway.signal.received", "gateway", "success", "Signal", `{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"alert":"KubePodCrashLooping","risk_score":40}}`},
		{"gateway.crd.created", "gateway", "success", "RemediationRequest", `{"version":"1.0","service":"gateway","operation":"crd.created","status":"success","payload":{"retries":0}}`},
		{"aianalysis.analysis.completed", "aianalysis", "success", "AIAnalysis", `{"version":"1.0","service":"aianalysis","operation":"analysis.completed","status":"success","payload":{"provider":"anthropic","risk_score":97}}`},
		{"workflow.execution.started", "workflow", "pending", "WorkflowExecution", `{"version":"1.0","service":"workflow","operation":"execution.started","status":"pending","payload":{"workflow_id":"wf-1"}}`},
		{"workflow.execution.completed", "workflow", "failure", "WorkflowExecution", `{"version":"1.0","service":"workflow","operation":"execution.completed","status":"failure","payload":{"workflow_id":"wf-1","retries":4}}`},
	}
	for i, s := range steps {
		timeline = append(timeline, audittest.Event(t, &audittest.EventOpts{
			CorrelationID: "rr-7", EventType: s.typ, ActorID: s.actor, EventOutcome: s.outcome,
			ResourceType: s.resourceType, ResourceID: fmt.Sprintf("res-%d", i),
			EventTimestamp: base.Add(time.Duration(i) * time.Minute), EventData: json.RawMessage(s.data),
		}))
	}
	for i := range 40 {
		noise = append(noise, audittest.Event(t, &audittest.EventOpts{
			CorrelationID: fmt.Sprintf("rr-noise-%d", i%8), EventType: []string{"gateway.signal.received", "context.query.executed", "workflow.execution.completed"}[i%3],
			ActorID: []string{"gateway", "contextapi", "workflow"}[i%3], EventOutcome: []string{"success", "failure"}[i%2],
			EventTimestamp: base.Add(time.Duration(i-20) * 7 * time.Second),
		}))
	}
	return timeline, noise
}

func TestQuery_Filters(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	tl, noise := remediation(t, base)
	parent := tl[1].EventID // the CRD's creation caused the analysis
	tl[2].ParentEventID = &parent
	f.insert(t, append(append([]audit.Event{}, tl...), noise...)...)
	require.Equal(t, idsOf(tl[2:3]), idsOf(f.list(t, "parent_event_id="+parent.String()).Data))

	// The timeline of one correlation, oldest first by default.
	got := f.list(t, "correlation_id=rr-7")
	require.Equal(t, idsOf(tl), idsOf(got.Data))
	// Filters AND across names, OR within one.
	require.Equal(t, idsOf(tl[3:5]), idsOf(f.list(t, "correlation_id=rr-7&actor_id=workflow").Data))
	require.Equal(t, idsOf([]audit.Event{tl[0], tl[1], tl[3], tl[4]}), idsOf(f.list(t, "correlation_id=rr-7&actor_id=workflow&actor_id=gateway").Data))
	require.Equal(t, idsOf(tl[:2]), idsOf(f.list(t, "correlation_id=rr-7&event_type=gateway.*").Data))
	require.Equal(t, idsOf([]audit.Event{tl[2], tl[4]}), idsOf(f.list(t, "correlation_id=rr-7&event_type=aianalysis.analysis.completed&event_type=workflow.execution.completed").Data))
	require.Equal(t, idsOf(tl[4:]), idsOf(f.list(t, "correlation_id=rr-7&event_outcome=failure").Data))
	require.Equal(t, idsOf(tl[3:]), idsOf(f.list(t, "correlation_id=rr-7&event_category=workflow").Data))
	require.Equal(t, idsOf(tl[1:2]), idsOf(f.list(t, "correlation_id=rr-7&resource_type=RemediationRequest&resource_id=res-1").Data))
	require.Equal(t, idsOf(tl[2:3]), idsOf(f.list(t, "data="+url.QueryEscape(`{"payload":{"provider":"anthropic"}}`)).Data))
	require.Equal(t, idsOf(tl[2:3]), idsOf(f.list(t, "data_path="+url.QueryEscape(`$.payload.risk_score > 95`)).Data))
	require.Equal(t, idsOf(tl[4:]), idsOf(f.list(t, "correlation_id=rr-7&data_path="+url.QueryEscape(`$.payload.retries >= 4`)).Data))
	// Time bounds in three syntaxes: since inclusive, until exclusive.
	since := url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339))
	until := url.QueryEscape(base.Add(3 * time.Minute).Format(time.RFC3339))
	require.Equal(t, idsOf(tl[1:3]), idsOf(f.list(t, "correlation_id=rr-7&since="+since+"&until="+until).Data))
	require.Equal(t, idsOf(tl), idsOf(f.list(t, "correlation_id=rr-7&since=3h").Data))
	require.Empty(t, f.list(t, "correlation_id=rr-7&since=90m").Data)
	require.Equal(t, idsOf(tl), idsOf(f.list(t, "correlation_id=rr-7&since=1d&until="+time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)).Data))
	// Order: desc on request; filters without a correlation_id default to newest first.
	desc := f.list(t, "correlation_id=rr-7&order=desc").Data
	require.Equal(t, idsOf(tl)[4], idsOf(desc)[0])
	all := f.list(t, "limit=1000").Data
	require.Len(t, all, len(tl)+len(noise))
	for i := 1; i < len(all); i++ {
		require.False(t, all[i].EventTimestamp.After(all[i-1].EventTimestamp), "newest first")
	}
	// Totals and offsets.
	page := f.list(t, "actor_id=gateway&limit=3&offset=2&include_total=true")
	require.Len(t, page.Data, 3)
	require.NotNil(t, page.Pagination.Total)
	require.EqualValues(t, 2+14, *page.Pagination.Total)
	require.True(t, page.Pagination.HasMore)

	// One event by id, and an unknown one.
	status, b := f.get(t, "/api/v1/audit/events/"+tl[2].EventID.String())
	require.Equal(t, http.StatusOK, status)
	var e audit.Event
	require.NoError(t, json.Unmarshal(b, &e))
	require.Equal(t, tl[2].EventID, e.EventID)
	require.NotContains(t, string(b), `"actor_ip"`, "an absent optional field is left out")
	require.NotContains(t, string(b), `null`, "never null")
	status, _ = f.get(t, "/api/v1/audit/events/01a215d3-8005-732f-a9f2-5aea589037c8")
	require.Equal(t, http.StatusNotFound, status)
}

func TestQuery_BadParameters(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	f.insert(t, audittest.Event(t, nil))
	for _, tc := range []struct{ params, field string }{
		{"colour=red", "colour"},
		{"limit=0", "limit"}, {"limit=1001", "limit"}, {"limit=ten", "limit"},
		{"offset=-1", "offset"}, {"offset=1000001", "offset"},
		{"detail_key=service", "detail_key"}, {"detail_value=x", "detail_key"},
		{"detail_key=a.b&detail_value=x", "detail_key"}, {"detail_key=a&detail_key=b&detail_value=x&detail_value=y", "detail_key"},
		{"detail_key=service&detail_value=x&data=" + url.QueryEscape(`{"service":"y"}`), "detail_value"},
		{"order=up", "order"},
		{"since=yesterday", "since"}, {"until=2026-13-01", "until"}, {"since=1d&since=2d", "since"},
		{"event_type=Gateway.*", "event_type"}, {"event_type=" + url.QueryEscape("a'b"), "event_type"},
		{"parent_event_id=42", "parent_event_id"},
		{"data=" + url.QueryEscape(`[1]`), "data"}, {"data=" + url.QueryEscape(`{"a":`), "data"},
		{"data_path=" + url.QueryEscape(`$.a >>> 1`), "data_path"},
		{"data_path=" + url.QueryEscape(`$.a) OR 1=1 --`), "data_path"},
		{"cursor=abc", "cursor"},
		{"include_total=maybe", "include_total"},
		{"correlation_id=", "correlation_id"},
	} {
		status, b := f.get(t, "/api/v1/audit/events?"+tc.params)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tc.params, b)
		require.Contains(t, string(b), `"field":"`+tc.field+`"`, tc.params)
	}
	status, _ := f.get(t, "/api/v1/audit/events/not-a-uuid")
	require.Equal(t, http.StatusBadRequest, status)
	status, b := f.get(t, "/api/v1/audit/export?limit=5")
	require.Equal(t, http.StatusBadRequest, status, string(b))
}

// TestQuery_OwnEventsOnlyWhenAsked: auditstore's own events (category auditstore) are left out
// of every query, timeline, count and export that does not ask for them by category or event
// type, and returned to one that does.
func TestQuery_OwnEventsOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	now := time.Now().UTC().Add(-time.Hour)
	theirs := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-own", EventType: "gateway.signal.received", EventTimestamp: now})
	var ours []audit.Event
	for i, typ := range []string{"auditstore.query.executed", "auditstore.maintenance.run", "auditstore.legalhold.placed"} {
		ours = append(ours, audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-own", EventType: typ, ActorID: "auditstore-query",
			EventTimestamp: now.Add(time.Duration(i+1) * time.Second),
			EventData:      json.RawMessage(`{"version":"1.0","service":"auditstore","operation":"x","status":"success"}`)}))
	}
	f.insert(t, append([]audit.Event{theirs}, ours...)...)

	for _, params := range []string{"", "correlation_id=rr-own", "correlation_id=rr-own&order=desc", "actor_id=auditstore-query",
		"since=1d", "event_type=gateway.*", "event_outcome=success&include_total=true", "event_type=a*", "offset=0&limit=2"} {
		page := f.list(t, params)
		for _, e := range page.Data {
			require.NotEqual(t, audit.OwnCategory, e.EventCategory, "%q returned %s", params, e.EventType)
		}
		if page.Pagination.Total != nil {
			require.EqualValues(t, len(page.Data), *page.Pagination.Total, "the count leaves them out too")
		}
	}
	require.Equal(t, []string{theirs.EventID.String()}, idsOf(f.list(t, "correlation_id=rr-own").Data))
	status, b := f.get(t, "/api/v1/audit/export?correlation_id=rr-own")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 1, strings.Count(string(b), "\n"), "the export leaves them out: %s", b)
	require.NotContains(t, string(b), "auditstore.")

	for params, want := range map[string]int{
		"event_category=auditstore":                           3,
		"event_category=auditstore&event_category=gateway":    4,
		"event_type=auditstore.*":                             3,
		"event_type=auditstore.maintenance.run":               1,
		"event_type=auditstore.*&event_type=gateway.*":        4,
		"correlation_id=rr-own&event_category=auditstore":     3,
		"correlation_id=rr-own&event_type=auditstore.query.*": 1,
	} {
		require.Len(t, f.list(t, params).Data, want, params)
	}
	status, b = f.get(t, "/api/v1/audit/export?event_category=auditstore")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 3, strings.Count(string(b), "\n"), string(b))
	status, _ = f.get(t, "/api/v1/audit/events/"+ours[0].EventID.String())
	require.Equal(t, http.StatusOK, status, "asked for by id")
}

// TestQuery_KubernautFilters: detail_key/detail_value is a top-level event_data member equal to
// a string (with data, both hold); severity matches in any case; offsets go deep.
func TestQuery_KubernautFilters(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	base := time.Now().UTC().Add(-time.Hour)
	timeline, noise := remediation(t, base)
	f.insert(t, append(timeline, noise...)...)

	page := f.list(t, "detail_key=service&detail_value=workflow")
	require.Len(t, page.Data, 2)
	for _, e := range page.Data {
		require.Equal(t, "workflow", e.ActorID)
	}
	require.Len(t, f.list(t, "detail_key=service&detail_value=workflow&data="+url.QueryEscape(`{"status":"failure"}`)).Data, 1)
	require.Len(t, f.list(t, "detail_key=service&detail_value=workflow&data="+url.QueryEscape(`{"service":"workflow"}`)).Data, 2)
	require.Empty(t, f.list(t, "detail_key=service&detail_value=WORKFLOW").Data, "an exact string")
	require.Empty(t, f.list(t, "detail_key=payload&detail_value=wf-1").Data, "top-level members only")

	require.Equal(t, len(f.list(t, "severity=info").Data), len(f.list(t, "severity=INFO").Data))
	require.NotEmpty(t, f.list(t, "severity=Info").Data)

	all := f.list(t, "limit=1000").Data
	deep := f.list(t, "offset="+strconv.Itoa(len(all)-1)).Data
	require.Len(t, deep, 1)
	require.Equal(t, all[len(all)-1].EventID, deep[0].EventID)
	require.Empty(t, f.list(t, "offset=1000000").Data)
}

func TestQuery_InjectionIsInert(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	e := audittest.Event(t, nil)
	f.insert(t, e)
	attacks := []string{`x' OR '1'='1`, `x"; DROP TABLE audit_events; --`, `') OR true --`, `\'; SELECT pg_sleep(5); --`, "x\x00y"}
	for _, param := range []string{"correlation_id", "actor_id", "actor_type", "resource_type", "resource_id", "namespace", "cluster_id", "submitted_by", "event_category", "event_action", "event_outcome", "severity", "event_type", "data", "data_path", "since", "parent_event_id", "order"} {
		for _, a := range attacks {
			status, b := f.get(t, "/api/v1/audit/events?"+param+"="+url.QueryEscape(a))
			if status == http.StatusOK {
				var lb listBody
				require.NoError(t, json.Unmarshal(b, &lb))
				require.Empty(t, lb.Data, "%s=%q matched", param, a)
			} else {
				require.Equal(t, http.StatusBadRequest, status, "%s=%q: %s", param, a, b)
			}
		}
	}
	got := f.list(t, "")
	require.Len(t, got.Data, 1, "schema and data intact")
}

func TestQuery_CursorWalkWhileInserting(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	base := time.Now().UTC().Add(-time.Hour)
	var seeded []audit.Event
	for i := range 300 {
		seeded = append(seeded, audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-walk", EventTimestamp: base.Add(time.Duration(i/2) * time.Second)}))
	}
	f.insert(t, seeded...)
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			ts := base.Add(time.Duration(i%600) * time.Second / 2)
			if _, _, err := f.store.InsertEvents(context.Background(), store.InsertParams{Events: []audit.Event{audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-walk", EventTimestamp: ts})}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	until := url.QueryEscape(base.Add(150 * time.Second).Format(time.RFC3339Nano))
	seen := map[string]int{}
	params := "correlation_id=rr-walk&limit=23&until=" + until
	next := ""
	for pages := 0; pages < 100; pages++ {
		lb := f.list(t, params+next)
		for _, e := range lb.Data {
			seen[e.EventID.String()]++
		}
		if lb.Pagination.NextCursor == nil {
			break
		}
		require.True(t, lb.Pagination.HasMore)
		next = "&cursor=" + *lb.Pagination.NextCursor
	}
	for _, e := range seeded {
		require.Equal(t, 1, seen[e.EventID.String()], "seeded event seen exactly once")
	}
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}
	// A cursor is bound to its query: another filter or a modified cursor is refused.
	lb := f.list(t, params)
	require.NotNil(t, lb.Pagination.NextCursor)
	c := *lb.Pagination.NextCursor
	status, _ := f.get(t, "/api/v1/audit/events?correlation_id=other&limit=23&until="+until+"&cursor="+c)
	require.Equal(t, http.StatusBadRequest, status)
	tampered := []byte(c)
	tampered[5] ^= 1
	status, _ = f.get(t, "/api/v1/audit/events?"+params+"&cursor="+string(tampered))
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = f.get(t, "/api/v1/audit/events?"+params+"&cursor="+c+"&offset=5")
	require.Equal(t, http.StatusBadRequest, status)
}

func TestQuery_Timeout(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	var events []audit.Event
	for range 3000 {
		events = append(events, audittest.Event(t, nil))
	}
	f.insert(t, events...)
	// The query pool's statement_timeout is QUERY_TIMEOUT; here 1 ms against a full count.
	_, err := f.pool.Exec(context.Background(), "SELECT 1")
	require.NoError(t, err)
	cfg, err := pgxpool.ParseConfig(f.pool.Config().ConnString())
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "1"
	slow, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	defer slow.Close()
	h, err := query.New(store.New(slow), query.Config{CursorSecret: "x", Timeout: time.Millisecond}, nil)
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/audit/events?include_total=true&data_path="+url.QueryEscape(`$.payload.retries > 1`), nil))
	require.Equal(t, http.StatusGatewayTimeout, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "correlation_id")
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
}

func TestQuery_ExportStreamsInConstantMemory(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	const n = 100_000
	// Seeded in SQL: the test is about streaming them out, and 100k events through the write
	// path would dominate its time.
	_, err := f.pool.Exec(context.Background(), `
		INSERT INTO audit_events (event_id, event_timestamp, retention_days, event_type, event_category,
			event_action, event_outcome, correlation_id, actor_type, actor_id, submitted_by, content_hash, event_data)
		SELECT gen_random_uuid(), now() - interval '1 hour' + i * interval '1 millisecond', 2557,
			'gateway.signal.received', 'gateway', 'received', 'success', 'rr-export', 'service', 'gateway',
			'seed', sha256(i::text::bytea),
			jsonb_build_object('version', '1.0', 'service', 'gateway', 'operation', 'signal.received',
				'status', 'success', 'payload', jsonb_build_object('i', i, 'filler', repeat('x', 700)))
		FROM generate_series(1, $1) AS i`, n)
	require.NoError(t, err)
	runtime.GC()
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	resp, err := http.Get(f.url + "/api/v1/audit/export?correlation_id=rr-export")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	count, bytes := 0, int64(0)
	var prev time.Time
	for sc.Scan() {
		bytes += int64(len(sc.Bytes())) + 1
		if count%997 == 0 {
			var e audit.Event
			require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
			require.False(t, e.EventTimestamp.Before(prev), "ascending for a correlation")
			prev = e.EventTimestamp
		}
		count++
	}
	require.NoError(t, sc.Err())
	resp.Body.Close()
	close(done)
	require.Equal(t, n, count)
	// The whole export is ~150 MB of JSON; the process (test and server together) must not
	// hold more than a small fraction of it at once.
	require.Less(t, peak.Load(), uint64(64<<20), "heap in use peaked at %d MiB for a %d MiB export", peak.Load()>>20, bytes>>20)
	t.Logf("exported %d events (%d MiB), peak heap in use %d MiB", count, bytes>>20, peak.Load()>>20)

	// A client that goes away stops the export.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/api/v1/audit/export?correlation_id=rr-export", nil)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	buf := make([]byte, 4096)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	cancel()
	resp.Body.Close()
	require.Eventually(t, func() bool {
		var active int
		_ = f.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'SELECT event_id%'`).Scan(&active)
		return active == 0
	}, 10*time.Second, 50*time.Millisecond, "the export's query ends with its client")
}
