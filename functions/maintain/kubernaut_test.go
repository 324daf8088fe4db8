package maintain_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

// TestKubernautLegalHold places, lists and releases a hold in kubernaut's shape and checks it is
// auditstore's own hold: listed by its API, honoured by retention, recorded when released.
func TestKubernautLegalHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte(`tokens:
  - {principal: legal-officer, roles: [admin], token: admin-token}
  - {principal: auditor, roles: [reader], token: reader-token}
`), 0o600))
	az, err := auth.NewStatic(tokens)
	require.NoError(t, err)
	svc := newService(pool, testConfig, []int{90}, nil, az, nil)
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	do := func(token, method, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		var reqBody []byte
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			reqBody = []byte(body)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-User-ID", "mallory") // kubernaut's way to name the user: ignored
		// Every exchange is also checked against the OpenAPI document.
		resp, b := openapitest.Do(t, req, reqBody)
		return resp.StatusCode, b
	}

	// Three events of the held correlation and a neighbour, in a month whose retention has passed.
	old := time.Now().AddDate(0, 0, -200)
	var held []audit.Event
	for i := range 3 {
		held = append(held, audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-hold", RetentionDays: 90, EventTimestamp: old.Add(time.Duration(i) * time.Minute)}))
	}
	neighbour := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-free", RetentionDays: 90, EventTimestamp: old})
	_, _, err = s.InsertEvents(ctx, store.InsertParams{Events: append(append([]audit.Event{}, held...), neighbour)})
	require.NoError(t, err)

	status, _ := do("reader-token", http.MethodPost, "/api/v1/audit/legal-hold", `{"correlation_id":"rr-hold","reason":"subpoena"}`)
	require.Equal(t, http.StatusForbidden, status, "holds are administration")
	for _, bad := range []string{`{"reason":"subpoena"}`, `{"correlation_id":"rr-hold"}`, `{"correlation_id":"rr-hold","reason":"x","placed_by":"mallory"}`, `[]`} {
		status, _ = do("admin-token", http.MethodPost, "/api/v1/audit/legal-hold", bad)
		require.Equal(t, http.StatusBadRequest, status, bad)
	}
	status, _ = do("admin-token", http.MethodPost, "/api/v1/audit/legal-hold", `{"correlation_id":"rr-none","reason":"subpoena"}`)
	require.Equal(t, http.StatusNotFound, status, "a correlation without events")

	status, body := do("admin-token", http.MethodPost, "/api/v1/audit/legal-hold", `{"correlation_id":"rr-hold","reason":"subpoena 42"}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var placed kubernaut.LegalHold
	require.NoError(t, kubernaut.Decode(body, &placed))
	require.Equal(t, kubernaut.LegalHold{CorrelationID: "rr-hold", EventsAffected: 3, PlacedBy: "legal-officer", PlacedAt: placed.PlacedAt, Reason: "subpoena 42"}, placed)
	// Placing it again answers the same hold; there is no second.
	status, body = do("admin-token", http.MethodPost, "/api/v1/audit/legal-hold", `{"correlation_id":"rr-hold","reason":"again"}`)
	require.Equal(t, http.StatusOK, status)
	var again kubernaut.LegalHold
	require.NoError(t, kubernaut.Decode(body, &again))
	require.Equal(t, placed, again)

	status, body = do("admin-token", http.MethodGet, "/api/v1/audit/legal-hold", "")
	require.Equal(t, http.StatusOK, status)
	var list kubernaut.LegalHoldList
	require.NoError(t, kubernaut.Decode(body, &list))
	require.Equal(t, kubernaut.LegalHoldList{Holds: []kubernaut.LegalHold{placed}, Total: 1}, list)
	// One hold, two APIs: auditstore's own lists it.
	holds, err := s.ListHolds(ctx, false)
	require.NoError(t, err)
	require.Len(t, holds, 1)
	require.Equal(t, "rr-hold", *holds[0].CorrelationID)
	require.Equal(t, "legal-officer", holds[0].PlacedBy)

	// Retention removes the expired month but the held events.
	_, err = svc.Run(ctx)
	require.NoError(t, err)
	_, err = s.GetEvent(ctx, neighbour.EventID)
	require.ErrorIs(t, err, store.ErrNotFound)
	for _, e := range held {
		_, err = s.GetEvent(ctx, e.EventID)
		require.NoError(t, err, "held event %s survives retention", e.EventID)
	}

	status, _ = do("admin-token", http.MethodDelete, "/api/v1/audit/legal-hold/rr-hold", `{}`)
	require.Equal(t, http.StatusBadRequest, status, "a release needs a release_reason")
	status, body = do("admin-token", http.MethodDelete, "/api/v1/audit/legal-hold/rr-hold", `{"release_reason":"case closed"}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var rel kubernaut.LegalHoldRelease
	require.NoError(t, kubernaut.Decode(body, &rel))
	require.Equal(t, kubernaut.LegalHoldRelease{CorrelationID: "rr-hold", EventsReleased: 3, ReleasedBy: "legal-officer", ReleasedAt: rel.ReleasedAt}, rel)
	status, _ = do("admin-token", http.MethodDelete, "/api/v1/audit/legal-hold/rr-hold", `{"release_reason":"again"}`)
	require.Equal(t, http.StatusNotFound, status)
	status, body = do("admin-token", http.MethodGet, "/api/v1/audit/legal-hold", "")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"holds":[],"total":0}`, string(body))

	// The release is recorded, by its principal and reason, and retention now takes the events.
	page, err := s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.legalhold.released"}}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	require.Equal(t, "legal-officer", page.Events[0].ActorID)
	require.Contains(t, string(page.Events[0].EventData), "case closed")
	_, err = svc.Run(ctx)
	require.NoError(t, err)
	for _, e := range held {
		_, err = s.GetEvent(ctx, e.EventID)
		require.ErrorIs(t, err, store.ErrNotFound, "released event %s goes", e.EventID)
	}
}
