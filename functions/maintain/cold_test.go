package maintain_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

// TestColdMonthsThroughTheService: with HOT_MONTHS and ARCHIVE_URL the service's run moves old
// months to the cold tier, its verify counts their sealed events as cold (not deleted), and a
// legal hold placed on a correlation whose events are all cold covers them.
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
		events = append(events, audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-cold", RetentionDays: 2557, EventTimestamp: old.Add(time.Duration(i) * time.Minute)}))
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
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/audit/legal-hold", strings.NewReader(`{"correlation_id":"rr-cold","reason":"subpoena"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer admin-token")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var hold struct {
		EventsAffected int64 `json:"events_affected"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&hold))
	require.EqualValues(t, 4, hold.EventsAffected)
}

func kinds(actions []lifecycle.Action) []string {
	var out []string
	for _, a := range actions {
		out = append(out, a.Kind)
	}
	return out
}
