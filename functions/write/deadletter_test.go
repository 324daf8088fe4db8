package write_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

type deadLetterFixture struct {
	*fixture
	reg *prometheus.Registry
}

func deadLetterSetup(t *testing.T, az auth.Authorizer) *deadLetterFixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	reg := prometheus.NewRegistry()
	opts := []write.Option{write.WithDeadLetters(s)}
	if az != nil {
		opts = append(opts, write.WithAuthorizer(az, nil))
	}
	h, err := write.New(s, defaultConfig(), reg, opts...)
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return &deadLetterFixture{fixture: &fixture{url: srv.URL, pool: pool, store: s}, reg: reg}
}

func (f *deadLetterFixture) letters(t *testing.T) []store.DeadLetter {
	t.Helper()
	all, err := f.store.ListDeadLetters(context.Background(), store.DeadLetterParams{Limit: 1000})
	require.NoError(t, err)
	return all
}

// knativeHeaders are the headers of a binary-mode CloudEvent as a Knative broker dead-letters
// it: the original attributes plus knativeerrorcode, knativeerrordest and knativeerrordata.
func knativeHeaders(id string, code int, extra ...string) []string {
	h := []string{"Ce-Specversion", "1.0", "Ce-Id", id, "Ce-Source", "gateway", "Ce-Type", "gateway.signal.received",
		"Ce-Knativeerrorcode", strconv.Itoa(code), "Ce-Knativeerrordest", "http://auditstore-write.auditstore.svc.cluster.local/",
		"Ce-Knativeerrordata", base64.StdEncoding.EncodeToString([]byte(`{"status":` + strconv.Itoa(code) + `}`))}
	return append(h, extra...)
}

// The sink keeps every dead-lettered delivery: a CloudEvent that was invalid as an audit event
// (no correlationid), a CloudEvent the write function could not take in time, a batch, and a
// body that is no CloudEvent at all. Each answer is a 202 with no body.
func TestDeadLetter_SinkKeepsEverything(t *testing.T) {
	t.Parallel()
	f := deadLetterSetup(t, nil)
	data := []byte(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}`)

	r := exchange(t, f.url, "/api/v1/deadletter", "application/json", data, knativeHeaders("sig-1", 400)...)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	require.Empty(t, r.body)
	r = exchange(t, f.url, "/api/v1/deadletter", "application/json", data, knativeHeaders("sig-2", 503, "Ce-Correlationid", "rr-9")...)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	batch := `[{"specversion":"1.0","id":"b-1","source":"workflow","type":"workflow.step.done","data":{"a":1}},
		{"specversion":"1.0","id":"b-2","source":"workflow","type":"workflow.step.done","data":{"a":2}}]`
	r = exchange(t, f.url, "/api/v1/deadletter", "application/cloudevents-batch+json", []byte(batch))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	r = exchange(t, f.url, "/api/v1/deadletter", "text/plain", []byte("not a cloudevent\xff"), "Ce-Id", "half")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	// Data that is not the JSON its datacontenttype claims cannot be kept as JSON: kept raw.
	r = exchange(t, f.url, "/api/v1/deadletter", "application/json", []byte(`{"broken":`), knativeHeaders("sig-3", 400)...)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))

	all := f.letters(t)
	require.Len(t, all, 6)
	first := all[0]
	require.Equal(t, "sig-1", *first.CEID)
	require.Equal(t, "gateway", *first.CESource)
	require.Equal(t, "gateway.signal.received", *first.CEType)
	require.Equal(t, 400, *first.ErrorCode)
	require.Equal(t, "http://auditstore-write.auditstore.svc.cluster.local/", *first.ErrorDest)
	require.Equal(t, `{"status":400}`, *first.ErrorData, "knativeerrordata is decoded from base64")
	require.Equal(t, "anonymous", first.SubmittedBy)
	var ev map[string]any
	require.NoError(t, json.Unmarshal(first.Event, &ev))
	require.Equal(t, "sig-1", ev["id"])
	require.Equal(t, "400", ev["knativeerrorcode"], "the event is kept whole, Knative's extensions included")
	require.Equal(t, map[string]any{"version": "1.0", "service": "gateway", "operation": "signal.received", "status": "success"}, ev["data"])
	require.Nil(t, first.Body)

	require.Equal(t, "b-1", *all[2].CEID)
	require.Equal(t, "b-2", *all[3].CEID)

	raw := all[4]
	require.Nil(t, raw.Event)
	require.Equal(t, []byte("not a cloudevent\xff"), raw.Body)
	require.Equal(t, "text/plain", *raw.ContentType)
	require.Equal(t, "half", raw.Headers["Ce-Id"])
	require.NotEmpty(t, *raw.ParseError)

	broken := all[5]
	require.Nil(t, broken.Event)
	require.Equal(t, []byte(`{"broken":`), broken.Body)
	require.Equal(t, "sig-3", broken.Headers["Ce-Id"])
	require.Equal(t, 400, *broken.ErrorCode, "from the Ce-Knativeerrorcode header")

	require.Equal(t, 2.0, counterValue(t, f.reg, "audit_deadletters_total", "400"))
	require.Equal(t, 1.0, counterValue(t, f.reg, "audit_deadletters_total", "503"))
	require.Equal(t, 3.0, counterValue(t, f.reg, "audit_deadletters_total", "none"))
	require.Equal(t, 0, f.count(t), "a dead letter is not an audit event until it is replayed")
}

// counterValue is the value of the counter name with the one label value among reg's metrics.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

func TestDeadLetter_TooLargeIsKeptCut(t *testing.T) {
	t.Parallel()
	f := deadLetterSetup(t, nil)
	body := bytes.Repeat([]byte("x"), write.MaxDeadLetterBytes+10)
	r := f.post(t, "/api/v1/deadletter", "application/json", body, "Ce-Specversion", "1.0", "Ce-Id", "big", "Ce-Source", "s", "Ce-Type", "a.b")
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	all := f.letters(t)
	require.Len(t, all, 1)
	require.Len(t, all[0].Body, write.MaxDeadLetterBytes)
	require.Contains(t, *all[0].ParseError, "only its beginning is kept")
	require.Equal(t, "big", all[0].Headers["Ce-Id"])
}

// A replay takes the dead-lettered CloudEvent through the normal write path: an event that is
// still invalid stays dead-lettered with the reason; a valid one is stored under the event_id
// its source and id map to (a second replay, or the broker's own late redelivery, is a
// duplicate), the dead letter is marked, and the replay is itself an audit event.
func TestDeadLetter_Replay(t *testing.T) {
	t.Parallel()
	f := deadLetterSetup(t, nil)
	data := []byte(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}`)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	require.Equal(t, http.StatusAccepted, f.post(t, "/api/v1/deadletter", "application/json", data, knativeHeaders("sig-1", 400)...).status)
	require.Equal(t, http.StatusAccepted, f.post(t, "/api/v1/deadletter", "application/json", data,
		knativeHeaders("sig-2", 503, "Ce-Correlationid", "rr-9", "Ce-Traceparent", tp)...).status)
	require.Equal(t, http.StatusAccepted, f.post(t, "/api/v1/deadletter", "text/plain", []byte("?")).status)
	all := f.letters(t)
	invalid, valid, raw := all[0], all[1], all[2]

	r := exchange(t, f.url, "/api/v1/deadletters/"+invalid.DeadLetterID.String()+"/replay", "", nil)
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	require.Contains(t, string(r.body), "stays dead-lettered")
	require.Contains(t, string(r.body), `"field":"correlationid"`)

	r = exchange(t, f.url, "/api/v1/deadletters/"+valid.DeadLetterID.String()+"/replay", "", nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	reply := r.json(t)
	eventID := uuid.NewSHA1(uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), []byte("gateway sig-2")).String()
	require.Equal(t, []any{eventID}, reply["event_ids"])
	require.Equal(t, "anonymous", reply["deadletter"].(map[string]any)["replayed_by"])
	e, err := f.store.GetEvent(context.Background(), uuid.MustParse(eventID))
	require.NoError(t, err)
	require.Equal(t, "rr-9", e.CorrelationID)
	require.Equal(t, "gateway", e.ActorID)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", *e.TraceID, "the event's own traceparent extension is kept")
	require.NotContains(t, string(e.EventData), "knativeerror")

	r = exchange(t, f.url, "/api/v1/deadletters/"+valid.DeadLetterID.String()+"/replay", "", nil)
	require.Equal(t, http.StatusConflict, r.status, "a replay is recorded once")
	r = exchange(t, f.url, "/api/v1/deadletters/"+raw.DeadLetterID.String()+"/replay", "", nil)
	require.Equal(t, http.StatusConflict, r.status, "a delivery that is no CloudEvent cannot be replayed")
	r = exchange(t, f.url, "/api/v1/deadletters/"+uuid.NewString()+"/replay", "", nil)
	require.Equal(t, http.StatusNotFound, r.status)

	// The broker redelivering the same event later is a duplicate, not a second row.
	require.Equal(t, http.StatusAccepted, f.post(t, "/", "application/json", data,
		"Ce-Specversion", "1.0", "Ce-Id", "sig-2", "Ce-Source", "gateway", "Ce-Type", "gateway.signal.received", "Ce-Correlationid", "rr-9").status)
	var replays int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events
		WHERE event_type = 'auditstore.deadletter.replayed' AND resource_id = $1 AND event_data->'payload'->'event_ids' ? $2`,
		valid.DeadLetterID.String(), eventID).Scan(&replays))
	require.Equal(t, 1, replays)
	require.Equal(t, 2, f.count(t), "the replayed event and the record of its replay")
}

func TestDeadLetter_List(t *testing.T) {
	t.Parallel()
	f := deadLetterSetup(t, nil)
	for i := range 5 {
		require.Equal(t, http.StatusAccepted, f.post(t, "/api/v1/deadletter", "application/json", []byte(`{}`), knativeHeaders("l-"+strconv.Itoa(i), 400)...).status)
	}
	require.Equal(t, http.StatusAccepted, f.post(t, "/api/v1/deadletter", "text/plain", []byte("?")).status)

	var ids []string
	cursor := ""
	for {
		r := exchangeGet(t, f.url+"/api/v1/deadletters?limit=2"+cursor)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		page := r.json(t)
		for _, d := range page["data"].([]any) {
			ids = append(ids, d.(map[string]any)["deadletter_id"].(string))
		}
		p := page["pagination"].(map[string]any)
		if p["has_more"] != true {
			require.Nil(t, p["next_cursor"])
			break
		}
		cursor = "&cursor=" + p["next_cursor"].(string)
	}
	require.Len(t, ids, 6)

	r := exchangeGet(t, f.url+"/api/v1/deadletters?type=gateway.signal.received&pending=true")
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, r.json(t)["data"], 5)
	r = exchangeGet(t, f.url+"/api/v1/deadletters/"+ids[5])
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, ids[5], r.json(t)["deadletter_id"])
	r = exchangeGet(t, f.url+"/api/v1/deadletters?limit=0&colour=red&since=yesterday")
	require.Equal(t, http.StatusBadRequest, r.status)
	for _, field := range []string{"limit", "colour", "since"} {
		require.Contains(t, string(r.body), `"field":"`+field+`"`)
	}
	r = exchangeGet(t, f.url+"/api/v1/deadletters/not-a-uuid")
	require.Equal(t, http.StatusBadRequest, r.status)
}

// The dead-letter sink refuses no one (refusing would lose what the broker gave up on): a
// verified writer is named, anyone else kept as knative-broker:unauthenticated; only an
// administrator may read and replay them.
func TestDeadLetter_Authorization(t *testing.T) {
	t.Parallel()
	f := deadLetterSetup(t, staticAuthWithAdmin(t))
	r := f.post(t, "/api/v1/deadletter", "text/plain", []byte("?"))
	require.Equal(t, http.StatusAccepted, r.status)
	r = f.post(t, "/api/v1/deadletter", "text/plain", []byte("?"), "Authorization", "Bearer reader-token")
	require.Equal(t, http.StatusAccepted, r.status)
	r = f.post(t, "/api/v1/deadletter", "text/plain", []byte("?"), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusAccepted, r.status)
	all := f.letters(t)
	require.Len(t, all, 3)
	require.Equal(t, []string{auth.BrokerUnauthenticated, auth.BrokerUnauthenticated, "broker"},
		[]string{all[0].SubmittedBy, all[1].SubmittedBy, all[2].SubmittedBy})

	r = get(t, f.url+"/api/v1/deadletters", "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusForbidden, r.status)
	r = f.post(t, "/api/v1/deadletters/"+all[0].DeadLetterID.String()+"/replay", "", nil, "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusForbidden, r.status)
	r = get(t, f.url+"/api/v1/deadletters", "Authorization", "Bearer admin-token")
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, r.json(t)["data"], 3)
}

func staticAuthWithAdmin(t *testing.T) auth.Authorizer {
	t.Helper()
	path := t.TempDir() + "/tokens.yaml"
	require.NoError(t, os.WriteFile(path, []byte(`tokens:
  - {principal: broker, roles: [writer], token: writer-token}
  - {principal: auditor, roles: [reader], token: reader-token}
  - {principal: operator, roles: [admin], token: admin-token}
`), 0o600))
	az, err := auth.NewStatic(path)
	require.NoError(t, err)
	return az
}

func get(t *testing.T, url string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, b.Bytes()}
}

// exchangeGet is a GET checked against the OpenAPI document.
func exchangeGet(t *testing.T, url string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, b := openapitest.Do(t, req, nil)
	return reply{resp.StatusCode, resp.Header, b}
}
