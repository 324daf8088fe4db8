package hostile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/test/hostile"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/auditstore/auditstore/test/standalonetest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditstore/auditstore/shared/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// attacker is the address the attacks come from: another client than the test's own
// requests (127.0.0.1), as Linux routes all of 127/8 to the loopback device.
var attacker = net.IPv4(127, 0, 0, 2)

type fixture struct {
	srv    *standalonetest.Server
	pool   *pgxpool.Pool
	client *http.Client
}

func setup(t testing.TB, change func(*web.ServeConfig)) *fixture {
	t.Helper()
	dbURL := pgtest.NewDatabase(t, pgtest.Options{})
	cfg := web.DefaultServeConfig()
	if change != nil {
		change(&cfg)
	}
	srv, err := hostile.Start(context.Background(), dbURL, t.TempDir(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	return &fixture{srv: srv, pool: pgtest.Connect(t, dbURL), client: &http.Client{Timeout: time.Minute}}
}

func (f *fixture) stored(t testing.TB) int {
	t.Helper()
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events`).Scan(&n))
	return n
}

// problem decodes a problem+json answer and returns the fields its errors name.
func problem(t *testing.T, status int, body []byte, want int) []string {
	t.Helper()
	require.Equal(t, want, status, "%s", body)
	var p struct {
		Status int `json:"status"`
		Errors []struct {
			Index *int   `json:"index"`
			Field string `json:"field"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(body, &p), "%s", body)
	require.Equal(t, want, p.Status)
	var fields []string
	for _, e := range p.Errors {
		if e.Index != nil {
			fields = append(fields, fmt.Sprintf("[%d].%s", *e.Index, e.Field))
			continue
		}
		fields = append(fields, e.Field)
	}
	return fields
}

// median of the durations of n runs of fn.
func median(t *testing.T, n int, fn func() error) time.Duration {
	t.Helper()
	d := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		require.NoError(t, fn())
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return d[n/2]
}

// TestHostile_QueryStrings: a query string the server cannot read whole is a 400 on every
// route, never a query without its filters.
func TestHostile_QueryStrings(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	status, body, err := hostile.Post(f.client, f.srv.URL+"/api/v1/audit/events", hostile.WriterToken, hostile.Event("known", 10))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status, "%s", body)

	cases := map[string]string{
		"10,001 filters":          "/api/v1/audit/events?" + hostile.ManyParams("correlation_id", "no-such", 10001),
		"10,001 filters, export":  "/api/v1/audit/export?" + hostile.ManyParams("correlation_id", "no-such", 10001),
		"1,001 parameters":        "/api/v1/audit/events?" + hostile.ManyParams("correlation_id", "no-such", 1001),
		"101 values of one name":  "/api/v1/audit/events?" + hostile.ManyParams("correlation_id", "no-such", 101),
		"bad escape":              "/api/v1/audit/events?correlation_id=%zz",
		"semicolon":               "/api/v1/audit/events?correlation_id=a;b",
		"on a route without them": "/api/v1/audit/integrity/checkpoints?" + hostile.ManyParams("limit", "1", 10001),
	}
	normal := median(t, 3, func() error {
		_, _, err := hostile.Get(f.client, f.srv.URL+"/api/v1/audit/events?correlation_id=known", hostile.ReaderToken)
		return err
	})
	for name, path := range cases {
		start := time.Now()
		status, body, err := hostile.Get(f.client, f.srv.URL+path, hostile.ReaderToken)
		took := time.Since(start)
		require.NoError(t, err, name)
		// Refused before any handler runs: no slower than 10 normal queries.
		require.Less(t, took, 10*normal+50*time.Millisecond, "%s took %s; a normal query %s", name, took, normal)
		problem(t, status, body, http.StatusBadRequest)
		require.NotContains(t, string(body), "known", name)
	}
	// At the bound, the filters hold: 100 values of one name find nothing that is not among them.
	status, body, err = hostile.Get(f.client, f.srv.URL+"/api/v1/audit/events?"+hostile.ManyParams("correlation_id", "no-such", 100), hostile.ReaderToken)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.JSONEq(t, `[]`, string(mustData(t, body)))
}

func mustData(t *testing.T, body []byte) json.RawMessage {
	t.Helper()
	var reply struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &reply), "%s", body)
	return reply.Data
}

// TestHostile_DeepNesting: refusing a deep body costs a scan of it, on every route that takes
// JSON; 40,000 levels in under 10× the time a valid event of the same size takes to store.
func TestHostile_DeepNesting(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	events := f.srv.URL + "/api/v1/audit/events"
	n := 0
	valid := median(t, 3, func() error {
		n++
		status, body, err := hostile.Post(f.client, events, hostile.WriterToken, hostile.Event(fmt.Sprint("valid-", n), 240_000))
		if err == nil && status != http.StatusCreated {
			err = fmt.Errorf("valid event: %d %s", status, body)
		}
		return err
	})
	before := f.stored(t)

	type attack struct {
		body  []byte
		ct    string
		extra http.Header
		field string
	}
	deep40k := hostile.DeepEvent(40_000)
	batch := append(append([]byte(`[`), hostile.Event("ok", 1)...), append(append([]byte(","), hostile.DeepEvent(10_000)...), ']')...)
	attacks := map[string]attack{
		"event, 1k levels":   {body: hostile.DeepEvent(1000), ct: "application/json", field: "event_data"},
		"event, 10k levels":  {body: hostile.DeepEvent(10_000), ct: "application/json", field: "event_data"},
		"event, 40k levels":  {body: deep40k, ct: "application/json", field: "event_data"},
		"event, 33 levels":   {body: hostile.DeepEvent(33), ct: "application/json", field: "event_data"},
		"batch":              {body: batch, ct: "application/json", field: "[1].event_data"},
		"arrays, 5 MB":       {body: hostile.DeepArray(5 << 20), ct: "application/json", field: "[0].body"},
		"structured CE":      {body: []byte(`{"specversion":"1.0","id":"1","source":"s","type":"a.b","correlationid":"c","data":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`), ct: "application/cloudevents+json", field: "data"},
		"CE batch":           {body: []byte(`[{"specversion":"1.0","id":"1","source":"s","type":"a.b","correlationid":"c","data":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}]`), ct: "application/cloudevents-batch+json", field: "[0].data"},
		"binary CE":          {body: []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), ct: "application/json", extra: http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"s"}, "Ce-Type": {"a.b"}, "Ce-Correlationid": {"c"}}, field: "data"},
		"header form":        {body: []byte(strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)), ct: "application/json", extra: http.Header{"X-Event-Type": {"a.b"}, "X-Service": {"s"}, "X-Correlation-Id": {"c"}, "X-Outcome": {"success"}}, field: "body"},
		"dead letter (kept)": {body: []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), ct: "application/json", extra: http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"s"}, "Ce-Type": {"a.b"}}},
	}
	for name, a := range attacks {
		path := events
		if name == "dead letter (kept)" {
			path = f.srv.URL + "/api/v1/deadletter"
		}
		req, err := http.NewRequest(http.MethodPost, path, strings.NewReader(string(a.body)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+hostile.WriterToken)
		req.Header.Set("Content-Type", a.ct)
		for k, v := range a.extra {
			req.Header[k] = v
		}
		start := time.Now()
		resp, err := f.client.Do(req)
		require.NoError(t, err, name)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err, name)
		took := time.Since(start)
		if name == "dead letter (kept)" {
			require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", raw)
			continue
		}
		fields := problem(t, resp.StatusCode, raw, http.StatusBadRequest)
		require.Contains(t, fields, a.field, "%s: %s", name, raw)
		// Every refusal costs at most a scan: 10× storing a valid 240 KB event bounds even the
		// 5 MB body, with the machine's noise to spare.
		require.Less(t, took, 10*valid, "refusing %s took %s; storing a valid event of 240 KB %s", name, took, valid)
	}
	require.Equal(t, before, f.stored(t), "a refused body stored events")

	// The data query parameter is checked the same way.
	q := url.Values{"data": {strings.Repeat(`{"a":`, 10_000) + "1" + strings.Repeat("}", 10_000)}}
	status, body, err := hostile.Get(f.client, f.srv.URL+"/api/v1/audit/events?"+q.Encode(), hostile.ReaderToken)
	require.NoError(t, err)
	require.Contains(t, problem(t, status, body, http.StatusBadRequest), "data")
}

// TestHostile_NotIJSON: what I-JSON refuses is a 400 naming the field, and nothing is stored.
func TestHostile_NotIJSON(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	events := f.srv.URL + "/api/v1/audit/events"
	base := `"event_type":"a.b","correlation_id":"c","event_outcome":"success"`
	cases := map[string]struct {
		body  string
		field string
	}{
		"event_outcome twice": {`{` + base + `,"event_outcome":"failure","event_data":{}}`, "event_outcome"},
		"event_id twice": {`{` + base + `,"event_id":"0193a1b2-0000-7000-8000-000000000001","event_id":"0193a1b2-0000-7000-8000-000000000002","event_data":{}}`,
			"event_id"},
		"member twice in event_data": {`{` + base + `,"event_data":{"x":{"a":1,"a":2}}}`, "event_data"},
		"empty name twice":           {`{` + base + `,"event_data":{"":0,"0":0,"":0}}`, "event_data"},
		"lone surrogate":             {`{` + base + `,"event_data":{"s":"\ud800"}}`, "event_data"},
		"lone surrogate in a field":  {`{"event_type":"a.b","correlation_id":"\udc00","event_outcome":"success","event_data":{}}`, "correlation_id"},
		"underflow":                  {`{` + base + `,"event_data":{"n":1e-400}}`, "event_data"},
		"overflow":                   {`{` + base + `,"event_data":{"n":1e400}}`, "event_data"},
		"huge integer":               {`{` + base + `,"event_data":{"n":1` + strings.Repeat("0", 400) + `}}`, "event_data"},
		"invalid UTF-8":              {`{` + base + `,"event_data":{"s":"` + "\xff\xfe" + `"}}`, "body"},
		"NUL":                        {`{` + base + `,"event_data":{"s":"a\u0000b"}}`, "event_data"},
		"duplicate in a batch":       {`[{` + base + `,"event_data":{}},{` + base + `,"event_data":{},"event_data":{}}]`, "[1].event_data"},
	}
	before := f.stored(t)
	for name, tc := range cases {
		status, body, err := hostile.Post(f.client, events, hostile.WriterToken, []byte(tc.body))
		require.NoError(t, err, name)
		require.Contains(t, problem(t, status, body, http.StatusBadRequest), tc.field, "%s: %s", name, body)
	}
	require.Equal(t, before, f.stored(t))
}

// TestHostile_Injection: SQL and SQL/JSON path injection in every filter, and forged or
// foreign cursors, are answered 200 with nothing or 400, never a 5xx, and change nothing.
func TestHostile_Injection(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	status, body, err := hostile.Post(f.client, f.srv.URL+"/api/v1/audit/events", hostile.WriterToken, hostile.Event("inj", 1))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	before := f.stored(t)
	payloads := []string{`' OR 1=1 --`, `x'; DROP TABLE audit_events; --`, `\' OR '1'='1`, `$.a ? (@ like_regex ".*" flag "i")`,
		`") || true || ("`, `%' OR '%'='`, `inj' UNION SELECT * FROM audit_event_keys --`}
	filters := []string{"correlation_id", "event_type", "event_category", "event_action", "event_outcome", "severity", "actor_type",
		"actor_id", "resource_type", "resource_id", "namespace", "cluster_id", "submitted_by", "parent_event_id", "since", "until",
		"data", "data_path", "order", "limit", "offset", "cursor"}
	for _, name := range filters {
		for _, p := range payloads {
			status, body, err := hostile.Get(f.client, f.srv.URL+"/api/v1/audit/events?"+url.Values{name: {p}}.Encode(), hostile.ReaderToken)
			require.NoError(t, err)
			require.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, status, "%s=%s: %s", name, p, body)
			if status == http.StatusOK {
				require.JSONEq(t, `[]`, string(mustData(t, body)), "%s=%s", name, p)
			}
		}
	}
	require.Equal(t, before, f.stored(t))
	// A cursor is signed: one from another filter, or altered, is refused.
	for range 3 {
		status, _, err = hostile.Post(f.client, f.srv.URL+"/api/v1/audit/events", hostile.WriterToken, hostile.Event("inj", 1))
		require.NoError(t, err)
		require.Equal(t, http.StatusCreated, status)
	}
	before = f.stored(t)
	status, body, err = hostile.Get(f.client, f.srv.URL+"/api/v1/audit/events?correlation_id=inj&limit=1", hostile.ReaderToken)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
	var page struct {
		Pagination struct {
			NextCursor string `json:"next_cursor"`
		} `json:"pagination"`
	}
	require.NoError(t, json.Unmarshal(body, &page))
	require.NotEmpty(t, page.Pagination.NextCursor)
	cur := page.Pagination.NextCursor
	forged := []byte(cur)
	forged[len(forged)/2] ^= 1
	for name, q := range map[string]string{
		"foreign": "correlation_id=other&limit=1&cursor=" + url.QueryEscape(cur),
		"altered": "correlation_id=inj&limit=1&cursor=" + url.QueryEscape(string(forged)),
		"garbage": "correlation_id=inj&cursor=" + url.QueryEscape(strings.Repeat("A", 4000)),
	} {
		status, body, err := hostile.Get(f.client, f.srv.URL+"/api/v1/audit/events?"+q, hostile.ReaderToken)
		require.NoError(t, err)
		require.Contains(t, problem(t, status, body, http.StatusBadRequest), "cursor", name)
	}
	require.Equal(t, before, f.stored(t))
}

// TestHostile_HugeBodies: 100 MB is refused with a 413 after at most 5 MiB was read, with a
// length and without.
func TestHostile_HugeBodies(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	before := f.stored(t)
	for _, chunked := range []bool{false, true} {
		body := &zeroReader{left: 100 << 20}
		req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/audit/events", body)
		require.NoError(t, err)
		if !chunked {
			req.ContentLength = 100 << 20
		}
		req.Header.Set("Authorization", "Bearer "+hostile.WriterToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := f.client.Do(req)
		if err == nil {
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			resp.Body.Close()
		} // else: the server answered and closed while the client still sent, as it may
		require.Less(t, body.sent(), 16<<20, "the client could send %d bytes", body.sent())
	}
	require.Equal(t, before, f.stored(t))
}

type zeroReader struct {
	mu   sync.Mutex
	left int
}

func (z *zeroReader) sent() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return 100<<20 - z.left
}

func (z *zeroReader) Read(p []byte) (int, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), z.left)
	for i := range p[:n] {
		p[i] = ' '
	}
	z.left -= n
	return n, nil
}

// TestHostile_SlowSenders: a body that trickles in gets a 408 once HTTP_BODY_TIMEOUT passes;
// headers that trickle are cut at HTTP_READ_HEADER_TIMEOUT; meanwhile others are served.
func TestHostile_SlowSenders(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *web.ServeConfig) {
		c.BodyTimeout = time.Second
		c.ReadHeaderTimeout = time.Second
	})
	before := f.stored(t)
	line, err := hostile.SlowBody(f.srv.Addr, attacker, 100, 100*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 408", line)

	// Headers that never end: the server closes the connection without an answer.
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: attacker}}).Dial("tcp", f.srv.Addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("POST /api/v1/audit/events HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	require.Error(t, err, "the connection stays open: %q", buf[:n])
	var ne net.Error
	if ok := asNetError(err, &ne); ok {
		require.False(t, ne.Timeout(), "the server never closed the connection")
	}
	require.Equal(t, before, f.stored(t))
}

func asNetError(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// TestHostile_ConnectionFlood: 2,000 connections from one client get the per-client bound
// and a quick 503 beyond it; another client is served all along.
func TestHostile_ConnectionFlood(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *web.ServeConfig) {
		c.MaxConns, c.MaxConnsPerClient = 400, 100
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 2000
	lines := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, hcancel := context.WithTimeout(ctx, 20*time.Second)
			defer hcancel()
			line, err := hostile.Hold(hctx, f.srv.Addr, attacker)
			if err != nil {
				line = "dial error: " + err.Error()
			}
			lines <- line
		}()
	}
	// Refusals arrive while the admitted connections are held open.
	refused := 0
	for refused < n-100 {
		select {
		case l := <-lines:
			require.Equal(t, "HTTP/1.1 503", l)
			refused++
		case <-time.After(30 * time.Second):
			require.FailNow(t, "refusals stopped", "%d of %d refused", refused, n-100)
		}
	}
	status, body, err := hostile.Post(f.client, f.srv.URL+"/api/v1/audit/events", hostile.WriterToken, hostile.Event("flood", 1))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status, "%s", body)
	cancel()
	wg.Wait()
}

// TestHostile_ShutdownCutsSlowSenders: SIGTERM answers what is in flight and does not wait
// for connections still sending: a slow body gets a 503, a slow header and an idle
// connection are closed, and shutting down ends well within SHUTDOWN_TIMEOUT although the
// body timeout is far longer.
func TestHostile_ShutdownCutsSlowSenders(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *web.ServeConfig) {
		c.BodyTimeout = 10 * time.Minute
		c.ReadHeaderTimeout = 10 * time.Minute
		c.ShutdownTimeout = 20 * time.Second
	})
	slow := make(chan string, 1)
	go func() {
		line, _ := hostile.SlowBody(f.srv.Addr, attacker, 10_000, 200*time.Millisecond)
		slow <- line
	}()
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: attacker}}).Dial("tcp", f.srv.Addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("GET /api/v1/audit/events HTTP/1.1\r\n"))
	require.NoError(t, err)
	// Let both be read into by the server before it is told to stop.
	status, _, err := hostile.Post(f.client, f.srv.URL+"/api/v1/audit/events", hostile.WriterToken, hostile.Event("before-stop", 1))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status)
	time.Sleep(500 * time.Millisecond)

	require.NoError(t, f.srv.Stop(), "shutting down waited for the slow senders")
	require.Equal(t, "HTTP/1.1 503", <-slow)
}

// TestHostile_ForgedIdentity: headers that claim another identity change nothing; the stored
// submitted_by is the token's principal, and a body that sets it is refused.
func TestHostile_ForgedIdentity(t *testing.T) {
	t.Parallel()
	f := setup(t, nil)
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+"/api/v1/audit/events", strings.NewReader(string(hostile.Event("forged", 1))))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+hostile.WriterToken)
	req.Header.Set("Content-Type", "application/json")
	for _, h := range []string{"X-User-Id", "X-Remote-User", "X-Forwarded-User", "Impersonate-User", "X-Auth-Request-User"} {
		req.Header.Set(h, "admin")
	}
	resp, err := f.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var by string
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT submitted_by FROM audit_events WHERE correlation_id = 'forged'`).Scan(&by))
	require.Equal(t, "writer", by)

	status, body, err := hostile.Post(f.client, f.srv.URL+"/api/v1/audit/events", hostile.WriterToken,
		[]byte(`{"event_type":"a.b","correlation_id":"forged2","event_outcome":"success","submitted_by":"admin","event_data":{}}`))
	require.NoError(t, err)
	require.Contains(t, problem(t, status, body, http.StatusBadRequest), "submitted_by")
	// A reader cannot write, whatever it claims.
	status, body, err = hostile.Post(f.client, f.srv.URL+"/api/v1/audit/events", hostile.ReaderToken, hostile.Event("forged3", 1))
	require.NoError(t, err)
	problem(t, status, body, http.StatusForbidden)
}

// TestHostile_RefusalsPaced: past its burst, a client's refusals are held before they are
// sent (HTTP_REFUSALS_PER_SEC), while what it sends valid is stored.
func TestHostile_RefusalsPaced(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *web.ServeConfig) {
		c.RefusalsPerSec, c.RefusalBurst, c.RefusalMaxWait = 2, 2, 400*time.Millisecond
	})
	events := f.srv.URL + "/api/v1/audit/events"
	var held []time.Duration
	for range 5 {
		start := time.Now()
		status, body, err := hostile.Post(f.client, events, hostile.WriterToken, hostile.DeepEvent(100))
		require.NoError(t, err)
		problem(t, status, body, http.StatusBadRequest)
		held = append(held, time.Since(start))
	}
	// The third and later refusals wait for their token: at least 300 ms of the 400 ms bound.
	for _, d := range held[2:] {
		require.GreaterOrEqual(t, d, 300*time.Millisecond, "refusals were not held: %v", held)
	}
	status, body, err := hostile.Post(f.client, events, hostile.WriterToken, hostile.Event("paced", 1))
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, status, "%s", body)
}
