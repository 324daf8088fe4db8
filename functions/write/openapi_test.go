package write_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/openapitest"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// exchange posts body to path and fails t when the request and response do not match the
// OpenAPI document (shared/web/openapi).
func exchange(t *testing.T, url, path, contentType string, body []byte, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, nil)
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, b := openapitest.Do(t, req, body)
	return reply{resp.StatusCode, resp.Header, b}
}

// exchangeRequest sends a request the CloudEvents SDK made, checked like exchange.
func exchangeRequest(t *testing.T, req *http.Request) reply {
	t.Helper()
	body, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	resp, b := openapitest.Do(t, req, body)
	return reply{resp.StatusCode, resp.Header, b}
}

func TestOpenAPI_JSONEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	body := eventJSON(t, nil)

	r := exchange(t, f.url, "/api/v1/audit/events", "application/json", body,
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = exchange(t, f.url, "/api/v1/audit/events", "application/json; charset=utf-8", body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	changed := eventJSON(t, func(m map[string]any) {
		var orig map[string]any
		require.NoError(t, json.Unmarshal(body, &orig))
		m["event_id"] = orig["event_id"]
	})
	r = exchange(t, f.url, "/api/v1/audit/events", "application/json", changed)
	require.Equal(t, http.StatusConflict, r.status, string(r.body))

	// Optional fields as null mean absent, as the document says.
	r = exchange(t, f.url, "/api/v1/audit/events", "application/json", eventJSON(t, func(m map[string]any) {
		m["severity"], m["resource_name"], m["retention_days"], m["actor_ip"] = nil, nil, nil, "2001:db8::1"
	}))
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
}

func TestOpenAPI_HeaderForm(t *testing.T) {
	t.Parallel()
	f := setup(t)
	payload := []byte(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}`)
	r := exchange(t, f.url, "/api/v1/audit/events", "application/json", payload,
		"X-Event-Type", "gateway.signal.received", "X-Service", "gateway", "X-Correlation-ID", "rr-h",
		"X-Outcome", "success", "X-Resource-Type", "Signal", "X-Resource-ID", "fp-1",
		"X-Event-ID", uuid.NewString(), "X-Severity", "high")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))

	r = exchange(t, f.url, "/api/v1/audit/events", "application/json", []byte(`{}`), "X-Event-Type", "gateway.x.y")
	require.Equal(t, http.StatusBadRequest, r.status)
}

func TestOpenAPI_JSONBatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a, b := eventJSON(t, nil), eventJSON(t, nil)
	batch := []byte("[" + string(a) + "," + string(b) + "]")

	r := exchange(t, f.url, "/api/v1/audit/events", "application/json", batch)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = exchange(t, f.url, "/api/v1/audit/events/batch", "application/json", batch)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	r = exchange(t, f.url, "/api/v1/audit/events/batch", "application/json", []byte("["+string(eventJSON(t, nil))+","+string(a)+"]"))
	require.Equal(t, http.StatusCreated, r.status, string(r.body))

	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	m["event_outcome"] = "failure"
	conflicting, err := json.Marshal(m)
	require.NoError(t, err)
	r = exchange(t, f.url, "/api/v1/audit/events/batch", "application/json", []byte("["+string(eventJSON(t, nil))+","+string(conflicting)+"]"))
	require.Equal(t, http.StatusConflict, r.status, string(r.body))

	bad := eventJSON(t, func(x map[string]any) { x["event_outcome"] = "ok" })
	r = exchange(t, f.url, "/api/v1/audit/events/batch", "application/json", []byte("["+string(a)+","+string(bad)+"]"))
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	r = exchange(t, f.url, "/api/v1/audit/events", "application/json", []byte(`[]`))
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
}

// TestOpenAPI_Refused sends what the server refuses: each reply must be a documented problem,
// and where the document's schema can say so, the document refuses the event too.
func TestOpenAPI_Refused(t *testing.T) {
	t.Parallel()
	f := setup(t)
	with := func(field string, v any) []byte {
		return eventJSON(t, func(m map[string]any) { m[field] = v })
	}
	for _, tc := range []struct {
		name          string
		path          string
		contentType   string
		body          []byte
		status        int
		schemaRefuses bool // the EventInput schema refuses the body as well
	}{
		{"unknown field", "/api/v1/audit/events", "application/json", with("colour", "red"), 400, true},
		{"server field", "/api/v1/audit/events", "application/json", with("submitted_by", "root"), 400, true},
		{"wrong type", "/api/v1/audit/events", "application/json", with("duration_ms", "long"), 400, true},
		{"bad outcome", "/api/v1/audit/events", "application/json", with("event_outcome", "ok"), 400, true},
		{"bad event type", "/api/v1/audit/events", "application/json", with("event_type", "Gateway"), 400, true},
		{"retention out of range", "/api/v1/audit/events", "application/json", with("retention_days", 2558), 400, true},
		{"not an IP", "/api/v1/audit/events", "application/json", with("actor_ip", "localhost"), 400, true},
		{"event_data not an object", "/api/v1/audit/events", "application/json", with("event_data", []int{1}), 400, true},
		{"missing required field", "/api/v1/audit/events", "application/json", eventJSON(t, func(m map[string]any) { delete(m, "correlation_id") }), 400, true},
		{"invalid JSON", "/api/v1/audit/events", "application/json", []byte(`{"event_type":`), 400, false},
		{"invalid UTF-8", "/api/v1/audit/events", "application/json", []byte("{\"event_type\":\"a.b\xff\"}"), 400, false},
		{"unsupported content type", "/api/v1/audit/events", "text/plain", eventJSON(t, nil), 415, false},
		{"no content type", "/api/v1/audit/events/batch", "", eventJSON(t, nil), 415, false},
		{"JSON event at /", "/", "application/json", eventJSON(t, nil), 415, false},
		{"too large", "/api/v1/audit/events", "application/json", append(append([]byte(`{"event_data":{"x":"`), bytes.Repeat([]byte("a"), 5<<20)...), []byte(`"}}`)...), 413, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, f.url, tc.path, tc.contentType, tc.body)
			require.Equal(t, tc.status, r.status, string(r.body[:min(len(r.body), 400)]))
			if tc.schemaRefuses {
				require.Error(t, openapitest.CheckSchema("EventInput", tc.body), "the server refuses this event, the document accepts it")
			}
		})
	}
	require.Equal(t, 0, f.count(t))
}

func TestOpenAPI_CloudEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	for _, path := range []string{"/", "/api/v1/audit/events"} {
		ev := ceEvent("delivery-"+path, "/workflow/engine")
		for _, enc := range []func(context.Context) context.Context{cloudevents.WithEncodingBinary, cloudevents.WithEncodingStructured} {
			req, err := cehttp.NewHTTPRequestFromEvent(enc(ctx), f.url+path, ev)
			require.NoError(t, err)
			r := exchangeRequest(t, req) // new, then the redelivered duplicate: 202 both
			require.Equal(t, http.StatusAccepted, r.status, string(r.body))
			require.Empty(t, r.body)
		}
	}

	// A binary-mode request written by hand, with every extension the document lists.
	r := exchange(t, f.url, "/", "application/json", []byte(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}`),
		"Ce-Specversion", "1.0", "Ce-Id", uuid.NewString(), "Ce-Source", "/gateway", "Ce-Type", "gateway.signal.received",
		"Ce-Subject", "fp-1", "Ce-Time", time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), "Ce-Correlationid", "rr-ce", "Ce-Outcome", "failure",
		"Ce-Actortype", "service", "Ce-Actorid", "gateway", "Ce-Resourcetype", "Signal", "Ce-Severity", "high",
		"Ce-Namespace", "prod", "Ce-Clusterid", "eu-1", "Ce-Parenteventid", uuid.NewString(),
		"Ce-Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	req, err := cehttp.NewHTTPRequestFromEvents(ctx, f.url+"/api/v1/audit/events",
		[]cloudevents.Event{ceEvent(uuid.NewString(), "/gateway"), ceEvent("x-1", "/gateway")})
	require.NoError(t, err)
	r = exchangeRequest(t, req)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	// Same source and id, other content: 400, not 409.
	changed := ceEvent("delivery-/", "/workflow/engine")
	changed.SetExtension("outcome", "success")
	req, err = cehttp.NewHTTPRequestFromEvent(ctx, f.url+"/", changed)
	require.NoError(t, err)
	r = exchangeRequest(t, req)
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))

	r = exchange(t, f.url, "/", "application/cloudevents+json",
		[]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"a.b","datacontenttype":"application/json","data":{"a":1}}`))
	require.Equal(t, http.StatusBadRequest, r.status, "correlationid missing: %s", r.body)
	require.Equal(t, 5, f.count(t))
}

// failingStore fails every insert with err.
type failingStore struct{ err error }

func (s failingStore) InsertEvents(context.Context, store.InsertParams) ([]store.InsertResult, bool, error) {
	return nil, false, s.err
}

func TestOpenAPI_StoreFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("insert: %w", store.ErrUnavailable), http.StatusServiceUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		h, err := write.New(failingStore{tc.err}, defaultConfig(), nil)
		require.NoError(t, err)
		mux := http.NewServeMux()
		h.Routes(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(func() { srv.Close(); h.Close() })

		r := exchange(t, srv.URL, "/api/v1/audit/events", "application/json", eventJSON(t, nil))
		require.Equal(t, tc.status, r.status, string(r.body))
		r = exchange(t, srv.URL, "/api/v1/audit/events/batch", "application/json", []byte("["+string(eventJSON(t, nil))+"]"))
		require.Equal(t, tc.status, r.status, string(r.body))
		req, err := cehttp.NewHTTPRequestFromEvent(context.Background(), srv.URL+"/", ceEvent("x-1", "/gateway"))
		require.NoError(t, err)
		r = exchangeRequest(t, req)
		require.Equal(t, tc.status, r.status, string(r.body))
	}
}
