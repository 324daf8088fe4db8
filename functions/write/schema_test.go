package write_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/stretchr/testify/require"
)

// TestWrite_PayloadSchemas checks that the write function validates event_data.payload against
// the registered schema of the service the envelope names: a wrong value is a 400 naming the
// index and the member, nothing stored; an unknown service's payload, and a known service's
// payload that leaves members out, are stored.
func TestWrite_PayloadSchemas(t *testing.T) {
	t.Parallel()
	f := setup(t)
	withData := func(data string) []byte {
		return eventJSON(t, func(m map[string]any) { m["event_data"] = json.RawMessage(data) })
	}
	built, err := audit.NewExecutionEvent("action.completed").WithCorrelationID("rr-schema").
		WithAction("restart_pod", "").WithSafetyCheck("rbac_permission", "passed").Build()
	require.NoError(t, err)
	builtJSON, err := json.Marshal(built)
	require.NoError(t, err)

	good := []string{
		string(builtJSON),
		string(withData(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"retries":2}}`)),
		string(withData(`{"version":"1.0","service":"billing","operation":"invoice.sent","status":"success","payload":{"risk_score":"high"}}`)),
		string(withData(`{"version":"2.0","service":"gateway","operation":"signal.received","status":"success","payload":{"risk_score":"high"}}`)),
	}
	bad := withData(`{"version":"1.0","service":"aianalysis","operation":"analysis.completed","status":"success",
		"payload":{"provider":"anthropic","confidence":3,"recommended_actions":"restart"}}`)
	body := []byte("[" + good[0] + "," + good[1] + "," + string(bad) + "," + good[2] + "]")
	r := f.post(t, "/api/v1/audit/events", "application/json", body)
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	var problem struct {
		Errors []struct {
			Index   *int   `json:"index"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(r.body, &problem))
	require.Len(t, problem.Errors, 2, string(r.body))
	require.Equal(t, 2, *problem.Errors[0].Index)
	require.Equal(t, "event_data.payload.confidence", problem.Errors[0].Field)
	require.Equal(t, "is 3; it must be at most 1", problem.Errors[0].Message)
	require.Equal(t, 2, *problem.Errors[1].Index)
	require.Equal(t, "event_data.payload.recommended_actions", problem.Errors[1].Field)
	require.Equal(t, "must be an array, not a string", problem.Errors[1].Message)
	require.Zero(t, f.count(t), "nothing of a rejected batch is stored")

	r = f.post(t, "/api/v1/audit/events", "application/json", []byte("["+good[0]+","+good[1]+","+good[2]+","+good[3]+"]"))
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	require.Equal(t, 4, f.count(t))

	// A single event names the member without an index.
	r = f.post(t, "/api/v1/audit/events", "application/json", bad)
	require.Equal(t, http.StatusBadRequest, r.status)
	problem.Errors = nil
	require.NoError(t, json.Unmarshal(r.body, &problem))
	require.Nil(t, problem.Errors[0].Index)
	require.Equal(t, "event_data.payload.confidence", problem.Errors[0].Field)
}
