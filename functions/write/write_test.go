package write_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	url   string
	pool  *pgxpool.Pool
	store *store.Store
}

func defaultConfig() write.Config {
	return write.Config{MaxClockSkew: 5 * time.Minute,
		RetentionClasses: "90,180,365,730,1095,1825,2557", Committers: 4, GroupMaxEvents: 1000, Timeout: 10 * time.Second,
		EventHash: true}
}

func setup(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	h, err := write.New(s, defaultConfig(), prometheus.NewRegistry())
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return &fixture{url: srv.URL, pool: pool, store: s}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
	return m
}

func (f *fixture) post(t *testing.T, path, contentType string, body []byte, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+path, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, b}
}

func (f *fixture) count(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events`).Scan(&n))
	return n
}

func eventJSON(t *testing.T, mutate func(m map[string]any)) []byte {
	t.Helper()
	in := audittest.Input(t, nil)
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	if mutate != nil {
		mutate(m)
	}
	b, err = json.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestWrite_JSONEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	body := eventJSON(t, func(m map[string]any) { delete(m, "event_timestamp") })

	r := f.post(t, "/api/v1/audit/events", "application/json", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	first := r.json(t)
	require.Equal(t, false, first["duplicate"])
	require.NotEmpty(t, first["message"])

	// A retry without event_timestamp (defaulted again) is a duplicate; the first timestamp stays.
	time.Sleep(2 * time.Millisecond)
	r = f.post(t, "/api/v1/audit/events", "application/json; charset=utf-8", body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	again := r.json(t)
	require.Equal(t, true, again["duplicate"])
	require.Equal(t, first["event_timestamp"], again["event_timestamp"])

	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	m["event_outcome"] = "failure"
	changed, _ := json.Marshal(m)
	r = f.post(t, "/api/v1/audit/events", "application/json", changed)
	require.Equal(t, http.StatusConflict, r.status)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	require.Equal(t, 1, f.count(t))

	// A W3C traceparent fills trace_id and span_id.
	r = f.post(t, "/api/v1/audit/events", "application/json", eventJSON(t, nil),
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	require.Equal(t, http.StatusCreated, r.status)
	e, err := f.store.GetEvent(context.Background(), uuid.MustParse(r.json(t)["event_id"].(string)))
	require.NoError(t, err)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", *e.TraceID)
	require.Equal(t, "00f067aa0ba902b7", *e.SpanID)
	require.Equal(t, "anonymous", e.SubmittedBy)
}

func TestWrite_JSONBatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a, b := eventJSON(t, nil), eventJSON(t, nil)
	batch := []byte("[" + string(a) + "," + string(b) + "," + string(a) + "]")

	r := f.post(t, "/api/v1/audit/events", "application/json", batch)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	got := r.json(t)
	require.EqualValues(t, 2, got["accepted"])
	require.EqualValues(t, 1, got["duplicates"])
	require.Len(t, got["event_ids"], 3)

	r = f.post(t, "/api/v1/audit/events/batch", "application/json", batch)
	require.Equal(t, http.StatusOK, r.status, "every event a duplicate: %s", r.body)
	require.EqualValues(t, 0, r.json(t)["accepted"])

	// One conflict fails the whole batch: the new event is not stored either.
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["event_outcome"] = "failure"
	conflicting, _ := json.Marshal(m)
	fresh := eventJSON(t, nil)
	r = f.post(t, "/api/v1/audit/events/batch", "application/json", []byte("["+string(fresh)+","+string(conflicting)+"]"))
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Equal(t, float64(1), r.json(t)["errors"].([]any)[0].(map[string]any)["index"])
	require.Equal(t, 2, f.count(t))

	// The same id twice with different content in one batch is a conflict too.
	r = f.post(t, "/api/v1/audit/events/batch", "application/json", []byte("["+string(fresh)+","+string(eventJSON(t, func(x map[string]any) {
		var fm map[string]any
		_ = json.Unmarshal(fresh, &fm)
		x["event_id"] = fm["event_id"]
	}))+"]"))
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Equal(t, 2, f.count(t))

	// Invalid events: every index and field named, nothing stored.
	bad := eventJSON(t, func(x map[string]any) { x["event_outcome"] = "ok"; x["colour"] = "red" })
	r = f.post(t, "/api/v1/audit/events/batch", "application/json", []byte("["+string(eventJSON(t, nil))+","+string(bad)+"]"))
	require.Equal(t, http.StatusBadRequest, r.status)
	errs := r.json(t)["errors"].([]any)
	require.Len(t, errs, 2, string(r.body))
	for _, e := range errs {
		require.Equal(t, float64(1), e.(map[string]any)["index"])
	}
	require.Equal(t, 2, f.count(t))
}

func TestWrite_HeaderForm(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := uuid.NewString()
	r := f.post(t, "/api/v1/audit/events", "application/json", []byte(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}`),
		"X-Event-Type", "gateway.signal.received", "X-Service", "gateway", "X-Correlation-ID", "rr-h",
		"X-Outcome", "success", "X-Resource-Type", "Signal", "X-Resource-ID", "fp-1", "X-Event-ID", id, "X-Severity", "high")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	e, err := f.store.GetEvent(context.Background(), uuid.MustParse(id))
	require.NoError(t, err)
	require.Equal(t, "service", e.ActorType)
	require.Equal(t, "gateway", e.ActorID)
	require.Equal(t, "fp-1", *e.ResourceID)
	require.Equal(t, "high", *e.Severity)

	r = f.post(t, "/api/v1/audit/events", "application/json", []byte(`{}`), "X-Event-Type", "gateway.x.y", "X-Outcome", "maybe")
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.body), `"X-Service"`)
	require.Contains(t, string(r.body), `"X-Correlation-ID"`)
	require.Contains(t, string(r.body), `"X-Outcome"`)
}

func ceEvent(id, source string) cloudevents.Event {
	ev := cloudevents.NewEvent()
	ev.SetID(id)
	ev.SetSource(source)
	ev.SetType("workflow.execution.completed")
	ev.SetSubject("wf-42")
	ev.SetTime(time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond))
	ev.SetExtension("correlationid", "rr-ce")
	ev.SetExtension("outcome", "failure")
	ev.SetExtension("severity", "high")
	ev.SetExtension("namespace", "prod")
	ev.SetExtension("resourcetype", "WorkflowExecution")
	_ = ev.SetData(cloudevents.ApplicationJSON, map[string]any{"version": "1.0", "service": "workflow", "operation": "execution.completed", "status": "failure"})
	return ev
}

func TestWrite_CloudEventsBySDKClient(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		path string
		enc  func(context.Context) context.Context
	}{
		{"binary", "/", cloudevents.WithEncodingBinary},
		{"structured", "/api/v1/audit/events", cloudevents.WithEncodingStructured},
	} {
		c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(f.url + tc.path))
		require.NoError(t, err)
		ev := ceEvent("delivery-"+tc.name, "/workflow/engine")
		result := c.Send(tc.enc(ctx), ev)
		require.True(t, cloudevents.IsACK(result), "%s: %v", tc.name, result)
		var httpResult *cehttp.Result
		require.True(t, cloudevents.ResultAs(result, &httpResult))
		require.Equal(t, http.StatusAccepted, httpResult.StatusCode, tc.name)

		// The broker redelivers: same source and id, a duplicate, still 202.
		result = c.Send(tc.enc(ctx), ev)
		require.True(t, cloudevents.IsACK(result), "%s redelivery: %v", tc.name, result)

		id := uuid.NewSHA1(uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), []byte("/workflow/engine delivery-"+tc.name))
		e, err := f.store.GetEvent(ctx, id)
		require.NoError(t, err, tc.name)
		require.Equal(t, "workflow.execution.completed", e.EventType)
		require.Equal(t, "failure", e.EventOutcome)
		require.Equal(t, "/workflow/engine", e.ActorID)
		require.Equal(t, "service", e.ActorType)
		require.Equal(t, "wf-42", *e.ResourceID)
		require.Equal(t, "WorkflowExecution", *e.ResourceType)
		require.Equal(t, "rr-ce", e.CorrelationID)
		require.Equal(t, "prod", *e.Namespace)
		require.True(t, e.EventTimestamp.Equal(ev.Time()), "time maps to event_timestamp")
	}
	require.Equal(t, 2, f.count(t))

	// Batch mode, with a UUID id kept as it is.
	id := uuid.NewString()
	batch := []cloudevents.Event{ceEvent(id, "/gateway"), ceEvent("x-1", "/gateway")}
	req, err := cehttp.NewHTTPRequestFromEvents(ctx, f.url+"/api/v1/audit/events", batch)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))
	require.Empty(t, body)
	_, err = f.store.GetEvent(ctx, uuid.MustParse(id))
	require.NoError(t, err)
	require.Equal(t, 4, f.count(t))

	// Same source and id, other content: 400 (Knative would retry a 409 in vain).
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(f.url + "/"))
	require.NoError(t, err)
	changed := ceEvent("delivery-binary", "/workflow/engine")
	changed.SetExtension("outcome", "success")
	result := c.Send(ctx, changed)
	var httpResult *cehttp.Result
	require.True(t, cloudevents.ResultAs(result, &httpResult), "%v", result)
	require.Equal(t, http.StatusBadRequest, httpResult.StatusCode)
	require.Equal(t, 4, f.count(t))
}

func TestWrite_BadInputs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	valid := eventJSON(t, nil)
	with := func(field string, v any) []byte {
		return eventJSON(t, func(m map[string]any) { m[field] = v })
	}
	deep := strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33)
	cases := []struct {
		name        string
		contentType string
		body        []byte
		headers     []string
		status      int
		field       string
	}{
		{"invalid JSON", "application/json", []byte(`{"event_type":`), nil, 400, "body"},
		{"unknown field", "application/json", with("colour", "red"), nil, 400, "colour"},
		{"server field", "application/json", with("submitted_by", "root"), nil, 400, "submitted_by"},
		{"field name in another case", "application/json", with("Event_Outcome", "failure"), nil, 400, "Event_Outcome"},
		{"wrong type", "application/json", with("duration_ms", "long"), nil, 400, "duration_ms"},
		{"fractional integer", "application/json", with("retention_days", 365.5), nil, 400, "retention_days"},
		{"U+0000 in event_data", "application/json", with("event_data", map[string]any{"a": "x\u0000y"}), nil, 400, "event_data"},
		{"U+0000 in a field", "application/json", with("correlation_id", "rr\u0000"), nil, 400, "correlation_id"},
		{"invalid UTF-8", "application/json", []byte("{\"event_type\":\"a.b\xff\"}"), nil, 400, "body"},
		{"too deep", "application/json", with("event_data", json.RawMessage(deep)), nil, 400, "event_data"},
		{"event_data too large", "application/json", with("event_data", map[string]any{"x": strings.Repeat("a", 256<<10)}), nil, 400, "event_data"},
		{"event_data not an object", "application/json", with("event_data", []int{1}), nil, 400, "event_data"},
		{"future timestamp", "application/json", with("event_timestamp", time.Now().Add(time.Hour).Format(time.RFC3339)), nil, 400, "event_timestamp"},
		{"timestamp past its retention", "application/json", with("event_timestamp", time.Now().AddDate(0, 0, -2558).Format(time.RFC3339)), nil, 400, "event_timestamp"},
		{"bad outcome", "application/json", with("event_outcome", "ok"), nil, 400, "event_outcome"},
		{"empty batch", "application/json", []byte(`[]`), nil, 400, "body"},
		{"unsupported content type", "text/plain", valid, nil, 415, ""},
		{"no content type", "", valid, nil, 415, ""},
		{"too large", "application/json", append(append([]byte(`{"event_data":{"x":"`), bytes.Repeat([]byte("a"), 5<<20)...), []byte(`"}}`)...), nil, 413, ""},
		{"CE missing id", "application/json", []byte(`{"a":1}`), []string{"Ce-Specversion", "1.0", "Ce-Source", "/s", "Ce-Type", "a.b"}, 400, "id"},
		{"CE missing correlationid", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"a.b","datacontenttype":"application/json","data":{"a":1}}`), nil, 400, "correlationid"},
		{"CE bad type", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"Bad Type","correlationid":"c","data":{"a":1}}`), nil, 400, "type"},
		{"CE data not JSON", "text/plain", []byte(`hello`), []string{"Ce-Specversion", "1.0", "Ce-Id", "1", "Ce-Source", "/s", "Ce-Type", "a.b", "Ce-Correlationid", "c"}, 400, "datacontenttype"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post(t, "/api/v1/audit/events", tc.contentType, tc.body, tc.headers...)
			require.Equal(t, tc.status, r.status, string(r.body[:min(len(r.body), 400)]))
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			p := r.json(t)
			require.EqualValues(t, tc.status, p["status"])
			require.NotEmpty(t, p["detail"])
			if tc.field != "" {
				var fields []string
				for _, e := range p["errors"].([]any) {
					fields = append(fields, e.(map[string]any)["field"].(string))
				}
				require.Contains(t, fields, tc.field, string(r.body))
			}
		})
	}
	require.Equal(t, 0, f.count(t), "nothing of a rejected request is stored")
}

func TestWrite_AllErrorsAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.post(t, "/api/v1/audit/events", "application/json", []byte(`{"colour":"red","duration_ms":"x","is_sensitive":1,"event_type":"a.b"}`))
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.body), `"field":"colour"`)
	require.Contains(t, string(r.body), `"field":"duration_ms"`)
	require.Contains(t, string(r.body), `"field":"is_sensitive"`)
}

func TestWrite_ConcurrentSingleEventsStoredOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const n = 200
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = eventJSON(t, nil)
	}
	var wg sync.WaitGroup
	statuses := make([]int, 2*n)
	for i := range 2 * n { // every event sent twice, concurrently
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(f.url+"/api/v1/audit/events", "application/json", bytes.NewReader(bodies[i%n]))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	created, dup := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusOK:
			dup++
		default:
			t.Fatalf("unexpected status %d", s)
		}
	}
	require.Equal(t, n, created)
	require.Equal(t, n, dup)
	require.Equal(t, n, f.count(t))
}

func TestConfig_Rejected(t *testing.T) {
	t.Parallel()
	for _, mutate := range []func(*write.Config){
		func(c *write.Config) { c.RetentionClasses = "30,2557" },
		func(c *write.Config) { c.Committers = 0 },
		func(c *write.Config) { c.GroupWait = time.Second },
		func(c *write.Config) { c.MaxEventAge = -time.Hour },
	} {
		cfg := defaultConfig()
		mutate(&cfg)
		_, err := write.New(nil, cfg, nil)
		require.Error(t, err, fmt.Sprintf("%+v", cfg))
	}
}
