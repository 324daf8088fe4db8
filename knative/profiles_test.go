package knative_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditstore/auditstore/functions/write"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

var update = flag.Bool("update", false, "write components/prometheus-operator/prometheusrule.yaml from observability/alerts.yaml")

func init() {
	// PodMonitor and PrometheusRule are checked by strict decoding into the Prometheus
	// Operator's own types, as Kubernetes kinds are.
	if err := monitoringv1.AddToScheme(scheme.Scheme); err != nil {
		panic(err)
	}
}

// profiles are the deployments README offers: the kustomization's components for each.
var profiles = map[string][]string{
	"default (knative defaults)": nil, // the kustomization as it is
	"sender identity":            {"components/sender-identity"},
	"production":                 {"components/sender-identity", "components/kafka-broker", "components/prometheus-operator"},
	"knative defaults, durable":  {"components/knative-defaults", "components/kafka-broker", "components/prometheus-operator", "components/pingsource"},
}

// build runs kustomize on this folder with the kustomization's components replaced (nil: as
// it is) and returns the objects it makes.
func build(t *testing.T, components []string) manifests {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	require.NoError(t, filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") || strings.HasPrefix(path, "testdata") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/knative", path), b)
	}))
	if components != nil {
		var k map[string]any
		readYAML(t, "kustomization.yaml", &k)
		k["components"] = components
		b, err := yaml.Marshal(k)
		require.NoError(t, err)
		require.NoError(t, mem.WriteFile("/knative/kustomization.yaml", b))
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/knative")
	require.NoError(t, err)
	out, err := res.AsYaml()
	require.NoError(t, err)
	dir := t.TempDir()
	f := filepath.Join(dir, "built.yaml")
	require.NoError(t, os.WriteFile(f, out, 0o600))
	return manifests{all: readObjects(t, f)}
}

// Every profile builds with kustomize, and what it applies validates against the schemas of
// its kinds; the profiles differ as README says.
func TestProfiles(t *testing.T) {
	t.Parallel()
	schemas := crdSchemas(t)
	for name, components := range profiles {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := build(t, components)
			for _, o := range m.all {
				checkSchema(t, schemas, o)
			}
			cmObj, ok := m.find("ConfigMap", "auditstore-write")
			require.True(t, ok)
			var cm corev1.ConfigMap
			require.NoError(t, cmObj.decode(&cm))
			senderIdentity := strings.Contains(strings.Join(components, " "), "sender-identity")
			_, hasPolicy := m.find("EventPolicy", "auditstore-producers")
			_, hasNetPol := m.find("NetworkPolicy", "auditstore-write")
			if senderIdentity {
				require.Equal(t, "verified", cm.Data["AUTH_BROKER_DELIVERIES"])
				require.True(t, hasPolicy, "only the listed producers may send to the broker")
			} else {
				require.Equal(t, "unauthenticated", cm.Data["AUTH_BROKER_DELIVERIES"])
				require.True(t, hasNetPol, "who may reach the token-less route is narrowed")
				require.False(t, hasPolicy, "an EventPolicy without sender identity would refuse every event")
			}
			cfg := defaults[write.Config](t)
			cfg.BrokerDeliveries = cm.Data["AUTH_BROKER_DELIVERIES"]
			h, err := write.New(nil, cfg, nil)
			require.NoError(t, err, "the write function takes the profile's setting")
			h.Close()

			brokers := m.of("Broker")
			require.Len(t, brokers, 1)
			class := brokers[0].raw["metadata"].(map[string]any)["annotations"].(map[string]any)["eventing.knative.dev/broker.class"]
			if strings.Contains(strings.Join(components, " "), "kafka-broker") {
				require.Equal(t, "Kafka", class)
				var b struct {
					Spec struct {
						Config struct{ Kind, Name, Namespace string } `json:"config"`
					} `json:"spec"`
				}
				require.NoError(t, brokers[0].decodeLoose(&b))
				_, ok := m.find(b.Spec.Config.Kind, b.Spec.Config.Name)
				require.True(t, ok, "the Kafka broker's config is applied with it")
			} else {
				require.Equal(t, "MTChannelBasedBroker", class, "works on a default install")
			}

			var pdb policyv1.PodDisruptionBudget
			pdbObj, ok := m.find("PodDisruptionBudget", "auditstore-write")
			require.True(t, ok)
			require.NoError(t, pdbObj.decode(&pdb))
			require.Equal(t, map[string]string{"serving.knative.dev/service": "auditstore-write"}, pdb.Spec.Selector.MatchLabels)
			if hasNetPol {
				var np networkingv1.NetworkPolicy
				npObj, _ := m.find("NetworkPolicy", "auditstore-write")
				require.NoError(t, npObj.decode(&np))
				require.Equal(t, pdb.Spec.Selector.MatchLabels, np.Spec.PodSelector.MatchLabels, "the write function's pods")
			}
			for _, svc := range m.of("Service") {
				labels := svc.raw["metadata"].(map[string]any)["labels"].(map[string]any)
				if svc.name() == "auditstore-query" {
					require.NotContains(t, labels, "networking.knative.dev/visibility", "investigators reach the query function from outside")
					continue
				}
				require.Equal(t, "cluster-local", labels["networking.knative.dev/visibility"], "%s is called from inside the cluster only", svc)
			}
		})
	}
}

// The PrometheusRule is alerts.yaml, the file promtool tests, wrapped for the Prometheus
// Operator (`go test ./knative -run TestPrometheusRule -update` writes it), and the PodMonitor
// scrapes every function with the job the alerts name.
func TestPrometheusRule_IsAlertsYAML(t *testing.T) {
	t.Parallel()
	const file = "components/prometheus-operator/prometheusrule.yaml"
	var alerts struct {
		Groups []any `yaml:"groups"`
	}
	readYAML(t, "observability/alerts.yaml", &alerts)
	if *update {
		rule := map[string]any{
			"apiVersion": "monitoring.coreos.com/v1",
			"kind":       "PrometheusRule",
			"metadata": map[string]any{"name": "auditstore", "namespace": "auditstore",
				"labels": map[string]any{"app.kubernetes.io/name": "auditstore", "app.kubernetes.io/component": "observability"}},
			"spec": map[string]any{"groups": alerts.Groups},
		}
		var buf bytes.Buffer
		buf.WriteString("# Generated from ../../observability/alerts.yaml (the rules promtool tests) by\n# `go test ./knative -run TestPrometheusRule -update`; edit alerts.yaml, not this file.\n")
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		require.NoError(t, enc.Encode(rule))
		require.NoError(t, os.WriteFile(file, buf.Bytes(), 0o644))
	}
	objs := readObjects(t, file)
	require.Len(t, objs, 1)
	var rule monitoringv1.PrometheusRule
	require.NoError(t, objs[0].decode(&rule))
	got, err := json.Marshal(objs[0].raw["spec"].(map[string]any)["groups"])
	require.NoError(t, err)
	want, err := json.Marshal(viaJSON(t, alerts.Groups))
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(got), "%s is out of date: run go test ./knative -run TestPrometheusRule -update", file)

	pms := readObjects(t, "components/prometheus-operator/podmonitor.yaml")
	require.Len(t, pms, 1)
	var pm monitoringv1.PodMonitor
	require.NoError(t, pms[0].decode(&pm))
	require.Equal(t, "serving.knative.dev/service", pm.Spec.JobLabel, "job is the Service's name, which the absent-target alerts name")
	require.Equal(t, "auditstore", pm.Spec.Selector.MatchLabels["app.kubernetes.io/name"])
	require.Len(t, pm.Spec.PodMetricsEndpoints, 1)
	require.Equal(t, "/metrics", pm.Spec.PodMetricsEndpoints[0].Path)
	require.EqualValues(t, 8080, *pm.Spec.PodMetricsEndpoints[0].PortNumber, "the functions' containerPort")
	var exprs []string
	for _, e := range alertRules(t) {
		exprs = append(exprs, e)
	}
	for _, want := range []string{`job="auditstore-write"`, `job="auditstore-maintain"`} {
		require.Contains(t, strings.Join(exprs, "\n"), want, "an alert fires when the job is not scraped")
	}
}

// viaJSON is v as JSON reads it back (YAML's maps and numbers as JSON's).
func viaJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&out); err != nil && !errors.Is(err, io.EOF) {
		require.NoError(t, err)
	}
	return out
}
