package maintain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestRetentionPolicies sets a category's default retention through the API and writes events:
// an event without retention_days gets the policy's class, one asking for less still gets the
// policy's, one asking for more gets its own.
func TestRetentionPolicies(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	svc := newService(pool, testConfig, []int{90}, nil, nil, nil)
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	do := func(method, path, body string) int {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewBufferString(body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusBadRequest, do(http.MethodPut, "/api/v1/audit/retention-policies/gateway", `{"retention_days":30}`))
	require.Equal(t, http.StatusOK, do(http.MethodPut, "/api/v1/audit/retention-policies/gateway", `{"retention_days":200}`))

	cfg := write.Config{MaxClockSkew: 5 * time.Minute, MaxEventAge: 720 * time.Hour, RetentionClasses: "90,180,365,730,1095,1825,2557",
		Committers: 1, GroupMaxEvents: 1000, Timeout: 10 * time.Second}
	h, err := write.New(s, cfg, nil, write.WithRetentionPolicies(s))
	require.NoError(t, err)
	defer h.Close()
	wmux := http.NewServeMux()
	h.Routes(wmux)
	post := func(category string, days any) int {
		ev := map[string]any{"event_type": category + ".signal.received", "event_outcome": "success", "correlation_id": "rr-p",
			"event_data": map[string]any{"a": 1}}
		if days != nil {
			ev["retention_days"] = days
		}
		b, _ := json.Marshal(ev)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/audit/events", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		wmux.ServeHTTP(rec, req)
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
		var reply struct {
			EventID string `json:"event_id"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &reply))
		e, err := s.GetEvent(context.Background(), uuid.MustParse(reply.EventID))
		require.NoError(t, err)
		return e.RetentionDays
	}
	require.Equal(t, 365, post("gateway", nil), "policy 200 days, rounded up to its class")
	require.Equal(t, 365, post("gateway", 90), "an event may not shorten its policy")
	require.Equal(t, 730, post("gateway", 700), "but may lengthen it")
	require.Equal(t, 2557, post("workflow", nil), "no policy: the longest")
	require.Equal(t, 90, post("workflow", 90))

	require.Equal(t, http.StatusNoContent, do(http.MethodDelete, "/api/v1/audit/retention-policies/gateway", ""))
	require.Equal(t, http.StatusNotFound, do(http.MethodDelete, "/api/v1/audit/retention-policies/gateway", ""))
}
