package openapitest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/stretchr/testify/require"
)

const eventID = "0194f7c2-8a3b-7c4d-9e5f-a1b2c3d4e5f6"

// storedEvent is an Event as GET /api/v1/audit/events/{event_id} returns it: the optional
// fields it has no value for are left out.
const storedEvent = `{"event_id":"` + eventID + `","version":"1.0",
"event_timestamp":"2026-11-25T10:00:00.123456Z","event_type":"gateway.signal.received",
"event_category":"gateway","event_action":"received","event_outcome":"success",
"correlation_id":"rr-1","actor_type":"service","actor_id":"gateway","actor_ip":"10.0.0.1",
"resource_type":"Signal","resource_id":"fp-1","namespace":"production","severity":"info",
"duration_ms":12,"retention_days":2557,
"is_sensitive":false,"event_data":{"a":1},"received_at":"2026-11-25T10:00:01Z",
"submitted_by":"anonymous",
"event_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","hash_version":1}`

func problem(status int, typ string) string {
	return fmt.Sprintf(`{"type":%q,"title":%q,"status":%d,"detail":"something"}`, typ, http.StatusText(status), status)
}

// exchange makes a request and response without a server: the checker only reads them.
func exchange(t *testing.T, method, target, reqCT, reqBody string, status int, respCT, respBody string, header ...string) (*http.Request, []byte, *http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://auditstore.test"+target, strings.NewReader(reqBody))
	require.NoError(t, err)
	if reqCT != "" {
		req.Header.Set("Content-Type", reqCT)
	}
	resp := &http.Response{StatusCode: status, Header: http.Header{}}
	if respCT != "" {
		resp.Header.Set("Content-Type", respCT)
	}
	for i := 0; i+1 < len(header); i += 2 {
		resp.Header.Set(header[i], header[i+1])
	}
	return req, []byte(reqBody), resp, []byte(respBody)
}

func TestCheck_Matches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		method, target   string
		reqCT, reqBody   string
		status           int
		respCT, respBody string
		header           []string
	}{
		{"liveness", "GET", "/health/liveness", "", "", 200, "application/json", `{"status":"ok"}`, nil},
		{"event", "GET", "/api/v1/audit/events/" + eventID, "", "", 200, "application/json", storedEvent, nil},
		{"not found", "GET", "/api/v1/audit/events/" + eventID, "", "", 404, "application/problem+json", problem(404, "https://auditstore.dev/problems/not-found"), nil},
		{"list", "GET", "/api/v1/audit/events?correlation_id=rr-1&correlation_id=rr-2&event_type=gateway.*&since=7d&limit=1", "", "", 200, "application/json",
			`{"data":[` + storedEvent + `],"pagination":{"limit":1,"offset":0,"has_more":true,"next_cursor":"abc"}}`, nil},
		{"created", "POST", "/api/v1/audit/events", "application/json",
			`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-1","event_data":{"a":1},"severity":null}`,
			201, "application/json", `{"event_id":"` + eventID + `","event_timestamp":"2026-11-25T10:00:00Z","duplicate":false,"message":"event stored"}`, nil},
		{"unavailable", "POST", "/api/v1/audit/events/batch", "application/json", `[]`, 503, "application/problem+json",
			problem(503, "https://auditstore.dev/problems/unavailable"), []string{"Retry-After", "5"}},
		// A refused request need not match the document: that is why it was refused.
		{"refused request", "POST", "/api/v1/audit/events", "application/json", `{"colour":"red"}`, 400, "application/problem+json",
			`{"type":"https://auditstore.dev/problems/invalid-request","title":"Bad Request","status":400,"detail":"the event is invalid","errors":[{"field":"colour","message":"is not a field of an audit event"}]}`, nil},
		{"cloudevents", "POST", "/", "application/cloudevents+json",
			`{"specversion":"1.0","id":"x-1","source":"/gateway","type":"gateway.signal.received","correlationid":"rr-1","data":{"a":1}}`, 202, "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, reqBody, resp, respBody := exchange(t, tc.method, tc.target, tc.reqCT, tc.reqBody, tc.status, tc.respCT, tc.respBody, tc.header...)
			require.NoError(t, openapitest.Check(req, reqBody, resp, respBody))
		})
	}
}

// A checker that cannot fail is a defect: each of these exchanges breaks the document once.
func TestCheck_Mismatches(t *testing.T) {
	t.Parallel()
	missing := strings.Replace(storedEvent, `,
"submitted_by":"anonymous"`, "", 1)
	require.NotEqual(t, storedEvent, missing)
	for _, tc := range []struct {
		name             string
		method, target   string
		reqCT, reqBody   string
		status           int
		respCT, respBody string
		header           []string
		want             string
	}{
		{"undocumented status", "GET", "/health/liveness", "", "", 418, "application/problem+json", problem(418, "about:blank"), nil,
			"status is not supported"},
		{"body missing a required field", "GET", "/api/v1/audit/events/" + eventID, "", "", 200, "application/json", missing, nil,
			"submitted_by"},
		{"null in a field that is never null", "GET", "/api/v1/audit/events/" + eventID, "", "", 200, "application/json",
			strings.Replace(storedEvent, `"actor_id":"gateway"`, `"actor_id":null`, 1), nil, "actor_id"},
		{"null for an absent optional field", "GET", "/api/v1/audit/events/" + eventID, "", "", 200, "application/json",
			strings.Replace(storedEvent, `"actor_ip":"10.0.0.1"`, `"actor_ip":null`, 1), nil, "actor_ip"},
		{"value outside its enum", "GET", "/api/v1/audit/events/" + eventID, "", "", 200, "application/json",
			strings.Replace(storedEvent, `"severity":"info"`, `"severity":"loud"`, 1), nil, "severity"},
		{"undocumented content type", "GET", "/health/liveness", "", "", 200, "text/plain", `ok`, nil,
			"Content-Type"},
		{"error not problem+json", "GET", "/api/v1/audit/events/" + eventID, "", "", 404, "application/json", `{"error":"not found"}`, nil,
			"application/problem+json"},
		{"problem status differs", "GET", "/api/v1/audit/events/" + eventID, "", "", 404, "application/problem+json",
			problem(400, "https://auditstore.dev/problems/not-found"), nil, "status"},
		{"503 without Retry-After", "GET", "/health/readiness", "", "", 503, "application/problem+json",
			problem(503, "https://auditstore.dev/problems/unavailable"), nil, "Retry-After"},
		{"body where none is documented", "POST", "/", "application/cloudevents+json",
			`{"specversion":"1.0","id":"x-1","source":"/gateway","type":"gateway.signal.received","correlationid":"rr-1","data":{"a":1}}`,
			202, "application/cloudevents+json", `{"specversion":"1.0"}`, nil, "documented without a body"},
		{"duplicate flag contradicts the status", "POST", "/api/v1/audit/events", "application/json",
			`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-1","event_data":{"a":1}}`,
			201, "application/json", `{"event_id":"` + eventID + `","event_timestamp":"2026-11-25T10:00:00Z","duplicate":true,"message":"event stored"}`, nil,
			"duplicate"},
		{"unknown operation", "DELETE", "/api/v1/audit/events", "", "", 404, "application/problem+json",
			problem(404, "https://auditstore.dev/problems/not-found"), nil, "no operation DELETE /api/v1/audit/events"},
		{"accepted an undocumented request body", "POST", "/api/v1/audit/events/batch", "application/json", `{"event_type":"a.b"}`,
			201, "application/json", `{"event_ids":["` + eventID + `"],"accepted":1,"duplicates":0,"message":"1 events stored, 0 duplicates"}`, nil,
			"accepted a request the document refuses"},
		{"accepted an unknown field", "POST", "/api/v1/audit/events/batch", "application/json",
			`[{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-1","event_data":{"a":1},"colour":"red"}]`,
			201, "application/json", `{"event_ids":["` + eventID + `"],"accepted":1,"duplicates":0,"message":"1 events stored, 0 duplicates"}`, nil,
			"colour"},
		{"accepted an undocumented query parameter", "GET", "/api/v1/audit/events?colour=red", "", "", 200, "application/json",
			`{"data":[],"pagination":{"limit":100,"offset":0,"has_more":false,"next_cursor":null}}`, nil, `"colour"`},
		{"accepted a malformed query parameter", "GET", "/api/v1/audit/events?limit=5000", "", "", 200, "application/json",
			`{"data":[],"pagination":{"limit":100,"offset":0,"has_more":false,"next_cursor":null}}`, nil, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, reqBody, resp, respBody := exchange(t, tc.method, tc.target, tc.reqCT, tc.reqBody, tc.status, tc.respCT, tc.respBody, tc.header...)
			err := openapitest.Check(req, reqBody, resp, respBody)
			require.Error(t, err, "the checker let a mismatch through")
			var m *openapitest.Mismatch
			require.ErrorAs(t, err, &m)
			require.Equal(t, tc.status, m.Status)
			require.Contains(t, strings.Join(m.Problems, "\n"), tc.want)
		})
	}
}

// recorder is a testing.TB that records a failure instead of failing.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Error(args ...any) { r.failures = append(r.failures, fmt.Sprint(args...)) }

func TestValidate_FailsTheTest(t *testing.T) {
	t.Parallel()
	req, reqBody, resp, respBody := exchange(t, "GET", "/health/liveness", "", "", 200, "application/json", `{"status":"ok"}`)
	var ok recorder
	openapitest.Validate(&ok, req, reqBody, resp, respBody)
	require.Empty(t, ok.failures)

	req, reqBody, resp, respBody = exchange(t, "GET", "/health/liveness", "", "", 200, "application/json", `{"status":"dead"}`)
	var bad recorder
	openapitest.Validate(&bad, req, reqBody, resp, respBody)
	require.Len(t, bad.failures, 1)
	require.Contains(t, bad.failures[0], "GET /health/liveness → 200 does not match")
	require.Contains(t, bad.failures[0], `{"status":"dead"}`, "the message shows the body")
}

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	checkSchema := func(name, body string) error { return openapitest.CheckSchema(name, []byte(body)) }
	valid := `{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-1","event_data":{"a":1}}`
	with := func(member string) string { return strings.TrimSuffix(valid, "}") + "," + member + "}" }
	require.NoError(t, checkSchema("EventInput", valid))
	require.NoError(t, checkSchema("EventInput", with(`"severity":null,"actor_ip":"2001:db8::1","event_id":"`+strings.ToUpper(eventID)+`"`)),
		"null means absent; a UUID in either case")
	for name, body := range map[string]string{
		"unknown field":         with(`"colour":"red"`),
		"server field":          with(`"submitted_by":"root"`),
		"bad outcome":           strings.Replace(valid, `"success"`, `"ok"`, 1),
		"bad event type":        strings.Replace(valid, `gateway.signal.received`, `Gateway`, 1),
		"required null":         strings.Replace(valid, `"rr-1"`, `null`, 1),
		"event_data not object": strings.Replace(valid, `{"a":1}`, `[1]`, 1),
		"retention too short":   with(`"retention_days":0`),
		"negative duration":     with(`"duration_ms":-1`),
		"not an IP":             with(`"actor_ip":"localhost"`),
		"not a UUID":            with(`"parent_event_id":"123"`),
		"not RFC 3339":          with(`"event_timestamp":"yesterday"`),
		"bad envelope":          strings.Replace(valid, `{"a":1}`, `{"version":"1.0","service":"gateway"}`, 1),
	} {
		require.Error(t, checkSchema("EventInput", body), name)
	}
	require.ErrorContains(t, checkSchema("NoSuchSchema", "{}"), "no schema")
}
