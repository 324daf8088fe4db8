package query_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestIntegrityAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	h, err := query.New(st, query.Config{Timeout: 10 * time.Second, CursorSecret: "s"}, prometheus.NewRegistry(),
		query.WithIntegrity(st, []integrity.PublicKey{pub}))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	sealer := &ledger.Sealer{Store: st, Signer: integrity.NewSigner(priv), Limit: 3}

	var events []audit.Event
	for i := range 5 {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-int", EventType: fmt.Sprintf("gateway.step.s%d", i)})
		require.NoError(t, ledger.Hash(&e))
		events = append(events, e)
	}
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)

	// Every exchange is also checked against the OpenAPI document.
	do := func(method, path string, body any) (int, []byte) {
		t.Helper()
		var b []byte
		if body != nil {
			var err error
			b, err = json.Marshal(body)
			require.NoError(t, err)
		}
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, respBody := openapitest.Do(t, req, b)
		return resp.StatusCode, respBody
	}
	problemType := func(b []byte) string {
		var p struct {
			Type string `json:"type"`
		}
		require.NoError(t, json.Unmarshal(b, &p))
		return p.Type
	}

	// Stored, not sealed: a 404 of its own type. Unknown: a plain 404.
	status, body := do("GET", "/api/v1/audit/events/"+events[0].EventID.String()+"/proof", nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, query.NotSealedType, problemType(body))
	status, body = do("GET", "/api/v1/audit/events/0190a0e0-0000-7000-8000-000000000000/proof", nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Equal(t, "https://auditstore.dev/problems/not-found", problemType(body))
	status, _ = do("GET", "/api/v1/audit/events/nope/proof", nil)
	require.Equal(t, http.StatusBadRequest, status)

	rep, err := sealer.SealAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, rep.Sealed)

	// The published key verifies the checkpoint, the proof leads to its root.
	status, body = do("GET", "/api/v1/audit/integrity/public-key", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	published := publishedKey(t, body)

	for _, e := range events {
		status, body = do("GET", "/api/v1/audit/events/"+e.EventID.String()+"/proof", nil)
		require.Equal(t, http.StatusOK, status, "%s", body)
		var p ledger.Proof
		require.NoError(t, json.Unmarshal(body, &p))
		require.NoError(t, p.Checkpoint.Verify([]integrity.PublicKey{published}))
		h, err := integrity.HashFromBytes(e.EventHash)
		require.NoError(t, err)
		require.Equal(t, h, p.EventHash)
		require.NoError(t, integrity.VerifyInclusion(integrity.LeafHash(h), p.LeafIndex, p.TreeSize, p.AuditPath, p.Checkpoint.RootHash))
		// A version 2 event's proof carries its members' salts: with the event as served, its
		// hash recomputes.
		require.Equal(t, ledger.DefaultHashVersion, p.HashVersion)
		require.NotNil(t, p.Members)
		require.Empty(t, p.Members.Erased)
		status, served := do("GET", "/api/v1/audit/events/"+e.EventID.String(), nil)
		require.Equal(t, http.StatusOK, status)
		got, err := integrity.EventHashV2(served, nil, p.Members.Kept())
		require.NoError(t, err)
		require.Equal(t, h, got)
	}

	// Many at once; an unknown id maps to null.
	unknown := "0190a0e0-0000-7000-8000-000000000001"
	status, body = do("POST", "/api/v1/audit/integrity/proofs", map[string]any{"event_ids": []string{events[1].EventID.String(), unknown}})
	require.Equal(t, http.StatusOK, status, "%s", body)
	var many struct {
		Checkpoint *integrity.Checkpoint    `json:"checkpoint"`
		Proofs     map[string]*ledger.Proof `json:"proofs"`
	}
	require.NoError(t, json.Unmarshal(body, &many))
	require.NotNil(t, many.Checkpoint)
	require.EqualValues(t, 5, many.Checkpoint.TreeSize)
	require.NotNil(t, many.Proofs[events[1].EventID.String()])
	require.Contains(t, many.Proofs, unknown)
	require.Nil(t, many.Proofs[unknown])
	for _, bad := range []any{map[string]any{"event_ids": []string{}}, map[string]any{"event_ids": []string{"x"}}, map[string]any{"ids": []string{unknown}}} {
		status, _ = do("POST", "/api/v1/audit/integrity/proofs", bad)
		require.Equal(t, http.StatusBadRequest, status, "%v", bad)
	}

	// Checkpoints (3 + 2 events: sizes 3 and 5) and the consistency proof between them.
	status, body = do("GET", "/api/v1/audit/integrity/checkpoints", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var cps struct {
		Checkpoints      []integrity.Checkpoint `json:"checkpoints"`
		ConsistencyProof []integrity.Hash       `json:"consistency_proof"`
	}
	require.NoError(t, json.Unmarshal(body, &cps))
	require.Len(t, cps.Checkpoints, 2)
	status, body = do("GET", "/api/v1/audit/integrity/checkpoints?first=3&second=5", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.NoError(t, json.Unmarshal(body, &cps))
	require.NoError(t, integrity.VerifyConsistency(3, 5, cps.ConsistencyProof, cps.Checkpoints[0].RootHash, cps.Checkpoints[1].RootHash))
	for _, q := range []string{"first=3", "first=5&second=3", "limit=0", "from_size=x", "bogus=1"} {
		status, _ = do("GET", "/api/v1/audit/integrity/checkpoints?"+q, nil)
		require.Equal(t, http.StatusBadRequest, status, q)
	}
	status, _ = do("GET", "/api/v1/audit/integrity/checkpoints?first=2&second=5", nil)
	require.Equal(t, http.StatusNotFound, status)

	// A read of the event carries its hash.
	status, body = do("GET", "/api/v1/audit/events/"+events[2].EventID.String(), nil)
	require.Equal(t, http.StatusOK, status)
	var got audit.Event
	require.NoError(t, json.Unmarshal(body, &got))
	require.Equal(t, events[2].EventHash, got.EventHash)
	require.Equal(t, ledger.DefaultHashVersion, got.HashVersion)
}

// publishedKey reads the one key of a GET /api/v1/audit/integrity/public-key answer, checking
// that its key_id and PEM name the same key.
func publishedKey(t *testing.T, body []byte) ed25519.PublicKey {
	t.Helper()
	var keys struct {
		Keys []struct {
			KeyID     string `json:"key_id"`
			PublicKey string `json:"public_key"`
			PEM       string `json:"pem"`
		} `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(body, &keys))
	require.Len(t, keys.Keys, 1)
	raw, err := base64.StdEncoding.DecodeString(keys.Keys[0].PublicKey)
	require.NoError(t, err)
	published := ed25519.PublicKey(raw)
	require.Equal(t, integrity.KeyID(published), keys.Keys[0].KeyID)
	fromPEM, err := integrity.ParsePublicKey(keys.Keys[0].PEM)
	require.NoError(t, err)
	require.Equal(t, published, fromPEM)
	return published
}
