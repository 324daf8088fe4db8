package knative_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/auditstore/auditstore/functions/maintain"
	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/query/ui"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/kelseyhightower/envconfig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// defaults is a config with the defaults its envconfig tags give.
func defaults[T any](t *testing.T) T {
	t.Helper()
	var cfg T
	require.NoError(t, envconfig.Process("auditstore_manifest_test", &cfg))
	return cfg
}

// noDatabase is where the functions built for these tests keep their data: a pool connects on
// first use, which here fails at once, and only what they route and register is tested.
const noDatabase = "postgres://auditstore@127.0.0.1:1/none"

// builtFunction is a function as its command builds it: the registry it registers its metrics
// with, and the mux it serves.
type builtFunction struct {
	reg *prometheus.Registry
	mux *http.ServeMux
}

// functions builds the write, query and maintain functions as their commands do, by ko://
// image, each with a registry and an auth kit of its own.
func functions(t *testing.T) map[string]builtFunction {
	t.Helper()
	ctx := context.Background()
	ready := func(context.Context) error { return nil }
	server := func() *function.Server {
		srv, err := function.NewServer(function.Config{Auth: auth.Config{Mode: "none", RateLimit: 1, RateBurst: 1}})
		require.NoError(t, err)
		return srv
	}
	s, closeDB, err := function.OpenStore(ctx, noDatabase, store.PoolOptions{})
	require.NoError(t, err)
	t.Cleanup(closeDB)
	out := map[string]builtFunction{}

	srv := server()
	w, err := write.Open(ctx, srv, s, defaults[write.Config](t))
	require.NoError(t, err)
	t.Cleanup(w.Close)
	out["ko://"+module+"/functions/write/cmd"] = builtFunction{srv.Registry, function.Mux(srv.Writable(ready), srv.Registry, w.Routes)}

	srv = server()
	// As deployed with a read replica (QUERY_DATABASE_URL), so the replica's metrics are
	// registered too.
	q, err := query.Open(srv, s, s, nil, defaults[query.Config](t), query.WithReplica(s, s))
	require.NoError(t, err)
	t.Cleanup(q.Close)
	out["ko://"+module+"/functions/query/cmd"] = builtFunction{srv.Registry, function.Mux(ready, srv.Registry, q.Routes)}

	srv = server()
	msvc, closeMaintain, err := lifecycle.Open(ctx, noDatabase, defaults[lifecycle.ServiceConfig](t), srv.Registry)
	require.NoError(t, err)
	t.Cleanup(closeMaintain)
	m := maintain.New(msvc, srv.Registry, srv.Auth.Authorizer, srv.Auth.Metrics)
	out["ko://"+module+"/functions/maintain/cmd"] = builtFunction{srv.Registry, function.Mux(srv.Writable(ready), srv.Registry, m.Routes, m.ScheduleRoute)}

	// The standalone process: every function's API on one listener (no schedule route: / is
	// the write function's there).
	srv = server()
	sw, err := write.Open(ctx, srv, s, defaults[write.Config](t))
	require.NoError(t, err)
	t.Cleanup(sw.Close)
	sq, err := query.Open(srv, s, s, nil, defaults[query.Config](t))
	require.NoError(t, err)
	t.Cleanup(sq.Close)
	smsvc, closeStandalone, err := lifecycle.Open(ctx, noDatabase, defaults[lifecycle.ServiceConfig](t), srv.Registry)
	require.NoError(t, err)
	t.Cleanup(closeStandalone)
	sm := maintain.New(smsvc, srv.Registry, srv.Auth.Authorizer, srv.Auth.Metrics)
	out["ko://"+module+"/functions/standalone"] = builtFunction{srv.Registry, function.Mux(srv.Writable(ready), srv.Registry, sw.Routes, sq.Routes, sm.Routes)}
	return out
}

// routed reports the pattern mux routes a request to (the catch-all "/" means not routed).
func routed(mux *http.ServeMux, method, path string) string {
	req := &http.Request{Method: method, URL: &url.URL{Path: path}, Host: "x"}
	_, pattern := mux.Handler(req)
	return pattern
}

// destination is a Knative Destination (sink, subscriber, dead-letter sink).
type destination struct {
	Ref struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Name       string `json:"name"`
		Namespace  string `json:"namespace"`
	} `json:"ref"`
	URI      string `json:"uri"`
	Audience string `json:"audience"`
}

// checkDestination: dest names a Knative Service of the manifests whose function routes a POST
// of its path, and carries the audience the functions accept.
func checkDestination(t *testing.T, m manifests, fns map[string]builtFunction, what string, dest destination, service, wantPattern string) {
	t.Helper()
	require.Equal(t, "serving.knative.dev/v1", dest.Ref.APIVersion, what)
	require.Equal(t, "Service", dest.Ref.Kind, what)
	require.Equal(t, service, dest.Ref.Name, what)
	svc, ok := m.find("Service", dest.Ref.Name)
	require.True(t, ok, "%s: Service %s is not in the manifests", what, dest.Ref.Name)
	var image string
	for _, c := range m.containers(t) {
		if c.owner.name() == svc.name() && c.owner.kind() == "Service" {
			image = c.spec.Image
		}
	}
	fn, ok := fns[image]
	require.True(t, ok, "%s: no function for %s", what, image)
	require.Equal(t, wantPattern, routed(fn.mux, http.MethodPost, dest.URI), "%s: POST %s", what, dest.URI)

	var cm corev1.ConfigMap
	authCM, ok := m.find("ConfigMap", "auditstore-auth")
	require.True(t, ok)
	require.NoError(t, authCM.decode(&cm))
	require.Contains(t, strings.Split(cm.Data["AUTH_AUDIENCES"], ","), dest.Audience,
		"%s: the OIDC token is issued for an audience the functions accept", what)
}

// The broker retries with exponential backoff and dead-letters to auditstore's own sink;
// one Trigger per producing service filters on its event types and subscribes the write
// function; the PingSource alternative posts to the maintain function's schedule route.
func TestManifests_Eventing(t *testing.T) {
	t.Parallel()
	m := load(t)
	fns := functions(t)

	brokers := m.of("Broker")
	require.Len(t, brokers, 1)
	var broker struct {
		Spec struct {
			Delivery struct {
				Retry          int         `json:"retry"`
				BackoffPolicy  string      `json:"backoffPolicy"`
				BackoffDelay   string      `json:"backoffDelay"`
				DeadLetterSink destination `json:"deadLetterSink"`
			} `json:"delivery"`
		} `json:"spec"`
	}
	require.NoError(t, brokers[0].decodeLoose(&broker))
	d := broker.Spec.Delivery
	require.GreaterOrEqual(t, d.Retry, 5)
	require.Equal(t, "exponential", d.BackoffPolicy)
	require.NotEmpty(t, d.BackoffDelay)
	checkDestination(t, m, fns, "the dead-letter sink", d.DeadLetterSink, "auditstore-write", "POST /api/v1/deadletter")

	triggers := m.of("Trigger")
	require.GreaterOrEqual(t, len(triggers), 3, "gateway, aianalysis, workflow at least")
	var producers []string
	writers := boundSubjects(t, m, "auditstore-writer")
	for _, tr := range triggers {
		var trigger struct {
			Spec struct {
				Broker  string `json:"broker"`
				Filters []struct {
					Prefix map[string]string `json:"prefix"`
				} `json:"filters"`
				Subscriber destination `json:"subscriber"`
			} `json:"spec"`
		}
		require.NoError(t, tr.decodeLoose(&trigger))
		require.Equal(t, brokers[0].name(), trigger.Spec.Broker, "%s", tr)
		require.Len(t, trigger.Spec.Filters, 1, "%s", tr)
		prefix := trigger.Spec.Filters[0].Prefix["type"]
		require.True(t, strings.HasSuffix(prefix, ".") && len(prefix) > 1, "%s: filters on an event-type prefix such as gateway.", tr)
		producer := strings.TrimSuffix(prefix, ".")
		require.Equal(t, "auditstore-"+producer, tr.name(), "%s: named after its producer", tr)
		producers = append(producers, producer)
		checkDestination(t, m, fns, tr.String(), trigger.Spec.Subscriber, "auditstore-write", "POST /{$}")

		// The broker delivers with the Trigger's OIDC identity, which must be a writer.
		sa := tr.name() + "oidc-eventing.knative.dev-trigger"
		require.LessOrEqual(t, len(sa), 63, "%s: Knative hashes longer names; bind the hashed one", tr)
		require.Contains(t, writers, "auditstore/"+sa, "%s: its identity may write", tr)
	}
	for _, want := range []string{"gateway", "aianalysis", "workflow"} {
		require.Contains(t, producers, want)
	}

	pings := m.of("PingSource")
	require.Len(t, pings, 1)
	var ping struct {
		Spec struct {
			Schedule string      `json:"schedule"`
			Sink     destination `json:"sink"`
		} `json:"spec"`
	}
	require.NoError(t, pings[0].decodeLoose(&ping))
	checkDestination(t, m, fns, "the PingSource", ping.Spec.Sink, "auditstore-maintain", "POST /{$}")
	require.Contains(t, boundSubjects(t, m, "auditstore-admin"), "auditstore/"+pings[0].name()+"oidc-sources.knative.dev-pingsource",
		"maintenance is an administrator's right")

	var cron batchv1.CronJob
	cronObj, ok := m.find("CronJob", "auditstore-maintenance")
	require.True(t, ok)
	require.NoError(t, cronObj.decode(&cron))
	require.Equal(t, batchv1.ForbidConcurrent, cron.Spec.ConcurrencyPolicy)
	require.Equal(t, ping.Spec.Schedule, cron.Spec.Schedule, "the two schedules are alternatives of each other")
	require.Equal(t, "ko://"+module+"/jobs/maintain", cron.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image)

	var job batchv1.Job
	jobObj, ok := m.find("Job", "auditstore-migrate")
	require.True(t, ok)
	require.NoError(t, jobObj.decode(&job))
	require.Equal(t, "ko://"+module+"/jobs/migrate", job.Spec.Template.Spec.Containers[0].Image)
}

// decodeLoose decodes the parts of an object a test reads (the schema test checks the rest).
func (o object) decodeLoose(v any) error {
	b, err := json.Marshal(o.raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// boundSubjects lists "namespace/name" of the service accounts bound to a ClusterRole.
func boundSubjects(t *testing.T, m manifests, role string) []string {
	t.Helper()
	var out []string
	for _, o := range m.of("ClusterRoleBinding") {
		var b rbacv1.ClusterRoleBinding
		require.NoError(t, o.decode(&b))
		if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != role {
			continue
		}
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind {
				out = append(out, s.Namespace+"/"+s.Name)
			}
		}
	}
	return out
}

// The ClusterRoles grant exactly the verbs the Kubernetes authorizer asks for on the resource
// it asks about; the functions may ask (system:auth-delegator); the jobs get no token.
func TestManifests_RBAC(t *testing.T) {
	t.Parallel()
	m := load(t)
	sensitive := auth.Resource + "/" + auth.SensitiveSubresource
	want := map[string]map[string][]string{
		"auditstore-writer":           {auth.Resource: {auth.Write.Verb()}},
		"auditstore-reader":           {auth.Resource: {auth.Read.Verb()}},
		"auditstore-sensitive-reader": {auth.Resource: {auth.Read.Verb()}, sensitive: {"get"}},
		"auditstore-admin":            {auth.Resource: {auth.Write.Verb(), auth.Read.Verb(), auth.Admin.Verb()}, sensitive: {"get"}},
	}
	for name, byResource := range want {
		o, ok := m.find("ClusterRole", name)
		require.True(t, ok, name)
		var role rbacv1.ClusterRole
		require.NoError(t, o.decode(&role))
		got := map[string][]string{}
		for _, r := range role.Rules {
			require.Equal(t, []string{auth.ResourceGroup}, r.APIGroups, name)
			require.Len(t, r.Resources, 1, name)
			got[r.Resources[0]] = append(got[r.Resources[0]], r.Verbs...)
		}
		require.Len(t, got, len(byResource), name)
		for res, verbs := range byResource {
			require.ElementsMatch(t, verbs, got[res], "%s %s", name, res)
		}
	}

	delegators := boundSubjects(t, m, "system:auth-delegator")
	for _, o := range m.of("Service") {
		sa := o.raw["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["serviceAccountName"].(string)
		_, ok := m.find("ServiceAccount", sa)
		require.True(t, ok, "%s: ServiceAccount %s", o, sa)
		require.Contains(t, delegators, "auditstore/"+sa, "%s: AUTH_MODE=kubernetes makes TokenReviews and SubjectAccessReviews", o)
	}
	for _, c := range m.containers(t) {
		if c.knative {
			continue
		}
		var pod corev1.PodSpec
		switch c.owner.kind() {
		case "Job":
			var job batchv1.Job
			require.NoError(t, c.owner.decode(&job))
			pod = job.Spec.Template.Spec
		case "CronJob":
			var cj batchv1.CronJob
			require.NoError(t, c.owner.decode(&cj))
			pod = cj.Spec.JobTemplate.Spec.Template.Spec
		}
		require.False(t, deref(pod.AutomountServiceAccountToken), "%s: a job talks to PostgreSQL only", c.owner)
		require.Equal(t, true, deref(pod.SecurityContext.RunAsNonRoot), "%s", c.owner)
		require.False(t, slices.Contains(delegators, "auditstore/"+pod.ServiceAccountName), "%s", c.owner)
	}
}

// routePattern is a route as a handler registers it: mux.Handle("GET /path", ...).
var routePattern = regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/[^"]*)"`)

// params are a route's path parameters, whatever their names.
var params = regexp.MustCompile(`\{[^}]+\}`)

// The OpenAPI document lists every route the functions serve (admin ones included), each
// of its operations is routed by a function, and it refers to nothing outside itself.
func TestOpenAPI_ListsEveryRoute(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	readYAML(t, "../shared/web/openapi/openapi.yaml", &doc)
	documented := map[string]bool{}
	fns := functions(t)
	for path, ops := range doc.Paths {
		for method := range ops {
			op := strings.ToUpper(method) + " " + path
			documented[params.ReplaceAllString(op, "{}")] = true
			concrete := params.ReplaceAllString(path, "x")
			served := false
			for _, fn := range fns {
				if p := routed(fn.mux, strings.ToUpper(method), concrete); p != "/" {
					served = true
				}
			}
			require.True(t, served, "%s is documented but no function serves it", op)
		}
	}

	// Every route registered in the functions' and shared/web's code (tests aside).
	var files []string
	for _, root := range []string{"../functions", "../shared/web"} {
		require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
				files = append(files, path)
			}
			return err
		}))
	}
	var registered []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range routePattern.FindAllStringSubmatch(string(b), -1) {
			registered = append(registered, m[1]+" "+strings.TrimSuffix(m[2], "{$}"))
		}
	}
	registered = append(registered, "GET "+ui.Path)
	require.Greater(t, len(registered), 30)
	for _, r := range registered {
		if strings.HasPrefix(r, "GET /debug/pprof") {
			continue // PPROF_ADDR's own listener, never PORT
		}
		require.True(t, documented[params.ReplaceAllString(r, "{}")], "%s is served but not in the OpenAPI document", r)
	}

	raw, err := os.ReadFile("../shared/web/openapi/openapi.yaml")
	require.NoError(t, err)
	for _, ref := range regexp.MustCompile(`\$ref: *['"]?([^'"\s]+)`).FindAllStringSubmatch(string(raw), -1) {
		require.True(t, strings.HasPrefix(ref[1], "#/"), "$ref %s points outside the document", ref[1])
	}
	require.NotContains(t, string(raw), "CONTRACT", "the document describes the API itself")
}
