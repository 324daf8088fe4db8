package write_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// No metric label carries a caller's identity: principals named like people (an e-mail
// address, a service account) write events with an envelope, without one, with an identity as
// the envelope's service and as actor_id, and no label value of /metrics holds any of them.
// audit_events_total counts them under the envelope's service, else "other".
func TestWrite_MetricLabelsCarryNoIdentity(t *testing.T) {
	t.Parallel()
	identities := []string{"alice@example.com", "system:serviceaccount:team-a:bob", "carol.smith"}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`tokens:
  - {principal: "alice@example.com", roles: [writer], token: t0}
  - {principal: "system:serviceaccount:team-a:bob", roles: [writer], token: t1}
  - {principal: "carol.smith", roles: [writer], token: t2}
`), 0o600))
	az, err := auth.NewStatic(path)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	h, err := write.New(store.New(pgtest.NewPool(t)), defaultConfig(), reg, write.WithAuthorizer(az, auth.NewMetrics(reg)))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	web.Metrics(mux, reg)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); h.Close() })
	f := &fixture{url: srv.URL}

	for i, who := range identities {
		token := "Bearer t" + string(rune('0'+i))
		bodies := [][]byte{
			// actor_id defaults to the principal; the envelope says gateway.
			eventJSON(t, func(m map[string]any) { delete(m, "actor_id") }),
			eventJSON(t, func(m map[string]any) { m["actor_id"] = who; m["event_data"] = map[string]any{"user": who} }),
			eventJSON(t, func(m map[string]any) {
				m["event_data"] = map[string]any{"version": "1.0", "service": who, "operation": who, "status": "success"}
			}),
		}
		for _, body := range bodies {
			r := f.post(t, "/api/v1/audit/events", "application/json", body, "Authorization", token)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
		}
		r := f.post(t, "/api/v1/audit/events", "application/json", []byte(`{`), "Authorization", token)
		require.Equal(t, http.StatusBadRequest, r.status)
	}

	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(raw)))
	require.NoError(t, err)
	services := map[string]float64{}
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, who := range identities {
					for _, part := range []string{who, "alice", "bob", "carol"} {
						require.NotContains(t, l.GetValue(), part, "%s{%s} carries an identity", name, l.GetName())
					}
				}
				if name == "audit_events_total" && l.GetName() == "service" {
					services[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	require.Equal(t, map[string]float64{"gateway": 3, "other": 6}, services)
}
