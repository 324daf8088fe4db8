package kubernaut_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/kelseyhightower/envconfig"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is the write and query functions as the standalone process wires them (reads are
// recorded as auditstore's own events), with their default configuration, over a database of
// the test's own; principals p0, p1, ... may write and read with token t0, t1, ...
type fixture struct {
	url   string
	store *store.Store
}

func newFixture(t testing.TB, principals int) *fixture { return newFixtureWith(t, principals, nil) }

// newFixtureWith is newFixture whose write function limits writes through wrap(the default
// rate limiter), when wrap is set.
func newFixtureWith(t testing.TB, principals int, wrap func(write.Limiter) write.Limiter) *fixture {
	t.Helper()
	var cfg struct {
		Auth  auth.Config
		Write write.Config
		Query query.Config
	}
	require.NoError(t, envconfig.Process("", &cfg), "the functions' defaults")
	tokens := "tokens:\n"
	for i := range principals {
		tokens += fmt.Sprintf("  - {principal: p%d, roles: [writer, reader], token: t%d}\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(path, []byte(tokens), 0o600))
	cfg.Auth.Mode, cfg.Auth.TokensFile = "static", path
	cfg.Query.CursorSecret = "test"

	s := store.New(pgtest.NewPool(t))
	srv, err := function.NewServer(function.Config{Auth: cfg.Auth})
	require.NoError(t, err)
	wh, err := write.Open(context.Background(), srv, s, cfg.Write)
	if wrap != nil {
		wh, err = write.New(s, cfg.Write, nil, write.WithAuthorizer(srv.Auth.Authorizer, nil), write.WithRateLimiter(wrap(srv.Auth.Limiter)))
	}
	require.NoError(t, err)
	qh, err := query.Open(srv, s, s, nil, cfg.Query)
	require.NoError(t, err)
	hs := httptest.NewServer(function.Mux(func(context.Context) error { return nil }, srv.Registry, wh.Routes, qh.Routes))
	t.Cleanup(func() { hs.Close(); wh.Close(); qh.Close() })
	return &fixture{url: hs.URL, store: s}
}

func (f *fixture) client(principal int) *kubernaut.Client {
	return &kubernaut.Client{URL: f.url, Token: fmt.Sprintf("t%d", principal), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// gatewayEvent is an event as kubernaut's gateway sends it: its own payload as event_data (no
// auditstore envelope), the optional members it has no value for left out.
func gatewayEvent(correlation string, i int) kubernaut.Event {
	return kubernaut.Event{
		Version: "1.0", EventType: "gateway.signal.received", EventTimestamp: time.Now().UTC().Add(-time.Duration(i) * time.Millisecond),
		EventCategory: "gateway", EventAction: "received", EventOutcome: "success", ActorType: "service", ActorID: "gateway-service",
		CorrelationID: correlation,
		EventData:     json.RawMessage(fmt.Sprintf(`{"event_type":"gateway.signal.received","signal_type":"prometheus","alert_name":"KubePodCrashLooping","fingerprint":"fp-%d"}`, i)),
	}
}

// TestQueryAnswersDecode: every read kubernaut's client makes decodes strictly, although the
// events leave optional members out and auditstore's own events (recorded reads, maintenance,
// a legal hold on the same correlation) are in the store.
func TestQueryAnswersDecode(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	c := f.client(0)
	ctx := context.Background()

	var events []kubernaut.Event
	for i := range 30 {
		events = append(events, gatewayEvent(fmt.Sprintf("rr-%d", i%3), i))
	}
	full := gatewayEvent("rr-0", 99)
	ns, sev, dur, parent := "production", "critical", int64(12), uuid.NewString()
	full.ActorIP, full.ResourceType, full.ResourceID = "10.0.0.7", "Signal", "fp-99"
	full.Namespace, full.Severity, full.DurationMS, full.ParentEventID = &ns, &sev, &dur, &parent
	events = append(events, full)
	ids, err := c.StoreBatch(ctx, events)
	require.NoError(t, err)

	// auditstore's own events, one on a kubernaut correlation.
	own := func(typ, correlation string) audit.Event {
		return audittest.Event(t, &audittest.EventOpts{EventType: typ, CorrelationID: correlation, ActorID: "auditstore-maintenance",
			EventData: json.RawMessage(`{"version":"1.0","service":"auditstore","operation":"x","status":"success"}`)})
	}
	_, _, err = f.store.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{
		own("auditstore.maintenance.run", "run-1"), own("auditstore.legalhold.placed", "rr-0"), own("auditstore.query.executed", "q-1")}})
	require.NoError(t, err)

	for _, params := range []url.Values{
		{"limit": {"50"}},
		{"limit": {"1000"}, "since": {"24h"}},
		{"correlation_id": {"rr-0"}, "limit": {"50"}},
		{"correlation_id": {"rr-0"}, "limit": {"50"}, "order": {"desc"}},
		{"event_category": {"gateway"}, "event_outcome": {"success"}, "limit": {"10"}, "offset": {"20"}},
		{"event_type": {"gateway.signal.received"}, "severity": {"critical"}, "limit": {"50"}},
		{"detail_key": {"fingerprint"}, "detail_value": {"fp-7"}, "limit": {"50"}},
		{"limit": {"50"}, "offset": {"5000"}},
	} {
		// Twice: the first query's own record (auditstore.query.executed) is stored by then.
		for range 2 {
			page, err := c.Query(ctx, params)
			require.NoError(t, err, "%v", params)
			for _, e := range page.Data {
				require.NotEqual(t, audit.OwnCategory, e.EventCategory)
			}
		}
	}
	page, err := c.Query(ctx, url.Values{"correlation_id": {"rr-0"}, "limit": {"50"}})
	require.NoError(t, err)
	require.Len(t, page.Data, 11, "the timeline without the legal hold's event")
	page, err = c.Query(ctx, url.Values{"detail_key": {"fingerprint"}, "detail_value": {"fp-7"}, "limit": {"50"}})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.Equal(t, ids[7], page.Data[0].EventID)

	got, err := c.Get(ctx, ids[len(ids)-1])
	require.NoError(t, err)
	require.Equal(t, "10.0.0.7", got.ActorIP)
	require.Equal(t, "critical", *got.Severity)
	require.Equal(t, parent, *got.ParentEventID)
	bare, err := c.Get(ctx, ids[0])
	require.NoError(t, err)
	require.NotContains(t, bare.Raw, "actor_ip", "left out, not null")
	require.NotContains(t, bare.Raw, "resource_type")

	// The decoder is as strict as theirs: asked for, auditstore's own events fail it.
	_, err = c.Query(ctx, url.Values{"event_category": {audit.OwnCategory}})
	require.ErrorContains(t, err, `decode field "data[0].event_category": invalid value`)
	withNull, err := json.Marshal(map[string]any{"event_id": ids[0], "version": "1.0", "event_type": "gateway.signal.received",
		"event_timestamp": time.Now(), "event_category": "gateway", "event_action": "received", "event_outcome": "success",
		"correlation_id": "rr-0", "event_data": map[string]any{}, "actor_ip": nil})
	require.NoError(t, err)
	_, err = kubernaut.DecodeEvent(withNull)
	require.ErrorContains(t, err, `decode field "actor_ip": unexpected byte 110 'n'`)
	_, err = kubernaut.DecodeEvent([]byte(strings.Replace(string(withNull), `"actor_ip":null`, `"event_date":null`, 1)))
	require.NoError(t, err, "other optional members may be null")
}

// TestSustainedRateRefused: the hold that keeps kubernaut's buffered store's burst whole
// (TestOperations) does not lift the limit: 3,000 events at once from one principal, sent in
// parallel at the default rate limit (500/s, burst 1,000, held up to 2 s), cannot all be
// admitted within the bound, and what is refused is a 429 kubernaut's client drops.
func TestSustainedRateRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	events := make([]kubernaut.Event, 3000)
	for i := range events {
		events[i] = gatewayEvent(fmt.Sprintf("rr-sustained-%d", i%50), i)
	}
	refused := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := f.client(0).StoreBatch(context.Background(), events[i*1000:(i+1)*1000])
			refused <- err
		}()
	}
	var tooMany int
	for range 3 {
		var se *kubernaut.StatusError
		if err := <-refused; err != nil {
			require.True(t, errors.As(err, &se), "%v", err)
			require.Equal(t, http.StatusTooManyRequests, se.Status)
			require.True(t, se.Permanent(), "kubernaut's client drops a 429")
			tooMany++
		}
	}
	require.Positive(t, tooMany)
}

// TestLenientValuesRoundTrip: values kubernaut's services really send are stored (one refused
// event would lose its whole batch) and read back as the contract says.
func TestLenientValuesRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	c := f.client(0)
	ctx := context.Background()
	i64 := func(v int64) *int64 { return &v }
	str := func(v string) *string { return &v }
	var events []kubernaut.Event
	add := func(mutate func(e *kubernaut.Event)) {
		e := gatewayEvent("rr-lenient", len(events))
		mutate(&e)
		events = append(events, e)
	}
	add(func(e *kubernaut.Event) { e.ActorIP = "10.1.2.3:54321" })
	add(func(e *kubernaut.Event) { e.ActorIP = "[::1]:5" })
	add(func(e *kubernaut.Event) { e.RetentionDays = i64(30) })
	add(func(e *kubernaut.Event) { e.RetentionDays = i64(2555) })
	add(func(e *kubernaut.Event) { e.Severity = str("HIGH") })
	add(func(e *kubernaut.Event) { e.EventTimestamp = time.Now().UTC().AddDate(0, -14, 0) }) // replayed after an outage
	ids, err := c.StoreBatch(ctx, events)
	require.NoError(t, err)

	read := func(i int) kubernaut.AuditEvent {
		e, err := c.Get(ctx, ids[i])
		require.NoError(t, err)
		return e
	}
	retention := func(e kubernaut.AuditEvent) int {
		var n int
		require.NoError(t, json.Unmarshal(e.Raw["retention_days"], &n))
		return n
	}
	require.Equal(t, "10.1.2.3", read(0).ActorIP)
	require.Equal(t, "::1", read(1).ActorIP)
	require.Equal(t, 90, retention(read(2)), "the shortest class, never shorter")
	require.Equal(t, 2557, retention(read(3)))
	require.Equal(t, "high", *read(4).Severity)
	require.True(t, read(5).EventTimestamp.Equal(events[5].EventTimestamp.Truncate(time.Microsecond)))

	page, err := c.Query(ctx, url.Values{"correlation_id": {"rr-lenient"}, "severity": {"HIGH"}})
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
}

// TestFieldErrors: what still cannot be stored is a 400 whose field_errors name each value,
// by the event's index in the batch; kubernaut's client takes it as permanent.
func TestFieldErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	events := []kubernaut.Event{gatewayEvent("rr-bad", 0), gatewayEvent("rr-bad", 1), gatewayEvent("rr-bad", 2)}
	events[1].EventType, events[1].EventOutcome = "Gateway Signal", "ok"
	events[2].RetentionDays = new(int64)
	*events[2].RetentionDays = 9999
	events[2].ActorIP = "not-an-ip:80"
	_, err := f.client(0).StoreBatch(context.Background(), events)
	var se *kubernaut.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusBadRequest, se.Status)
	require.True(t, se.Permanent())
	require.NotNil(t, se.Problem)
	require.Equal(t, []string{"[1].event_outcome", "[1].event_type", "[2].actor_ip", "[2].retention_days"}, sortedKeys(se.Problem.FieldErrors))
	require.Contains(t, se.Problem.FieldErrors["[1].event_outcome"], `"ok" is not one of`)
	require.Contains(t, se.Problem.FieldErrors["[2].retention_days"], "9999")

	_, err = f.client(0).Query(context.Background(), url.Values{"detail_key": {"a.b"}, "detail_value": {"x"}, "offset": {"-1"}})
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, []string{"detail_key", "offset"}, sortedKeys(se.Problem.FieldErrors))
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
