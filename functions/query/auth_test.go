package query_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

func TestQuery_AuthorizationAndReadAudit(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`tokens:
  - {principal: gateway, roles: [writer], token: writer-token}
  - {principal: auditor, roles: [reader], token: reader-token}
`), 0o600))
	az, err := auth.NewStatic(path)
	require.NoError(t, err)
	rec := query.NewReadRecorder(s, "auditstore-query", nil)
	h, err := query.New(s, query.Config{CursorSecret: "x", Timeout: 10 * time.Second}, nil, query.WithAuthorizer(az, nil), query.WithReadAudit(rec))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e := audittest.Event(t, nil)
	_, _, err = s.InsertEvents(context.Background(), store.InsertParams{Events: []audit.Event{e}})
	require.NoError(t, err)

	get := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, get("/api/v1/audit/events", ""))
	require.Equal(t, http.StatusForbidden, get("/api/v1/audit/events", "writer-token"), "a writer cannot read")
	require.Equal(t, http.StatusForbidden, get("/api/v1/audit/export", "writer-token"))
	require.Equal(t, http.StatusOK, get("/api/v1/audit/events?correlation_id="+e.CorrelationID, "reader-token"))
	require.Equal(t, http.StatusOK, get("/api/v1/audit/events/"+e.EventID.String(), "reader-token"))
	require.Equal(t, http.StatusOK, get("/api/v1/audit/export?actor_id=gateway", "reader-token"))

	// Every read was recorded, off the query path.
	rec.Close()
	page, err := s.QueryEvents(context.Background(), store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.query.executed"}}, Order: store.Ascending, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 3)
	for _, r := range page.Events {
		require.Equal(t, "auditor", r.ActorID)
		require.Equal(t, "auditstore-query", r.SubmittedBy)
	}
	require.Contains(t, string(page.Events[0].EventData), `"correlation_id": ["`+e.CorrelationID+`"]`)
	require.Contains(t, string(page.Events[0].EventData), `"rows": 1`)
	require.Contains(t, string(page.Events[2].EventData), `"kind": "export"`)
}
