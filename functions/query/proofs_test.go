package query_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/erasure"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/outsideverify"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// TestBatchProofs_OutsideVerifier: the batch of proofs carries, for each version 2 event, what
// its single proof carries (salts and erased members' digests), so an outside verifier with
// the standard library only recomputes every event of the batch from the event as served and
// its entry, and learns exactly which members were erased.
func TestBatchProofs_OutsideVerifier(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	h, err := query.New(st, query.Config{Timeout: 10 * time.Second, CursorSecret: "s"}, prometheus.NewRegistry(), query.WithIntegrity(st, nil))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	data := `{"version":"1.0","service":"notification","operation":"message.sent","status":"success","payload":{"recipient":"alice@example.com","channel":"email","attempts":2}}`
	var events []audit.Event
	var ids []string
	for range 4 {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-batch", ActorID: "alice@example.com", EventData: json.RawMessage(data)})
		require.NoError(t, ledger.Hash(&e))
		events = append(events, e)
		ids = append(ids, e.EventID.String())
	}
	v1 := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-batch"})
	require.NoError(t, v1.SetHash())
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: append(slicesClone(events), v1)})
	require.NoError(t, err)
	_, err = (&ledger.Sealer{Store: st, Signer: integrity.NewSigner(priv)}).SealAll(ctx)
	require.NoError(t, err)
	erasedOf := map[string][]string{
		ids[0]: {"/actor_id", "/event_data/payload/recipient"},
		ids[1]: {"/event_data/payload/channel"},
	}
	for id, members := range erasedOf {
		_, err := erasure.Erase(ctx, st, erasure.Request{EventIDs: []uuid.UUID{uuid.MustParse(id)}, Members: members, Reason: "art. 17", By: "dpo"})
		require.NoError(t, err)
	}

	do := func(method, path string, body []byte) []byte {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, b := openapitest.Do(t, req, body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		return b
	}
	body, err := json.Marshal(map[string]any{"event_ids": append(slicesClone(ids), v1.EventID.String())})
	require.NoError(t, err)
	var batch struct {
		Proofs map[string]json.RawMessage `json:"proofs"`
	}
	require.NoError(t, json.Unmarshal(do("POST", "/api/v1/audit/integrity/proofs", body), &batch))
	for _, id := range ids {
		served := do("GET", "/api/v1/audit/events/"+id, nil)
		erased, err := outsideverify.Verify(served, batch.Proofs[id])
		require.NoError(t, err, "event %s", id)
		require.Equal(t, erasedOf[id], nilIfEmpty(erased), "event %s", id)
		// The same as its single proof says.
		var one, inBatch struct {
			Members json.RawMessage `json:"members"`
		}
		require.NoError(t, json.Unmarshal(do("GET", "/api/v1/audit/events/"+id+"/proof", nil), &one))
		require.NoError(t, json.Unmarshal(batch.Proofs[id], &inBatch))
		require.JSONEq(t, string(one.Members), string(inBatch.Members))
	}
	// A version 1 event's proof has no members: its hash commits to the whole event.
	var p1 struct {
		HashVersion int             `json:"hash_version"`
		Members     json.RawMessage `json:"members"`
	}
	require.NoError(t, json.Unmarshal(batch.Proofs[v1.EventID.String()], &p1))
	require.Nil(t, p1.Members)

	// A batch entry edited is refused by the outside verifier: the check can fail.
	var entry map[string]any
	require.NoError(t, json.Unmarshal(batch.Proofs[ids[2]], &entry))
	entry["members"].(map[string]any)["erased"] = map[string]any{"/actor_id": entry["event_hash"]}
	forged, err := json.Marshal(entry)
	require.NoError(t, err)
	_, err = outsideverify.Verify(do("GET", "/api/v1/audit/events/"+ids[2], nil), forged)
	require.Error(t, err)
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// BenchmarkBatchProofs asks for the proofs of 500 sealed version 2 events at once, as the
// timeline viewer does (its batches are of 500): each proof carries the event's members, so
// each event is read.
func BenchmarkBatchProofs(b *testing.B) {
	ctx := context.Background()
	st := store.New(pgtest.NewPool(b))
	h, err := query.New(st, query.Config{Timeout: 10 * time.Second, CursorSecret: "s"}, prometheus.NewRegistry(), query.WithIntegrity(st, nil))
	require.NoError(b, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	var events []audit.Event
	var ids []string
	for range 500 {
		e := audittest.Event(b, &audittest.EventOpts{CorrelationID: "rr-bench"})
		require.NoError(b, ledger.Hash(&e))
		events = append(events, e)
		ids = append(ids, e.EventID.String())
	}
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(b, err)
	_, err = (&ledger.Sealer{Store: st}).SealAll(ctx)
	require.NoError(b, err)
	body, err := json.Marshal(map[string]any{"event_ids": ids})
	require.NoError(b, err)
	b.ResetTimer()
	for range b.N {
		resp, err := http.Post(srv.URL+"/api/v1/audit/integrity/proofs", "application/json", bytes.NewReader(body))
		require.NoError(b, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(b, http.StatusOK, resp.StatusCode)
	}
}
