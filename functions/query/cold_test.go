package query_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/coldtest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/auditstore/auditstore/test/s3test"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestColdTierThroughTheAPI moves months to the cold tier (through the S3 protocol) and reads
// every event through every read route: pages whose cursors cross the tiers in both orders,
// get by id, the NDJSON export, proofs and verify-chain, each answering as before the move.
func TestColdTierThroughTheAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	bucket := s3test.Start(t).Bucket(t, "cold")
	h, err := query.New(st, query.Config{Timeout: 10 * time.Second, CursorSecret: "s"}, prometheus.NewRegistry(),
		query.WithIntegrity(st, nil), query.WithColdTier(cold.NewReader(bucket, 0)))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	now := time.Now().UTC()
	month := func(back int) time.Time {
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -back, 0)
	}
	var events []audit.Event
	for back := 4; back >= 0; back-- {
		for i := range 12 {
			c := "rr-api"
			if i%3 == 0 {
				c = fmt.Sprintf("rr-other-%d", back)
			}
			e := audittest.Event(t, &audittest.EventOpts{CorrelationID: c, EventTimestamp: month(back).Add(time.Duration(i) * time.Hour), RetentionDays: 2557})
			require.NoError(t, ledger.Hash(&e))
			events = append(events, e)
		}
	}
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = (&ledger.Sealer{Store: st}).SealAll(ctx)
	require.NoError(t, err)

	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b.Bytes()
	}
	// pages reads every page of a query, following next_cursor, and returns the events' JSON.
	pages := func(q url.Values) []string {
		t.Helper()
		var out []string
		for {
			status, body := get("/api/v1/audit/events?" + q.Encode())
			require.Equal(t, http.StatusOK, status, string(body))
			var page struct {
				Data       []json.RawMessage `json:"data"`
				Pagination struct {
					HasMore    bool    `json:"has_more"`
					NextCursor *string `json:"next_cursor"`
				} `json:"pagination"`
			}
			require.NoError(t, json.Unmarshal(body, &page))
			for _, d := range page.Data {
				out = append(out, string(d))
			}
			if !page.Pagination.HasMore {
				return out
			}
			q.Set("cursor", *page.Pagination.NextCursor)
		}
	}
	export := func(q url.Values) []string {
		t.Helper()
		status, body := get("/api/v1/audit/export?" + q.Encode())
		require.Equal(t, http.StatusOK, status, string(body))
		var out []string
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		return out
	}
	verifyChain := func(c string) map[string]any {
		t.Helper()
		resp, err := http.Post(srv.URL+"/api/v1/audit/verify-chain", "application/json", bytes.NewReader([]byte(`{"correlation_id":"`+c+`"}`)))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return m
	}

	queries := []url.Values{
		{"correlation_id": {"rr-api"}, "limit": {"5"}},
		{"correlation_id": {"rr-api"}, "limit": {"4"}, "order": {"desc"}},
		{"limit": {"7"}},
		{"limit": {"6"}, "order": {"asc"}, "since": {month(3).Format(time.RFC3339)}},
	}
	before := map[int][]string{}
	for i, q := range queries {
		before[i] = pages(url.Values(cloneValues(q)))
		require.NotEmpty(t, before[i])
	}
	exported := export(url.Values{})
	require.Len(t, exported, len(events))
	chain := verifyChain("rr-api")
	require.Equal(t, true, chain["is_valid"])
	gets := map[string]string{}
	for _, e := range events {
		_, body := get("/api/v1/audit/events/" + e.EventID.String())
		gets[e.EventID.String()] = string(body)
	}

	// Months 2, 3 and 4 back go cold.
	mover := &cold.Mover{Store: st, Tier: archive.NewCold(bucket, archive.ColdOptions{FileRows: 5, RowGroupRows: 2})}
	coldtest.Run(t, st, coldtest.Runner(t, st, mover, "2557=1", func() time.Time { return now }))
	files, err := st.ColdFiles(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var hotCount int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&hotCount))
	require.EqualValues(t, 24, hotCount, "only the two newest months stay hot")

	for i, q := range queries {
		require.Equal(t, before[i], pages(url.Values(cloneValues(q))), "query %v", q)
	}
	require.Equal(t, exported, export(url.Values{}))
	for _, e := range events {
		status, body := get("/api/v1/audit/events/" + e.EventID.String())
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, gets[e.EventID.String()], string(body))
		status, body = get("/api/v1/audit/events/" + e.EventID.String() + "/proof")
		require.Equal(t, http.StatusOK, status, string(body))
	}
	after := verifyChain("rr-api")
	require.Equal(t, true, after["is_valid"], "%v", after)
	require.Equal(t, chain["total_events"], after["total_events"])
	require.Equal(t, chain["verified_events"], after["verified_events"])
}

func cloneValues(v url.Values) map[string][]string {
	out := map[string][]string{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
