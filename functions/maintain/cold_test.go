package maintain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

// TestColdMonthsThroughTheService: with HOT_MONTHS and ARCHIVE_URL the service's run moves old
// months to the cold tier, its verify counts their sealed events as cold (not deleted), the
// erasure API erases a cold event (its file rewritten, the erasure recorded), and a legal hold
// placed on a correlation whose events are all cold covers them (an erasure is refused).
func TestColdMonthsThroughTheService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte("tokens:\n  - {principal: legal-officer, roles: [admin], token: admin-token}\n"), 0o600))
	az, err := auth.NewStatic(tokens)
	require.NoError(t, err)
	cfg := testConfig
	cfg.ArchiveURL = "file://" + t.TempDir()
	require.NoError(t, cfg.HotMonths.Decode("1"))
	require.NoError(t, cfg.Validate())
	svc := newService(pool, cfg, []int{2557}, nil, az, nil)

	old := time.Now().UTC().AddDate(0, -4, 0)
	var events []audit.Event
	for i := range 4 {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-cold", RetentionDays: 2557, EventTimestamp: old.Add(time.Duration(i) * time.Minute),
			ActorID: fmt.Sprintf("person-%d@example.com", i)})
		require.NoError(t, ledger.Hash(&e))
		events = append(events, e)
	}
	_, _, err = s.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = svc.Keeper().Seal(ctx)
	require.NoError(t, err)
	rep, err := svc.Run(ctx)
	require.NoError(t, err)
	require.Contains(t, kinds(rep.Actions), "partition.cold")
	files, err := s.ColdFiles(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, files)

	v, err := svc.Keeper().Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v.Problems)
	require.EqualValues(t, 4, v.Cold)

	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	postTo := func(base, path, body string) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, base+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer admin-token")
		req.Header.Set("Content-Type", "application/json")
		resp, b := openapitest.Do(t, req, []byte(body))
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		return resp.StatusCode, m
	}
	post := func(path, body string) (int, map[string]any) { return postTo(srv.URL, path, body) }

	// A cold event is erased through the API: its file is rewritten, the erasure recorded.
	status, res := post("/api/v1/audit/erasures", `{"event_ids":["`+events[0].EventID.String()+`"],"members":["/actor_id"],"reason":"art. 17"}`)
	require.Equal(t, http.StatusOK, status, "%v", res)
	require.Len(t, res["cold_files"], 1)
	after, err := s.ColdFiles(ctx)
	require.NoError(t, err)
	require.Len(t, after, len(files))
	require.NotEqual(t, files[0].Key, after[0].Key)
	page, err := s.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.erasure.performed"}}, Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Events, 1)
	require.Contains(t, string(page.Events[0].EventData), events[0].EventID.String())
	require.Contains(t, string(page.Events[0].EventData), files[0].Key, "the record names the file replaced")
	v, err = svc.Keeper().Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v.Problems)

	// With ARCHIVE_URL and no HOT_MONTHS (months no longer move) the cold tier is still the
	// service's: its events are erased, not "not found", and its runs move nothing.
	noHot := cfg
	noHot.HotMonths = nil
	require.NoError(t, noHot.Validate())
	svc2 := newService(pool, noHot, []int{2557}, nil, az, nil)
	mux2 := http.NewServeMux()
	svc2.Routes(mux2)
	srv2 := httptest.NewServer(mux2)
	t.Cleanup(srv2.Close)
	status, res = postTo(srv2.URL, "/api/v1/audit/erasures", `{"event_ids":["`+events[3].EventID.String()+`"],"members":["/actor_id"],"reason":"art. 17"}`)
	require.Equal(t, http.StatusOK, status, "%v", res)
	require.Len(t, res["cold_files"], 1)
	rep, err = svc2.Run(ctx)
	require.NoError(t, err)
	require.NotContains(t, kinds(rep.Actions), "partition.cold")
	v, err = svc2.Keeper().Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.OK, "%+v", v.Problems)
	require.EqualValues(t, 4, v.Cold)

	status, hold := post("/api/v1/audit/legal-hold", `{"correlation_id":"rr-cold","reason":"subpoena"}`)
	require.Equal(t, http.StatusOK, status)
	require.EqualValues(t, 4, hold["events_affected"])

	// Held now: the erasure of a cold event is refused, naming the hold.
	status, p := post("/api/v1/audit/erasures", `{"event_ids":["`+events[1].EventID.String()+`"],"members":["/actor_id"],"reason":"art. 17"}`)
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, maintain.ErasureHeldType, p["type"])
	require.Contains(t, p["detail"], "subpoena")

	// While a maintenance run holds the lock, an erasure is sent again later.
	m, err := s.BeginMaintenance(ctx)
	require.NoError(t, err)
	status, p = post("/api/v1/audit/erasures", `{"event_ids":["`+events[2].EventID.String()+`"],"members":["/actor_id"],"reason":"art. 17"}`)
	m.End()
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, p["detail"], "maintenance run is in progress")
}

func kinds(actions []lifecycle.Action) []string {
	var out []string
	for _, a := range actions {
		out = append(out, a.Kind)
	}
	return out
}
