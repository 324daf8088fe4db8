package maintain_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

// The erasure API answers problem+json for what it refuses (409 naming the hold), erases and
// records the erasure as an audit event of its own.
func TestErasureAPI(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	ctx := context.Background()
	svc := newService(pool, testConfig, []int{90, 2557}, nil, nil, nil)
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// Every exchange is checked against the OpenAPI document.
	do := func(body string) (int, string, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/audit/erasures", nil)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, b := openapitest.Do(t, req, []byte(body))
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, resp.Header.Get("Content-Type"), m
	}
	mk := func(corr string) audit.Event {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: corr, ActorID: "alice@example.com"})
		require.NoError(t, ledger.Hash(&e))
		return e
	}
	free, held := mk("rr-free"), mk("rr-held")
	_, _, err := st.InsertEvents(ctx, store.InsertParams{Events: []audit.Event{free, held}})
	require.NoError(t, err)
	hold, err := st.PlaceHold(ctx, store.LegalHold{CorrelationID: &held.CorrelationID, Reason: "subpoena 42", PlacedBy: "legal"})
	require.NoError(t, err)

	status, ctype, p := do(`{"event_ids":["` + held.EventID.String() + `"],"members":["/actor_id"],"reason":"art. 17"}`)
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "application/problem+json", ctype)
	require.Equal(t, maintain.ErasureHeldType, p["type"])
	require.Contains(t, p["detail"], hold.HoldID.String())
	require.Contains(t, p["detail"], "subpoena 42")

	status, ctype, p = do(`{"event_ids":["` + free.EventID.String() + `"],"members":["/event_type"],"reason":"art. 17"}`)
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "application/problem+json", ctype)
	require.Contains(t, p["field_errors"], "members")

	status, _, _ = do(`{"event_ids":["` + free.EventID.String() + `"],"members":["/actor_id"]}`)
	require.Equal(t, http.StatusBadRequest, status, "an erasure says why")

	status, _, res := do(`{"event_ids":["` + free.EventID.String() + `"],"members":["/actor_id"],"reason":"art. 17"}`)
	require.Equal(t, http.StatusOK, status, "%v", res)
	require.Equal(t, "art. 17", res["reason"])
	got, err := st.GetEvent(ctx, free.EventID)
	require.NoError(t, err)
	require.Equal(t, integrity.ErasedActorID, got.ActorID)
	require.Equal(t, []string{"/actor_id"}, got.Erased)
	held2, err := st.GetEvent(ctx, held.EventID)
	require.NoError(t, err)
	require.Equal(t, "alice@example.com", held2.ActorID, "the held event is as it was")

	// The erasure is an audit event of its own, in its transaction.
	page, err := st.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.erasure.performed"}}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	require.Contains(t, string(page.Events[0].EventData), free.EventID.String())
	require.NotContains(t, string(page.Events[0].EventData), "alice")
}
