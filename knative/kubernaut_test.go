package knative_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// kubernautRoutes are the requests kubernaut's services and client make to their one Data
// Storage URL.
var kubernautRoutes = [][2]string{
	{http.MethodPost, "/api/v1/audit/events"},
	{http.MethodPost, "/api/v1/audit/events/batch"},
	{http.MethodGet, "/api/v1/audit/events"},
	{http.MethodGet, "/api/v1/audit/events/0192f0c4-6e4f-7b3a-9c1d-2e3f4a5b6c7d"},
	{http.MethodPost, "/api/v1/audit/verify-chain"},
	{http.MethodPost, "/api/v1/audit/legal-hold"},
	{http.MethodGet, "/api/v1/audit/legal-hold"},
	{http.MethodDelete, "/api/v1/audit/legal-hold/rr-1"},
	{http.MethodGet, "/api/v1/audit/export"},
	{http.MethodPost, "/api/v1/audit/notifications"},
	{http.MethodGet, "/healthz"},
	{http.MethodGet, "/readyz"},
}

// The kubernaut component gives kubernaut one cluster-local URL that routes every request it
// makes, which none of the three functions does alone; the Service only serves, leaving
// maintenance, sealing and verification to the maintain function.
func TestKubernautComponent(t *testing.T) {
	t.Parallel()
	readComponent(t, "kubernaut")
	m := load(t)
	svc, ok := m.find("Service", "auditstore-kubernaut")
	require.True(t, ok)
	labels := svc.raw["metadata"].(map[string]any)["labels"].(map[string]any)
	require.Equal(t, "cluster-local", labels["networking.knative.dev/visibility"], "inside the cluster only")

	var one container
	for _, ct := range m.containers(t) {
		if ct.owner.name() == svc.name() {
			one = ct
		}
	}
	fns := functions(t)
	fn, ok := fns[one.spec.Image]
	require.True(t, ok, "%s: no function for %s", svc, one.spec.Image)
	for _, r := range kubernautRoutes {
		require.NotEqual(t, "/", routed(fn.mux, r[0], r[1]), "%s does not route %s %s", svc, r[0], r[1])
	}
	for _, name := range []string{"auditstore-write", "auditstore-query", "auditstore-maintain"} {
		var image string
		for _, ct := range m.containers(t) {
			if ct.owner.kind() == "Service" && ct.owner.name() == name {
				image = ct.spec.Image
			}
		}
		unrouted := 0
		for _, r := range kubernautRoutes {
			if routed(fns[image].mux, r[0], r[1]) == "/" {
				unrouted++
			}
		}
		require.Positive(t, unrouted, "%s alone serves kubernaut: the component is not needed", name)
	}

	cmObj, ok := m.find("ConfigMap", "auditstore-kubernaut")
	require.True(t, ok)
	var cm corev1.ConfigMap
	require.NoError(t, cmObj.decode(&cm))
	require.Equal(t, "0", cm.Data["MAINTENANCE_INTERVAL"], "the maintenance job or the maintain function maintains")
	require.Equal(t, "false", cm.Data["SEALING"], "the maintain function seals")
	require.Equal(t, "0", cm.Data["VERIFY_INTERVAL"], "the maintain function verifies")
}
