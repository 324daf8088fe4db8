package ui_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/query/ui"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/chromium"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// server is the real query function over a real store, behind an outer mux where a test can
// stand in for routes the query function does not serve (the integrity API).
type server struct {
	URL   string
	store *store.Store
}

func serve(t testing.TB, extra map[string]http.Handler, opts ...query.Option) *server {
	t.Helper()
	s := store.New(pgtest.NewPool(t))
	h, err := query.New(s, query.Config{CursorSecret: "ui-test", Timeout: 10 * time.Second}, nil, opts...)
	require.NoError(t, err)
	inner := http.NewServeMux()
	h.Routes(inner)
	outer := http.NewServeMux()
	for pattern, handler := range extra {
		outer.Handle(pattern, handler)
	}
	outer.Handle("/", inner)
	srv := httptest.NewServer(outer)
	t.Cleanup(srv.Close)
	return &server{URL: srv.URL, store: s}
}

// step is one event of a seeded remediation.
type step struct {
	actor, typ, outcome string
	at                  time.Duration // after the first event
	durationMS          int64
	parent              int // index of the parent step; -1 for none
	data                string
	mutate              func(*audit.Input)
}

// xssData is event content that would run script or add elements if the page ever treated
// event content as HTML.
const xssData = `{"operation":"message.sent","status":"success","payload":{"channel":"slack",` +
	`"text":"<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"><b id=\"injected\">bold</b>"}}`

// remediation is a multi-service remediation: a signal, an analysis, an approval that waits
// twelve minutes, a workflow step that fails and its retry, and a notification whose data
// carries markup.
var remediation = []step{
	{actor: "gateway", typ: "gateway.signal.received", outcome: "success", parent: -1},
	{actor: "gateway", typ: "gateway.crd.created", outcome: "success", at: 120 * time.Millisecond, parent: 0},
	{actor: "remediationorchestrator", typ: "orchestrator.remediation.started", outcome: "success", at: 400 * time.Millisecond, parent: 1},
	{actor: "aianalysis", typ: "aianalysis.analysis.completed", outcome: "success", at: 9400 * time.Millisecond, durationMS: 8800, parent: 2},
	{actor: "remediationorchestrator", typ: "orchestrator.approval.requested", outcome: "pending", at: 9600 * time.Millisecond, parent: 3},
	{actor: "remediationorchestrator", typ: "orchestrator.approval.granted", outcome: "success", at: 12 * time.Minute, parent: 4},
	{actor: "workflowexecution", typ: "workflow.execution.started", outcome: "success", at: 12*time.Minute + 500*time.Millisecond, parent: 5},
	{actor: "workflowexecution", typ: "workflow.step.completed", outcome: "failure", at: 12*time.Minute + 31*time.Second, durationMS: 30000, parent: 6,
		mutate: func(in *audit.Input) {
			code, msg := "ImagePullBackOff", "step restart-pod failed: back-off pulling image"
			in.ErrorCode, in.ErrorMessage = &code, &msg
		}},
	{actor: "workflowexecution", typ: "workflow.step.completed", outcome: "success", at: 13*time.Minute + 5*time.Second, durationMS: 25000, parent: 6},
	{actor: "notification", typ: "notification.message.sent", outcome: "success", at: 13*time.Minute + 6*time.Second, parent: 8, data: xssData,
		mutate: func(in *audit.Input) {
			name := `<i id="injected-name">checkout</i>`
			in.ResourceName = &name
		}},
}

// remediationLanes are the lanes in order of first appearance.
var remediationLanes = []string{"gateway", "remediationorchestrator", "aianalysis", "workflowexecution", "notification"}

// seed stores steps as one correlation, starting at start; events are returned in step order.
func seed(t testing.TB, s *store.Store, correlation string, start time.Time, steps []step) []audit.Event {
	t.Helper()
	events := make([]audit.Event, len(steps))
	for i, st := range steps {
		ts := start.Add(st.at)
		in := audittest.Input(t, &audittest.EventOpts{
			CorrelationID: correlation, ActorID: st.actor, EventType: st.typ, EventOutcome: st.outcome,
			EventTimestamp: ts, ResourceType: "Pod", ResourceID: "checkout-7d9f8b6c5-x2k4q",
			EventData: json.RawMessage(cmpOr(st.data, fmt.Sprintf(`{"operation":%q,"status":%q,"payload":{"step":%d}}`, st.typ, st.outcome, i))),
		})
		if st.parent >= 0 {
			p := events[st.parent].EventID.String()
			in.ParentEventID = &p
		}
		if st.durationMS > 0 {
			in.DurationMS = &st.durationMS
		}
		if st.mutate != nil {
			st.mutate(in)
		}
		e, errs := in.Prepare(audit.Defaults{Now: ts, Principal: "test-writer", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
		require.Empty(t, errs)
		events[i] = e
	}
	for i := 0; i < len(events); i += 1000 {
		_, _, err := s.InsertEvents(context.Background(), store.InsertParams{Events: events[i:min(i+1000, len(events))]})
		require.NoError(t, err)
	}
	return events
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// eval runs a JavaScript expression in the page (promises awaited) and decodes its value.
func eval[T any](t testing.TB, tab *chromium.Tab, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab.Ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}

// waitFor waits until a JavaScript condition holds in the page. chromedp's Poll builds its
// predicate with new Function, which the page's Content-Security-Policy refuses.
func waitFor(t testing.TB, tab *chromium.Tab, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, 30*time.Second)
	defer cancel()
	expr := fmt.Sprintf(`new Promise((resolve) => { const check = () => { if (%s) resolve(true); else setTimeout(check, 10); }; check(); })`, cond)
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		status, _ := chromedp.Run(tab.Ctx, chromedp.Evaluate[string](`document.getElementById('status')?.textContent ?? ''`))
		t.Fatalf("waiting for %s: %v (page status: %q, page problems: %v)", cond, err, status, tab.Problems())
	}
}

func open(t testing.TB, tab *chromium.Tab, url string) {
	t.Helper()
	require.NoError(t, chromedp.Do(tab.Ctx, chromedp.Navigate(url)))
}

func click(t testing.TB, tab *chromium.Tab, selector string) {
	t.Helper()
	// A click through the DOM: chromedp's Click scrolls and aims the mouse, which an SVG
	// circle under a link's path can lose to the path.
	ok := eval[bool](t, tab, fmt.Sprintf(`(() => { const n = document.querySelector(%q); if (!n) return false; n.dispatchEvent(new MouseEvent('click', {bubbles: true})); return true; })()`, selector))
	require.True(t, ok, "no element %s", selector)
}

// artifact writes a test artifact to $TEST_ARTIFACTS_DIR (else the test's temp dir) and logs
// where it is.
func artifact(t testing.TB, name string, data []byte) {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	t.Logf("artifact: %s (%d bytes)", path, len(data))
}

func TestAssets(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	ui.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string, header ...string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		for i := 0; i < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	resp, page := get("/ui/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	require.Equal(t, ui.ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
	require.Contains(t, ui.ContentSecurityPolicy, "script-src 'self';", "no inline script, no eval")
	require.NotContains(t, ui.ContentSecurityPolicy, "unsafe")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))

	// The page itself could run under the policy: every script is a file, no handler or style
	// is inline.
	for _, m := range regexp.MustCompile(`(?is)<script\b[^>]*>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		require.Contains(t, m[0], `src="`, "a script element without src")
		require.Empty(t, strings.TrimSpace(m[1]), "inline script")
	}
	require.NotRegexp(t, `(?i)\son[a-z]+\s*=`, page, "inline event handler")
	require.NotRegexp(t, `(?i)\sstyle\s*=`, page, "inline style")

	for path, ct := range map[string]string{"/ui/app.js": "javascript", "/ui/timeline.js": "javascript", "/ui/style.css": "text/css"} {
		resp, body := get(path)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, resp.Header.Get("Content-Type"), ct, path)
		require.NotEmpty(t, body)
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			require.False(t, strings.Contains(body, sink), "%s uses %s: event content must only ever be text", path, sink)
		}
	}

	// Revalidation: the same build answers 304.
	resp, _ = get("/ui/app.js")
	etag := resp.Header.Get("ETag")
	require.NotEmpty(t, etag)
	resp, _ = get("/ui/app.js", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, resp.StatusCode)

	resp, body := get("/ui/secrets.txt")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	require.Contains(t, body, "not-found")

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := noRedirect.Get(srv.URL + "/ui")
	require.NoError(t, err)
	r.Body.Close()
	require.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect}, r.StatusCode)
	require.Equal(t, "/ui/", r.Header.Get("Location"))
}

// eventIDs returns the ids of events.
func eventIDs(events []audit.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.EventID.String()
	}
	return ids
}

func TestTimeline_Remediation(t *testing.T) {
	t.Parallel()
	srv := serve(t, map[string]http.Handler{
		// A server without the integrity API, whatever the query function serves.
		"/api/v1/audit/integrity/": http.NotFoundHandler(),
	})
	corr := "rr-ui-" + uuid.NewString()[:8]
	events := seed(t, srv.store, corr, time.Now().UTC().Add(-3*time.Hour).Truncate(time.Millisecond), remediation)
	// Another correlation, not to be shown.
	seed(t, srv.store, "rr-other", time.Now().UTC().Add(-2*time.Hour), remediation[:2])
	tab := chromium.New(t)

	open(t, tab, srv.URL+"/ui/?correlation_id="+corr)
	waitFor(t, tab, `document.body.dataset.state === 'ready'`)
	require.Equal(t, "10", eval[string](t, tab, `document.body.dataset.count`))
	require.Equal(t, corr, eval[string](t, tab, `document.querySelector('input[name=correlation_id]').value`), "the form shows the search")

	t.Run("lanes", func(t *testing.T) {
		labels := eval[[]string](t, tab, `[...document.querySelectorAll('.lane-label .lane-name')].map(n => n.textContent)`)
		require.Equal(t, remediationLanes, labels, "one lane per service, in order of first appearance")
		type dot struct {
			ID      string  `json:"id"`
			Lane    int     `json:"lane"`
			X       float64 `json:"x"`
			Y       float64 `json:"y"`
			Outcome string  `json:"outcome"`
		}
		dots := eval[[]dot](t, tab, `[...document.querySelectorAll('#timeline circle.event')].map(c => ({
			id: c.dataset.eventId, lane: Number(c.dataset.lane), x: c.cx.baseVal.value, y: c.cy.baseVal.value,
			outcome: [...c.classList].find(k => k.startsWith('outcome-')) }))`)
		require.Len(t, dots, len(events))
		byID := map[string]dot{}
		for _, d := range dots {
			byID[d.ID] = d
		}
		laneIndex := map[string]int{}
		for i, l := range remediationLanes {
			laneIndex[l] = i
		}
		laneY := map[int]float64{}
		for i, e := range events {
			d, ok := byID[e.EventID.String()]
			require.True(t, ok, "event %d is drawn", i)
			require.Equal(t, laneIndex[e.ActorID], d.Lane, "event %d is in its service's lane", i)
			require.Equal(t, "outcome-"+e.EventOutcome, d.Outcome, "event %d is coloured by outcome", i)
			if y, ok := laneY[d.Lane]; ok {
				require.Equal(t, y, d.Y, "a lane is one row")
			}
			laneY[d.Lane] = d.Y
			if i > 0 {
				prev := byID[events[i-1].EventID.String()]
				require.Greater(t, d.X, prev.X, "event %d is right of event %d: time runs left to right", i, i-1)
			}
		}
		require.Len(t, laneY, len(remediationLanes))
	})

	t.Run("order", func(t *testing.T) {
		rows := eval[[]string](t, tab, `[...document.querySelectorAll('#rows tr')].map(r => r.dataset.eventId)`)
		require.Equal(t, eventIDs(events), rows, "the table lists the timeline oldest first")
	})

	t.Run("links", func(t *testing.T) {
		type link struct {
			Parent string `json:"parent"`
			Child  string `json:"child"`
		}
		links := eval[[]link](t, tab, `[...document.querySelectorAll('#timeline path.link')].map(p => ({parent: p.dataset.parent, child: p.dataset.child}))`)
		var want []link
		for i, st := range remediation {
			if st.parent >= 0 {
				want = append(want, link{Parent: events[st.parent].EventID.String(), Child: events[i].EventID.String()})
			}
		}
		require.ElementsMatch(t, want, links, "one arrow per parent_event_id")
	})

	t.Run("durations and gaps", func(t *testing.T) {
		type bar struct {
			ID    string  `json:"id"`
			Start float64 `json:"start"`
			End   float64 `json:"end"`
			Dot   float64 `json:"dot"`
		}
		bars := eval[[]bar](t, tab, `[...document.querySelectorAll('#timeline rect.bar')].map(r => ({
			id: r.dataset.eventId, start: r.x.baseVal.value, end: r.x.baseVal.value + r.width.baseVal.value,
			dot: document.querySelector('#timeline circle[data-event-id="' + r.dataset.eventId + '"]').cx.baseVal.value }))`)
		var withDuration []string
		for i, st := range remediation {
			if st.durationMS > 0 {
				withDuration = append(withDuration, events[i].EventID.String())
			}
		}
		require.Len(t, bars, len(withDuration))
		for _, b := range bars {
			require.Contains(t, withDuration, b.ID)
			require.InDelta(t, b.Dot, b.End, 0.01, "a duration ends at its event")
			require.Greater(t, b.End-b.Start, 2.0, "a duration is a visible bar")
		}
		// The twelve-minute wait for approval is a gap, drawn shortened with its length.
		breaks := eval[[]string](t, tab, `[...document.querySelectorAll('#timeline rect.gap.break')].map(r => r.querySelector('title').textContent)`)
		require.NotEmpty(t, breaks)
		require.Contains(t, strings.Join(breaks, " "), "11 min 50 s")
		labels := eval[string](t, tab, `[...document.querySelectorAll('#timeline .gap-label')].map(n => n.textContent).join(' | ')`)
		require.Contains(t, labels, "⋯ 11 min 50 s")
	})

	t.Run("detail", func(t *testing.T) {
		failed := events[7]
		click(t, tab, fmt.Sprintf(`#timeline circle[data-event-id="%s"]`, failed.EventID))
		waitFor(t, tab, `!document.getElementById('detail').hidden`)
		require.Equal(t, "workflow.step.completed", eval[string](t, tab, `document.getElementById('detail-title').textContent`))
		fields := eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll('#detail-fields dt')].map(dt => [dt.textContent, dt.nextElementSibling.querySelector('code')?.textContent ?? dt.nextElementSibling.textContent]))`)
		require.Equal(t, failed.EventID.String(), fields["event_id"])
		require.Equal(t, corr, fields["correlation_id"])
		require.Equal(t, events[6].EventID.String(), fields["parent_event_id"])
		require.Equal(t, "failure", fields["event_outcome"])
		require.Equal(t, "ImagePullBackOff", fields["error_code"])
		require.Equal(t, "30000", fields["duration_ms"])
		require.Equal(t, "—", fields["trace_id"], "an absent field is shown as absent")
		for _, k := range []string{"event_timestamp", "actor_type", "actor_id", "resource_type", "resource_id", "namespace", "severity",
			"retention_days", "is_sensitive", "received_at", "submitted_by", "event_category", "event_action", "version"} {
			require.Contains(t, fields, k, "every field is shown")
		}
		copies := eval[int](t, tab, `document.querySelectorAll('#detail-fields button.copy').length`)
		require.GreaterOrEqual(t, copies, 4, "event, correlation, parent and resource ids are copyable")
		data := eval[string](t, tab, `document.getElementById('detail-data').textContent`)
		require.Contains(t, data, "\n  \"payload\": {", "event_data is pretty-printed")
		require.JSONEq(t, string(failed.EventData), data)
		waitFor(t, tab, `!document.getElementById('detail-integrity').textContent.includes('checking')`)
		require.Equal(t, "integrity: integrity status unavailable", eval[string](t, tab, `document.getElementById('detail-integrity').textContent`))
		waitFor(t, tab, `document.body.dataset.integrity === 'done'`)
		require.Equal(t, "Integrity status unavailable (this server has no integrity API)", eval[string](t, tab, `document.getElementById('integrity-summary').textContent`))
		require.Equal(t, "integrity status unavailable", eval[string](t, tab, `document.querySelector('#rows tr td.integrity').textContent`))

		// Its parent is one click away.
		click(t, tab, `#goto-parent`)
		waitFor(t, tab, fmt.Sprintf(`document.querySelector('#detail-fields code')?.textContent === %q`, events[6].EventID.String()))
		require.Equal(t, []string{events[6].EventID.String()}, eval[[]string](t, tab, `[...document.querySelectorAll('#timeline circle.selected')].map(c => c.dataset.eventId)`))
		require.Equal(t, 3, eval[int](t, tab, `document.querySelectorAll('#timeline path.link.active').length`), "the selected event's links (to its parent and two children) stand out")
	})

	t.Run("event content is text", func(t *testing.T) {
		click(t, tab, fmt.Sprintf(`#rows tr[data-event-id="%s"]`, events[9].EventID))
		waitFor(t, tab, `document.getElementById('detail-title')?.textContent === 'notification.message.sent'`)
		data := eval[string](t, tab, `document.getElementById('detail-data').textContent`)
		require.Contains(t, data, `<script>window.__pwned=1</script>`)
		require.Contains(t, data, `<b id=\"injected\">bold</b>`)
		visible := eval[string](t, tab, `document.getElementById('detail-data').innerText`)
		require.Contains(t, visible, `<img src=x onerror=\"window.__pwned=2\">`, "the markup is visible as text")
		require.Greater(t, eval[float64](t, tab, `document.getElementById('detail-data').getBoundingClientRect().height`), 20.0)
		require.Contains(t, eval[string](t, tab, `document.getElementById('detail').innerText`), `<i id="injected-name">checkout</i>`)
		require.False(t, eval[bool](t, tab, `document.querySelector('#injected, #injected-name, #detail img, #detail b, #detail i') !== null`), "no element was made from event content")
		require.Equal(t, 1, eval[int](t, tab, `document.scripts.length`), "only the page's own module")
		require.True(t, eval[bool](t, tab, `window.__pwned === undefined`), "no event content ran")
	})

	t.Run("export", func(t *testing.T) {
		name, body := tab.Download(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('export-ndjson').click()`))
		require.Equal(t, "audit-events.ndjson", name, "without a token the browser downloads from the export endpoint itself")
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		require.Len(t, lines, len(events))
		for i, line := range lines {
			var e audit.Event
			require.NoError(t, json.Unmarshal([]byte(line), &e))
			require.Equal(t, events[i].EventID, e.EventID)
		}
		name, body = tab.Download(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('export-csv').click()`))
		require.Equal(t, "audit-events.csv", name)
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 1+len(events), "a header and a row per event")
		require.Equal(t, "event_id", rows[0][0])
		require.Equal(t, events[9].EventID.String(), rows[10][0])
	})

	shot, err := chromedp.Run(tab.Ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	artifact(t, "timeline-remediation.png", shot)
	require.Empty(t, tab.Problems(), "the page ran without errors or policy violations")
}
