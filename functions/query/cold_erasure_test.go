package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/erasure"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/coldtest"
	"github.com/auditstore/auditstore/test/outsideverify"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestColdErasureThroughTheAPI erases an event of a cold month and reads it back through every
// read route of the query function: list, get, export, its proof and a batch of proofs lack
// the erased values, and an outside verifier recomputes the event as served from its entry in
// the batch.
func TestColdErasureThroughTheAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	bucket, err := archive.OpenBucket(ctx, "file://"+t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { bucket.Close() })
	h, err := query.New(st, query.Config{Timeout: 10 * time.Second, CursorSecret: "s"}, prometheus.NewRegistry(),
		query.WithIntegrity(st, nil), query.WithColdTier(cold.NewReader(bucket, 0)))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	now := time.Now().UTC()
	old := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -4, 0)
	data := `{"version":"1.0","service":"notification","operation":"message.sent","status":"success","payload":{"recipient":"alice@example.com","channel":"email"}}`
	var events []audit.Event
	for i := range 6 {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-cold-erase", ActorID: "alice@example.com", RetentionDays: 2557,
			EventTimestamp: old.Add(time.Duration(i) * time.Hour), EventData: json.RawMessage(data)})
		require.NoError(t, ledger.Hash(&e))
		events = append(events, e)
	}
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = (&ledger.Sealer{Store: st}).SealAll(ctx)
	require.NoError(t, err)
	mover := &cold.Mover{Store: st, Tier: archive.NewCold(bucket, archive.ColdOptions{})}
	coldtest.Run(t, st, coldtest.Runner(t, st, mover, "2557=2", func() time.Time { return now }))
	_, err = st.GetEvent(ctx, events[0].EventID)
	require.ErrorIs(t, err, store.ErrNotFound, "the month is cold")

	ids := []uuid.UUID{events[0].EventID, events[3].EventID}
	_, err = erasure.Erase(ctx, st, erasure.Request{EventIDs: ids, Members: []string{"/actor_id", "/event_data/payload/recipient"},
		Reason: "art. 17", By: "dpo", Cold: mover})
	require.NoError(t, err)

	do := func(method, path string, body []byte) []byte {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return b
	}
	count := func(b []byte) int { return bytes.Count(b, []byte("alice")) }
	list := do("GET", "/api/v1/audit/events?correlation_id=rr-cold-erase&limit=100", nil)
	require.Equal(t, 4*2, count(list), "the four events not erased keep both values; the two erased have none")
	require.Equal(t, 4*2, count(do("GET", "/api/v1/audit/export?correlation_id=rr-cold-erase", nil)))
	batchBody, err := json.Marshal(map[string]any{"event_ids": []string{ids[0].String(), ids[1].String(), events[1].EventID.String()}})
	require.NoError(t, err)
	var batch struct {
		Proofs map[string]json.RawMessage `json:"proofs"`
	}
	require.NoError(t, json.Unmarshal(do("POST", "/api/v1/audit/integrity/proofs", batchBody), &batch))
	for _, id := range ids {
		served := do("GET", "/api/v1/audit/events/"+id.String(), nil)
		require.Zero(t, count(served))
		proof := do("GET", "/api/v1/audit/events/"+id.String()+"/proof", nil)
		require.Zero(t, count(proof))
		erased, err := outsideverify.Verify(served, batch.Proofs[id.String()])
		require.NoError(t, err)
		require.Equal(t, []string{"/actor_id", "/event_data/payload/recipient"}, erased)
		erased, err = outsideverify.Verify(served, proof)
		require.NoError(t, err)
		require.Equal(t, []string{"/actor_id", "/event_data/payload/recipient"}, erased)
	}
	erased, err := outsideverify.Verify(do("GET", "/api/v1/audit/events/"+events[1].EventID.String(), nil), batch.Proofs[events[1].EventID.String()])
	require.NoError(t, err)
	require.Empty(t, erased)
}
