package maintain_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// A maintenance run seals what was written, copies its checkpoint outside the database, and
// POST /api/v1/maintenance/verify reports the store clean, then names what an attacker changed.
func TestSealAndVerifyAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	reg := prometheus.NewRegistry()
	svc := newService(pool, testConfig, []int{90}, reg, nil, nil)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	copies := t.TempDir()
	closeCopies, err := svc.UseIntegrity(ctx, ledger.Config{SigningKey: base64.StdEncoding.EncodeToString(priv.Seed()),
		SealInterval: time.Second, SealBatch: 100, CheckpointURL: "file://" + copies})
	require.NoError(t, err)
	defer closeCopies()
	mux := http.NewServeMux()
	svc.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var events []audit.Event
	for range 30 {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-seal"})
		require.NoError(t, ledger.Hash(&e))
		events = append(events, e)
	}
	_, _, err = store.New(pool).InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = svc.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, 30.0, gauge(t, reg, "audit_integrity_tree_size"))
	files, err := filepath.Glob(filepath.Join(copies, "checkpoints", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 1, "one copy of the run's latest checkpoint")
	require.True(t, strings.HasSuffix(files[0], "00000000000000000030.json"))

	verify := func() ledger.Report {
		resp, err := http.Post(srv.URL+"/api/v1/maintenance/verify", "application/json", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var rep ledger.Report
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
		return rep
	}
	rep := verify()
	require.True(t, rep.OK, "%+v", rep.Problems)
	require.EqualValues(t, 30, rep.Sealed)
	require.Equal(t, 0.0, gauge(t, reg, "audit_integrity_verify_problems"))

	pgtest.Tamper(t, pool, `UPDATE audit_events SET actor_id = 'someone-else' WHERE event_id = $1`, events[7].EventID)
	rep = verify()
	require.False(t, rep.OK)
	require.Len(t, rep.Problems, 1)
	require.Equal(t, ledger.ProblemModified, rep.Problems[0].Kind)
	require.Equal(t, events[7].EventID, *rep.Problems[0].EventID)
	require.Equal(t, 1.0, gauge(t, reg, "audit_integrity_verify_problems"))

}

// gauge reads a registered gauge's value.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}
