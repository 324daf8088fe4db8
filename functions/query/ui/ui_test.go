package ui_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/query/ui"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/chromium"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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
	return serveStore(t, store.New(pgtest.NewPool(t)), extra, opts...)
}

// serveStore is serve over the store s.
func serveStore(t testing.TB, s *store.Store, extra map[string]http.Handler, opts ...query.Option) *server {
	t.Helper()
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
		require.NoError(t, ledger.Hash(&e)) // as the write path does
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
		"/api/v1/audit/integrity/":                  http.HandlerFunc(web.NotFound),
		"GET /api/v1/audit/events/{event_id}/proof": http.HandlerFunc(web.NotFound),
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
		rows := eval[[]string](t, tab, `[...document.querySelectorAll('#rows .row')].map(r => r.dataset.eventId)`)
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
		require.Equal(t, "integrity status unavailable", eval[string](t, tab, `document.querySelector('#rows .row .integrity').textContent`))

		// Its parent is one click away.
		click(t, tab, `#goto-parent`)
		waitFor(t, tab, fmt.Sprintf(`document.querySelector('#detail-fields code')?.textContent === %q`, events[6].EventID.String()))
		require.Equal(t, []string{events[6].EventID.String()}, eval[[]string](t, tab, `[...document.querySelectorAll('#timeline circle.selected')].map(c => c.dataset.eventId)`))
		require.Equal(t, 3, eval[int](t, tab, `document.querySelectorAll('#timeline path.link.active').length`), "the selected event's links (to its parent and two children) stand out")
	})

	t.Run("event content is text", func(t *testing.T) {
		click(t, tab, fmt.Sprintf(`#rows .row[data-event-id="%s"]`, events[9].EventID))
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

	t.Run("zoom", func(t *testing.T) {
		width := eval[float64](t, tab, `document.getElementById('timeline').width.baseVal.value`)
		click(t, tab, `#zoom-in`)
		require.InDelta(t, 2*width, eval[float64](t, tab, `document.getElementById('timeline').width.baseVal.value`), 1)
		require.Equal(t, "×2", eval[string](t, tab, `document.getElementById('zoom-level').textContent`))
		require.Len(t, eval[[]string](t, tab, `[...document.querySelectorAll('#timeline circle.selected')].map(c => c.dataset.eventId)`), 1, "the selection stays")
		click(t, tab, `#zoom-out`)
		require.InDelta(t, width, eval[float64](t, tab, `document.getElementById('timeline').width.baseVal.value`), 1)
	})

	t.Run("keyboard", func(t *testing.T) {
		require.NoError(t, chromedp.Do(tab.Ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
			`document.querySelector('#timeline circle[data-event-id="%s"]').focus()`, events[2].EventID))))
		require.NoError(t, chromedp.Do(tab.Ctx, chromedp.KeyEvent(kb.ArrowRight)))
		waitFor(t, tab, fmt.Sprintf(`document.querySelector('#detail-fields code')?.textContent === %q`, events[3].EventID))
		require.Equal(t, events[3].EventID.String(), eval[string](t, tab, `document.activeElement.dataset.eventId`))
		require.NoError(t, chromedp.Do(tab.Ctx, chromedp.KeyEvent(kb.ArrowLeft)))
		waitFor(t, tab, fmt.Sprintf(`document.querySelector('#detail-fields code')?.textContent === %q`, events[2].EventID))
	})

	shot, err := chromedp.Run(tab.Ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	artifact(t, "timeline-remediation.png", shot)
	require.Empty(t, tab.Problems(), "the page ran without errors or policy violations")
}

func TestTimeline_BearerToken(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(path, []byte("tokens:\n  - {principal: auditor, roles: [reader], token: reader-token}\n  - {principal: gateway, roles: [writer], token: writer-token}\n"), 0o600))
	az, err := auth.NewStatic(path)
	require.NoError(t, err)
	srv := serve(t, nil, query.WithAuthorizer(az, nil))
	corr := "rr-token-" + uuid.NewString()[:8]
	events := seed(t, srv.store, corr, time.Now().UTC().Add(-time.Hour), remediation[:4])
	tab := chromium.New(t)

	open(t, tab, srv.URL+"/ui/?correlation_id="+corr)
	waitFor(t, tab, `document.body.dataset.state === 'error'`)
	require.Contains(t, eval[string](t, tab, `document.getElementById('status').textContent`), "Bearer token")
	require.Equal(t, "token", eval[string](t, tab, `document.activeElement.id`), "the token field asks for one")

	useToken := func(token string) {
		t.Helper()
		require.NoError(t, chromedp.Do(tab.Ctx,
			chromedp.SendKeys(chromedp.ID("token"), token),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('token-form').requestSubmit()`)))
	}
	useToken("writer-token")
	waitFor(t, tab, `document.body.dataset.state === 'error' && document.getElementById('status').textContent.includes('403')`)

	useToken("reader-token")
	waitFor(t, tab, `document.body.dataset.state === 'ready'`)
	require.Equal(t, "4", eval[string](t, tab, `document.body.dataset.count`))
	require.Equal(t, "reader-token", eval[string](t, tab, `sessionStorage.getItem('auditstore.token')`), "the token is kept in the tab")
	require.Equal(t, 0, eval[int](t, tab, `localStorage.length`), "and nowhere that outlives it")
	require.Empty(t, eval[string](t, tab, `document.getElementById('token').value`), "the field does not keep showing it")
	require.NotContains(t, eval[string](t, tab, `location.href`), "reader-token")

	// The detail's lookups carry the token too.
	click(t, tab, fmt.Sprintf(`#rows .row[data-event-id="%s"]`, events[3].EventID))
	waitFor(t, tab, `document.getElementById('detail-title')?.textContent === 'aianalysis.analysis.completed'`)

	// A download link cannot send the token: the page fetches the export and saves it.
	name, body := tab.Download(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('export-ndjson').click()`))
	require.Equal(t, "audit-events-"+corr+".ndjson", name)
	require.Len(t, strings.Split(strings.TrimSpace(string(body)), "\n"), len(events))
	name, body = tab.Download(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('export-csv').click()`))
	require.Equal(t, "audit-events-"+corr+".csv", name)
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1+len(events))

	// Forgetting it ends access from this tab.
	require.NoError(t, chromedp.Do(tab.Ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('token-forget').click()`)))
	require.Nil(t, eval[*string](t, tab, `sessionStorage.getItem('auditstore.token')`))
	require.NoError(t, chromedp.Do(tab.Ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('search').requestSubmit()`)))
	waitFor(t, tab, `document.body.dataset.state === 'error'`)
	require.Contains(t, eval[string](t, tab, `document.getElementById('status').textContent`), "401")
	require.Empty(t, tab.Problems())
}

// merkle is an RFC 9162 Merkle tree over leaf data, for proofs the page must verify.
type merkle [][]byte

func (m merkle) hash(lo, hi int) []byte {
	if hi-lo == 1 {
		h := sha256.Sum256(append([]byte{0}, m[lo]...))
		return h[:]
	}
	k := 1
	for k*2 < hi-lo {
		k *= 2
	}
	h := sha256.Sum256(append(append([]byte{1}, m.hash(lo, lo+k)...), m.hash(lo+k, hi)...))
	return h[:]
}

// path is the audit path of leaf i in the tree of leaves lo..hi (RFC 9162 section 2.1.3.1).
func (m merkle) path(i, lo, hi int) [][]byte {
	if hi-lo == 1 {
		return nil
	}
	k := 1
	for k*2 < hi-lo {
		k *= 2
	}
	if i < lo+k {
		return append(m.path(i, lo, lo+k), m.hash(lo+k, hi))
	}
	return append(m.path(i, lo+k, hi), m.hash(lo, lo+k))
}

// proof is the integrity API's inclusion proof of one event.
type proof struct {
	EventID    string      `json:"event_id"`
	EventHash  string      `json:"event_hash"`
	LeafIndex  int         `json:"leaf_index"`
	TreeSize   int         `json:"tree_size"`
	RootHash   string      `json:"root_hash"`
	AuditPath  []string    `json:"audit_path"`
	Checkpoint *checkpoint `json:"checkpoint,omitempty"`
}

type checkpoint struct {
	TreeSize  int    `json:"tree_size"`
	RootHash  string `json:"root_hash"`
	Timestamp string `json:"timestamp"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
}

func (m merkle) proof(id string, i int) proof {
	p := proof{EventID: id, EventHash: hex.EncodeToString(m[i]), LeafIndex: i, TreeSize: len(m), RootHash: hex.EncodeToString(m.hash(0, len(m)))}
	for _, h := range m.path(i, 0, len(m)) {
		p.AuditPath = append(p.AuditPath, hex.EncodeToString(h))
	}
	return p
}

func TestTimeline_Integrity(t *testing.T) {
	t.Parallel()
	// The first seven events are sealed in a log of nine leaves (two belong to other events);
	// the next two are not sealed yet; the last one's proof was tampered with.
	var (
		ids    []string
		proofs = map[string]*proof{}
		cp     checkpoint
	)
	integrity := map[string]http.Handler{
		"POST /api/v1/audit/integrity/proofs": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				EventIDs []string `json:"event_ids"`
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.EventIDs) == 0 || len(req.EventIDs) > 1000 {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			out := map[string]*proof{}
			for _, id := range req.EventIDs {
				out[id] = proofs[id]
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"checkpoint": cp, "proofs": out})
		}),
		"GET /api/v1/audit/events/{event_id}/proof": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := proofs[r.PathValue("event_id")]
			if p == nil {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"type":"https://auditstore.dev/problems/not-sealed","title":"Not Found","status":404,"detail":"stored, not sealed yet"}`)
				return
			}
			withCP := *p
			withCP.Checkpoint = &cp
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(withCP)
		}),
	}
	srv := serve(t, integrity)
	corr := "rr-sealed-" + uuid.NewString()[:8]
	events := seed(t, srv.store, corr, time.Now().UTC().Add(-time.Hour), remediation)
	ids = eventIDs(events)
	var log merkle
	leaf := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	log = append(log, leaf("earlier event"))
	for _, id := range ids[:7] {
		log = append(log, leaf(id))
	}
	log = append(log, leaf("later event"))
	for i, id := range ids[:7] {
		p := log.proof(id, i+1)
		proofs[id] = &p
	}
	tampered := log.proof(ids[9], 8) // the proof of another leaf, passed off as this event's
	tampered.EventHash = hex.EncodeToString(leaf(ids[9]))
	proofs[ids[9]] = &tampered
	cp = checkpoint{TreeSize: len(log), RootHash: hex.EncodeToString(log.hash(0, len(log))), Timestamp: "2026-11-25T10:00:00Z", Signature: "c2ln", KeyID: "test-key"}

	tab := chromium.New(t)
	open(t, tab, srv.URL+"/ui/?correlation_id="+corr)
	waitFor(t, tab, `document.body.dataset.integrity === 'done'`)
	require.Equal(t, "Integrity: 7 sealed and verified · 2 not yet sealed · 1 whose proof does NOT verify",
		eval[string](t, tab, `document.getElementById('integrity-summary').textContent`))
	column := eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll('#rows .row')].map(r => [r.dataset.eventId, r.querySelector('.integrity').textContent]))`)
	for i, id := range ids {
		switch {
		case i < 7:
			require.Equal(t, fmt.Sprintf("sealed (leaf %d, checkpoint 2026-11-25T10:00:00Z), inclusion verified", i+1), column[id])
		case i < 9:
			require.Equal(t, "not yet sealed", column[id])
		default:
			require.Contains(t, column[id], "sealed (leaf 8, checkpoint 2026-11-25T10:00:00Z) but the proof does NOT verify")
		}
	}

	detail := func(i int) string {
		click(t, tab, fmt.Sprintf(`#rows .row[data-event-id="%s"]`, ids[i]))
		waitFor(t, tab, fmt.Sprintf(`document.querySelector('#detail-fields code')?.textContent === %q && !document.getElementById('detail-integrity').textContent.includes('checking')`, ids[i]))
		return eval[string](t, tab, `document.getElementById('detail-integrity').textContent`)
	}
	require.Equal(t, "integrity: sealed (leaf 3, checkpoint 2026-11-25T10:00:00Z), inclusion verified", detail(2))
	require.Contains(t, eval[string](t, tab, `document.querySelector('#detail dl.proof').textContent`), "test-key")
	require.Equal(t, "integrity: not yet sealed", detail(8))
	require.Contains(t, detail(9), "does NOT verify")
	require.Empty(t, tab.Problems())
}

func TestSearch_FiltersAndPaging(t *testing.T) {
	t.Parallel()
	srv := serve(t, nil)
	start := time.Now().UTC().Add(-2 * time.Hour)
	// 15 remediations of 10 events: 15 failures among 150 events, 120 of them by the four
	// services other than the gateway.
	for i := range 15 {
		seed(t, srv.store, fmt.Sprintf("rr-search-%02d", i), start.Add(time.Duration(i)*time.Minute), remediation)
	}
	tab := chromium.New(t)
	open(t, tab, srv.URL+"/ui/")
	waitFor(t, tab, `document.body.dataset.state === 'idle'`)

	fill := func(values map[string]string) {
		t.Helper()
		in, err := json.Marshal(values)
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(tab.Ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
			const f = document.getElementById('search'); f.reset();
			for (const [k, v] of Object.entries(%s)) { (f.elements.namedItem(k) || document.getElementById(k)).value = v; }
			f.requestSubmit(); })()`, in))))
	}

	// Filters from the form: the failures, newest first, in one page.
	fill(map[string]string{"event_outcome": "failure", "since": "1d"})
	waitFor(t, tab, `document.body.dataset.state === 'ready'`)
	require.Equal(t, "15", eval[string](t, tab, `document.body.dataset.count`))
	require.Equal(t, "?since=1d&event_outcome=failure", eval[string](t, tab, `location.search`), "the address carries the search")
	times := eval[[]string](t, tab, `[...document.querySelectorAll('#rows .row .time')].map(td => td.textContent)`)
	require.True(t, slices.IsSortedFunc(times, func(a, b string) int { return strings.Compare(b, a) }), "a search without a correlation is newest first: %v", times)
	require.True(t, eval[bool](t, tab, `document.getElementById('more').hidden`))

	// More than a page: Load more follows the cursor.
	fill(map[string]string{"actor_id": "workflowexecution", "limit": "100"})
	waitFor(t, tab, `document.body.dataset.state === 'ready'`)
	require.Equal(t, "45", eval[string](t, tab, `document.body.dataset.count`))
	fill(map[string]string{"event_type": "orchestrator.*", "limit": "100", "order": "asc"})
	waitFor(t, tab, `document.body.dataset.state === 'ready'`)
	require.Equal(t, "45", eval[string](t, tab, `document.body.dataset.count`))
	fill(map[string]string{"data": `{"status":"success"}`, "limit": "100"})
	waitFor(t, tab, `document.body.dataset.state === 'ready'`)
	require.Equal(t, "100", eval[string](t, tab, `document.body.dataset.count`))
	require.False(t, eval[bool](t, tab, `document.getElementById('more').hidden`))
	click(t, tab, `#more`)
	waitFor(t, tab, `document.body.dataset.count === '120'`)
	require.True(t, eval[bool](t, tab, `document.getElementById('more').hidden`))
	ids := eval[[]string](t, tab, `[...document.querySelectorAll('#rows .row')].map(r => r.dataset.eventId)`)
	require.Len(t, ids, 120)
	seen := map[string]bool{}
	for _, id := range ids {
		require.False(t, seen[id], "no event twice across pages")
		seen[id] = true
	}

	// From a row to its remediation's timeline.
	click(t, tab, fmt.Sprintf(`#rows .row[data-event-id="%s"]`, ids[0]))
	waitFor(t, tab, `[...document.querySelectorAll('#detail button')].some(b => b.textContent === 'open timeline')`)
	require.NoError(t, chromedp.Do(tab.Ctx, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#detail button')].find(b => b.textContent === 'open timeline').click()`)))
	waitFor(t, tab, `document.body.dataset.state === 'ready' && location.search.startsWith('?correlation_id=')`)
	require.Equal(t, "10", eval[string](t, tab, `document.body.dataset.count`))
	require.Equal(t, remediationLanes, eval[[]string](t, tab, `[...document.querySelectorAll('.lane-label .lane-name')].map(n => n.textContent)`))

	// Back returns to the search.
	require.NoError(t, chromedp.Do(tab.Ctx, chromedp.NavigateBack()))
	waitFor(t, tab, `document.body.dataset.state === 'ready' && location.search.startsWith('?data=')`)
	require.Equal(t, `{"status":"success"}`, eval[string](t, tab, `document.querySelector('input[name=data]').value`))

	// A bad value is named, as the API names it.
	fill(map[string]string{"since": "last tuesday"})
	waitFor(t, tab, `document.body.dataset.state === 'error'`)
	require.Contains(t, eval[string](t, tab, `document.getElementById('status').textContent`), `since "last tuesday" is not an RFC 3339 time`)
	require.Empty(t, tab.Problems())
}

// TestTimeline_IntegrityLive runs the page against the real integrity API: events sealed by
// the sealer are shown sealed, their proofs verified in the browser; later ones not yet.
func TestTimeline_IntegrityLive(t *testing.T) {
	t.Parallel()
	st := store.New(pgtest.NewPool(t))
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	srv := serveStore(t, st, nil, query.WithIntegrity(st, []integrity.PublicKey{pub}))
	corr := "rr-live-" + uuid.NewString()[:8]
	start := time.Now().UTC().Add(-time.Hour)
	// Sealed in two checkpoints (Limit 4), so proofs come from different tree sizes' paths.
	sealed := seed(t, st, corr, start, remediation[:7])
	sealer := &ledger.Sealer{Store: st, Signer: integrity.NewSigner(priv), Limit: 4}
	rep, err := sealer.SealAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 7, rep.Sealed)
	later := make([]step, 3)
	copy(later, remediation[7:])
	for i := range later {
		later[i].parent = -1 // their parents were seeded by the first call
	}
	unsealed := seed(t, st, corr, start, later)

	tab := chromium.New(t)
	open(t, tab, srv.URL+"/ui/?correlation_id="+corr)
	waitFor(t, tab, `document.body.dataset.integrity === 'done'`)
	require.Equal(t, "Integrity: 7 sealed and verified · 3 not yet sealed",
		eval[string](t, tab, `document.getElementById('integrity-summary').textContent`))
	column := eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll('#rows .row')].map(r => [r.dataset.eventId, r.querySelector('.integrity').textContent]))`)
	for _, e := range sealed {
		require.Regexp(t, `^sealed \(leaf \d+, checkpoint \d{4}-\d\d-\d\dT[^)]+\), inclusion verified$`, column[e.EventID.String()])
	}
	for _, e := range unsealed {
		require.Equal(t, "not yet sealed", column[e.EventID.String()])
	}
	click(t, tab, fmt.Sprintf(`#rows .row[data-event-id="%s"]`, sealed[3].EventID))
	waitFor(t, tab, fmt.Sprintf(`document.querySelector('#detail-fields code')?.textContent === %q && !document.getElementById('detail-integrity').textContent.includes('checking')`, sealed[3].EventID))
	require.Contains(t, eval[string](t, tab, `document.getElementById('detail-integrity').textContent`), "inclusion verified")
	require.Contains(t, eval[string](t, tab, `document.querySelector('#detail dl.proof').textContent`), integrity.KeyID(pub))
	click(t, tab, fmt.Sprintf(`#rows .row[data-event-id="%s"]`, unsealed[0].EventID))
	waitFor(t, tab, fmt.Sprintf(`document.querySelector('#detail-fields code')?.textContent === %q && !document.getElementById('detail-integrity').textContent.includes('checking')`, unsealed[0].EventID))
	require.Equal(t, "integrity: not yet sealed", eval[string](t, tab, `document.getElementById('detail-integrity').textContent`))
	require.Empty(t, tab.Problems())
}

// logic runs body, an async function body over the page's logic module T and input (given as
// JSON), in the browser and decodes what it returns.
func logic[R any](t *testing.T, tab *chromium.Tab, body string, input any) R {
	t.Helper()
	in, err := json.Marshal(input)
	require.NoError(t, err)
	return eval[R](t, tab, fmt.Sprintf(`import(new URL('timeline.js', location.href).href).then(async (T) => { const input = %s; %s })`, in, body))
}

func TestClientLogic(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	ui.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tab := chromium.New(t)
	open(t, tab, srv.URL+"/ui/")
	waitFor(t, tab, `document.body.dataset.state === 'idle'`)

	t.Run("formatDuration", func(t *testing.T) {
		cases := map[string]float64{
			"0 ms": 0, "500 µs": 500, "1 ms": 1000, "1.5 ms": 1500, "12 ms": 12e3, "999 ms": 999e3, "1 s": 1e6,
			"1.5 s": 1.5e6, "12.3 s": 12.3e6, "1 min": 60e6, "3 min 12 s": 192e6, "11 min 50 s": 710e6,
			"1 h": 3600e6, "2 h 5 min": 7500e6, "3 d 4 h": 3*86400e6 + 4*3600e6, "-1.5 s": -1.5e6,
		}
		var in []float64
		var want []string
		for w, us := range cases {
			in, want = append(in, us), append(want, w)
		}
		require.Equal(t, want, logic[[]string](t, tab, `return input.map(T.formatDuration);`, in))
	})

	t.Run("toMicros", func(t *testing.T) {
		got := logic[[]*float64](t, tab, `return input.map(s => { const v = T.toMicros(s); return Number.isNaN(v) ? null : v; });`, []string{
			"2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456Z", "2026-11-25T10:00:00.1234567Z",
			"2026-11-25T11:00:00.5+01:00", "2026-11-25", "yesterday", "",
		})
		base := float64(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMicro())
		want := []*float64{&base, ptr(base + 123456), ptr(base + 123456), ptr(base + 500000), nil, nil, nil}
		require.Equal(t, want, got, "microseconds kept (beyond them truncated); offsets honoured; anything else NaN")
	})

	t.Run("order and lanes", func(t *testing.T) {
		evs := []map[string]any{
			{"event_id": "b", "event_timestamp": "2026-11-25T10:00:00.000002Z", "actor_type": "service", "actor_id": "workflow"},
			{"event_id": "a", "event_timestamp": "2026-11-25T10:00:00.000002Z", "actor_type": "service", "actor_id": "gateway"},
			{"event_id": "c", "event_timestamp": "2026-11-25T10:00:00.000001Z", "actor_type": "user", "actor_id": "alice"},
			{"event_id": "d", "event_timestamp": "2026-11-25T10:00:00Z", "actor_type": "service", "actor_id": "workflow"},
			{"event_id": "e", "event_timestamp": "2026-11-25T09:59:59.9999999Z", "actor_type": "service", "actor_id": "alice"},
		}
		type lane struct {
			Label string `json:"label"`
			Count int    `json:"count"`
			Index int    `json:"index"`
		}
		type result struct {
			Order []string `json:"order"`
			Lanes []lane   `json:"lanes"`
		}
		got := logic[result](t, tab, `const s = [...input].sort(T.compareEvents);
			return { order: s.map(e => e.event_id), lanes: T.lanes(s).map(l => ({ label: l.label, count: l.count, index: l.index })) };`, evs)
		require.Equal(t, []string{"e", "d", "c", "a", "b"}, got.Order, "by time to the microsecond, then by event_id")
		require.Equal(t, []lane{{"alice", 1, 0}, {"workflow", 2, 1}, {"alice (user)", 1, 2}, {"gateway", 1, 3}}, got.Lanes,
			"one lane per actor, in order of first appearance; an actor that is not a service says what it is")
	})

	t.Run("scale", func(t *testing.T) {
		type segment struct {
			X0         float64 `json:"x0"`
			X1         float64 `json:"x1"`
			Compressed bool    `json:"compressed"`
		}
		type scale struct {
			Xs       []float64 `json:"xs"`
			Segments []segment `json:"segments"`
			Gaps     []segment `json:"gaps"`
			Ticks    []struct {
				X     float64 `json:"x"`
				Label string  `json:"label"`
			} `json:"ticks"`
		}
		run := func(spans [][2]float64, width float64, at []float64) scale {
			return logic[scale](t, tab, `const s = T.buildScale(input.spans.map(([start, end]) => ({start, end})), input.width);
				return { xs: input.at.map(s.x), segments: s.segments, gaps: s.gaps, ticks: T.ticks(s) };`,
				map[string]any{"spans": spans, "width": width, "at": at})
		}
		s := 1e6 // a second in µs

		one := run([][2]float64{{5 * s, 5 * s}}, 1000, []float64{5 * s})
		require.Equal(t, []float64{500}, one.Xs, "a single instant sits in the middle")

		lin := run([][2]float64{{0, 0}, {4 * s, 4 * s}, {10 * s, 10 * s}}, 1000, []float64{0, 4 * s, 10 * s})
		require.Equal(t, []float64{0, 400, 1000}, lin.Xs, "steps at comparable distances are linear in time")
		require.Len(t, lin.Segments, 1)
		require.Len(t, lin.Ticks, 11, "a tick each second: the roundest step at least 90 px wide")
		for i, tk := range lin.Ticks {
			want := fmt.Sprintf("+%d s", i)
			if i == 0 {
				want = "+0 ms"
			}
			require.Equal(t, want, tk.Label, "ticks at round offsets")
			require.InDelta(t, float64(100*i), tk.X, 1e-6)
		}

		// Three steps a second apart, then two hours of nothing, then two more: the wait is
		// drawn as a 48 px break and the steps keep the width.
		wait := run([][2]float64{{0, 0}, {1 * s, 1 * s}, {2 * s, 2 * s}, {7202 * s, 7202 * s}, {7203 * s, 7203 * s}},
			1000, []float64{0, 1 * s, 2 * s, 7202 * s, 7203 * s, 3600 * s})
		require.Len(t, wait.Segments, 3)
		require.True(t, wait.Segments[1].Compressed)
		require.InDelta(t, 48, wait.Segments[1].X1-wait.Segments[1].X0, 1e-9)
		require.InDelta(t, 0, wait.Xs[0], 1e-9)
		require.InDelta(t, 1000, wait.Xs[4], 1e-9)
		require.InDelta(t, (1000-48)/3.0, wait.Xs[1], 1e-9, "the remaining 3 s share the rest of the width")
		require.Greater(t, wait.Xs[5], wait.Xs[2], "time inside the break is inside the break")
		require.Less(t, wait.Xs[5], wait.Xs[3])
		require.Len(t, wait.Gaps, 4)
		var compressed int
		for _, g := range wait.Gaps {
			if g.Compressed {
				compressed++
			}
		}
		require.Equal(t, 1, compressed, "only the long wait is shortened")

		// Durations cover time: a 5 s step ending at 10 s leaves no gap from 5 s to 10 s.
		dur := run([][2]float64{{0, 0}, {5 * s, 10 * s}, {10 * s, 10 * s}}, 100, []float64{5 * s})
		require.Len(t, dur.Gaps, 1)
		require.InDelta(t, 50, dur.Xs[0], 1e-9)

		// Two instants far apart: nothing else to squeeze, so nothing is shortened.
		two := run([][2]float64{{0, 0}, {86400 * s, 86400 * s}}, 800, []float64{0, 86400 * s})
		require.Equal(t, []float64{0, 800}, two.Xs)
		require.False(t, two.Gaps[0].Compressed)

		// Monotonic everywhere, whatever the data.
		mono := logic[bool](t, tab, `let seed = 7; const rnd = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
			for (let k = 0; k < 50; k++) {
				const spans = []; let t = 0;
				for (let i = 0; i < 40; i++) { t += rnd() < 0.1 ? rnd() * 1e10 : rnd() * 1e6; const d = rnd() < 0.3 ? rnd() * 5e6 : 0; spans.push({start: t - d, end: t}); }
				const s = T.buildScale(spans, 900);
				let last = -Infinity;
				for (let q = s.start; q <= s.end; q += (s.end - s.start) / 997) { const x = s.x(q); if (x < last - 1e-9 || x < -1e-9 || x > 900 + 1e-9) return false; last = x; }
			}
			return true;`, nil)
		require.True(t, mono)
	})

	t.Run("searchParams", func(t *testing.T) {
		got := logic[string](t, tab, `return T.searchParams(input).toString();`, map[string]string{
			"correlation_id": " rr-1 ", "event_outcome": "failure", "actor_id": "", "data": `{"a":1}`, "limit": "5", "token": "secret",
		})
		require.Equal(t, "correlation_id=rr-1&event_outcome=failure&data=%7B%22a%22%3A1%7D", got, "known filters only, trimmed, empty ones left out")
	})

	t.Run("exact JSON", func(t *testing.T) {
		got := logic[string](t, tab, `return T.pretty(T.parseExact(input));`, `{"big":12345678901234567890,"small":42,"float":0.1,"exp":1e400,"nested":{"n":[9007199254740993,-1.50]}}`)
		require.Equal(t, "{\n  \"big\": 12345678901234567890,\n  \"small\": 42,\n  \"float\": 0.1,\n  \"exp\": 1e400,\n  \"nested\": {\n    \"n\": [\n      9007199254740993,\n      -1.50\n    ]\n  }\n}", got,
			"numbers are shown as stored, not as a double rounds them")
	})

	t.Run("hexToBytes", func(t *testing.T) {
		got := logic[[]*[]int](t, tab, `return input.map(h => { const b = T.hexToBytes(h); return b ? [...b] : null; });`, []any{"00ff10", "", "0", "zz", "ABcd", 42})
		require.Equal(t, []*[]int{{0, 255, 16}, {}, nil, nil, {171, 205}, nil}, got)
	})

	t.Run("verifyInclusion", func(t *testing.T) {
		type verdict struct {
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
		}
		var good []proof
		for n := 1; n <= 17; n++ {
			var m merkle
			for i := range n {
				m = append(m, []byte(fmt.Sprintf("event %d of %d", i, n)))
			}
			for i := range n {
				good = append(good, m.proof(fmt.Sprint(i), i))
			}
		}
		got := logic[[]verdict](t, tab, `return Promise.all(input.map(p => T.verifyInclusion(p, {tree_size: p.tree_size, root_hash: p.root_hash})));`, good)
		require.Len(t, got, len(good))
		for i, v := range got {
			require.True(t, v.OK, "proof %d (leaf %d of %d): %s", i, good[i].LeafIndex, good[i].TreeSize, v.Reason)
		}

		var m merkle
		for i := range 11 {
			m = append(m, []byte(fmt.Sprint("leaf ", i)))
		}
		base := m.proof("x", 6)
		other := m.proof("y", 7)
		bad := map[string]proof{}
		flip := base
		flip.AuditPath = append([]string(nil), base.AuditPath...)
		flip.AuditPath[1] = strings.Replace(flip.AuditPath[1], flip.AuditPath[1][:2], fmt.Sprintf("%02x", 0xff^mustHexByte(t, flip.AuditPath[1][:2])), 1)
		bad["a changed path hash"] = flip
		wrongLeaf := base
		wrongLeaf.EventHash = other.EventHash
		bad["another leaf"] = wrongLeaf
		wrongIndex := base
		wrongIndex.LeafIndex = 7
		bad["another index"] = wrongIndex
		short := base
		short.AuditPath = base.AuditPath[:len(base.AuditPath)-1]
		bad["a path too short"] = short
		long := base
		long.AuditPath = append(append([]string(nil), base.AuditPath...), base.AuditPath[0])
		bad["a path too long"] = long
		outside := base
		outside.LeafIndex = 11
		bad["a leaf outside the tree"] = outside
		notHex := base
		notHex.RootHash = "zz"
		bad["a root that is not hex"] = notHex
		var names []string
		var proofs []proof
		for n, p := range bad {
			names, proofs = append(names, n), append(proofs, p)
		}
		got = logic[[]verdict](t, tab, `return Promise.all(input.map(p => T.verifyInclusion(p, null)));`, proofs)
		for i, v := range got {
			require.False(t, v.OK, "%s must not verify", names[i])
			require.NotEmpty(t, v.Reason, names[i])
		}

		// A proof must be for the checkpoint shown with it.
		got = logic[[]verdict](t, tab, `return Promise.all([
			T.verifyInclusion(input, {tree_size: input.tree_size + 1, root_hash: input.root_hash}),
			T.verifyInclusion(input, {tree_size: input.tree_size, root_hash: '00'.repeat(32)}),
			T.verifyInclusion(input, {tree_size: input.tree_size, root_hash: input.root_hash}),
		]);`, base)
		require.Equal(t, []bool{false, false, true}, []bool{got[0].OK, got[1].OK, got[2].OK})
		require.Contains(t, got[0].Reason, "tree size")
		require.Contains(t, got[1].Reason, "checkpoint")
	})
	require.Empty(t, tab.Problems())
}

func ptr[T any](v T) *T { return &v }

func mustHexByte(t *testing.T, s string) int {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return int(b[0])
}

// BenchmarkTimelineLoad measures how long the page takes to show a 500-event timeline: from
// the navigation to the timeline drawn (ms-to-render, the browser's own clock), of which
// ms-api is the query's request.
func BenchmarkTimelineLoad(b *testing.B) {
	srv := serve(b, nil)
	services := []string{"gateway", "remediationorchestrator", "aianalysis", "workflowexecution", "kubernetesexecution", "notification"}
	outcomes := []string{"success", "success", "success", "failure", "pending", "success"}
	steps := make([]step, 500)
	at := time.Duration(0)
	for i := range steps {
		at += time.Duration(50+(i*7919)%900) * time.Millisecond
		if i%97 == 0 {
			at += 4 * time.Minute // waits for approvals and retries
		}
		steps[i] = step{actor: services[(i*5+i/7)%len(services)], typ: "bench.step.completed", outcome: outcomes[i%len(outcomes)], at: at, parent: i - 1}
		if i%3 == 0 {
			steps[i].durationMS = int64(200 + (i*31)%3000)
		}
	}
	corr := "rr-bench-" + uuid.NewString()[:8]
	seed(b, srv.store, corr, time.Now().UTC().Add(-2*time.Hour), steps)
	tab := chromium.New(b)
	url := srv.URL + "/ui/?correlation_id=" + corr
	open(b, tab, url) // warm: the browser's first start, the server's first plan
	waitFor(b, tab, `document.body.dataset.state === 'ready'`)
	require.Equal(b, "500", eval[string](b, tab, `document.body.dataset.count`))

	var render, api float64
	b.ResetTimer()
	for range b.N {
		open(b, tab, url)
		waitFor(b, tab, `document.body.dataset.state === 'ready'`)
		render += eval[float64](b, tab, `performance.getEntriesByName('auditstore:rendered')[0].startTime`)
		api += eval[float64](b, tab, `(() => { const r = performance.getEntriesByType('resource').find(e => e.name.includes('/api/v1/audit/events?')); return r.responseEnd - r.startTime; })()`)
	}
	b.StopTimer()
	b.ReportMetric(render/float64(b.N), "ms-to-render")
	b.ReportMetric(api/float64(b.N), "ms-api")
	b.Logf("500-event timeline: drawn %.0f ms after navigation on average (query request %.0f ms), %d loads", render/float64(b.N), api/float64(b.N), b.N)
}
