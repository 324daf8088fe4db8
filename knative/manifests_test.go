// Package knative_test validates auditstore's deployment offline: every manifest against the
// schema of its kind, and against the code it deploys (images, configuration, probes, routes,
// rights).
package knative_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/kelseyhightower/envconfig"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
)

// module is this repository's Go module path: ko:// images name its main packages.
const module = "github.com/auditstore/auditstore"

// object is one manifest document.
type object struct {
	file string
	raw  map[string]any
}

func (o object) apiVersion() string { s, _ := o.raw["apiVersion"].(string); return s }
func (o object) kind() string       { s, _ := o.raw["kind"].(string); return s }
func (o object) name() string {
	md, _ := o.raw["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}
func (o object) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.file, o.kind(), o.name(), o.apiVersion())
}

// decode decodes the object strictly (unknown fields are an error) into v through JSON, as the
// API server reads it.
func (o object) decode(v any) error {
	b, err := json.Marshal(o.raw)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// readObjects reads every YAML document of the files (kustomize's own files excluded).
func readObjects(t *testing.T, files ...string) []object {
	t.Helper()
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if doc == nil {
				continue
			}
			// Through JSON, so numbers and maps have the types the schema validator and the
			// typed decoders expect.
			b, err := json.Marshal(doc)
			require.NoError(t, err, f)
			var raw map[string]any
			require.NoError(t, json.Unmarshal(b, &raw), f)
			out = append(out, object{file: f, raw: raw})
		}
	}
	return out
}

// manifests are every object the deployment can apply: the kustomization's resources, the
// components' resources, and the Secret example.
type manifests struct {
	all []object
}

func load(t *testing.T) manifests {
	t.Helper()
	var k struct {
		Resources []string `yaml:"resources"`
	}
	readYAML(t, "kustomization.yaml", &k)
	files := slices.Clone(k.Resources)
	components, err := filepath.Glob("components/*/kustomization.yaml")
	require.NoError(t, err)
	for _, c := range components {
		var ck struct {
			Resources []string `yaml:"resources"`
		}
		readYAML(t, c, &ck)
		for _, r := range ck.Resources {
			files = append(files, filepath.Join(filepath.Dir(c), r))
		}
	}
	files = append(files, "secret.example.yaml")
	return manifests{all: readObjects(t, files...)}
}

// readYAML decodes file into v; strictly (every field of the file known to v) when strict.
func readYAML(t *testing.T, file string, v any, strict ...bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(len(strict) > 0 && strict[0])
	require.NoError(t, dec.Decode(v), file)
}

func (m manifests) of(kind string) []object {
	var out []object
	for _, o := range m.all {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m manifests) find(kind, name string) (object, bool) {
	for _, o := range m.all {
		if o.kind() == kind && o.name() == name {
			return o, true
		}
	}
	return object{}, false
}

// The kustomization applies every manifest under deploy/, each once, and its components'
// patches name objects that exist.
func TestKustomization(t *testing.T) {
	t.Parallel()
	var k struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Namespace  string `yaml:"namespace"`
		Labels     []struct {
			Pairs map[string]string `yaml:"pairs"`
		} `yaml:"labels"`
		Resources  []string `yaml:"resources"`
		Components []string `yaml:"components"`
	}
	readYAML(t, "kustomization.yaml", &k, true)
	require.Equal(t, []string{"components/knative-defaults"}, k.Components,
		"the default delivery profile works on Knative Eventing as installed (no sender identity)")
	require.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
	require.Equal(t, "Kustomization", k.Kind)
	require.Equal(t, "auditstore", k.Namespace)
	deploy, err := filepath.Glob("deploy/*.yaml")
	require.NoError(t, err)
	require.ElementsMatch(t, deploy, k.Resources, "every file under deploy/ is a resource, once")

	m := load(t)
	for _, o := range m.all {
		if o.kind() == "Namespace" || o.kind() == "ClusterRole" || o.kind() == "ClusterRoleBinding" {
			continue
		}
		md := o.raw["metadata"].(map[string]any)
		require.Equal(t, "auditstore", md["namespace"], "%s names its namespace, so `ko apply -f` works without kustomize too", o)
	}

	c := readComponent(t, "pingsource")
	require.Len(t, c.Patches, 1)
	var patch struct {
		Patch    string `yaml:"$patch"`
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(c.Patches[0].Patch), &patch))
	require.Equal(t, "delete", patch.Patch)
	_, ok := m.find(patch.Kind, patch.Metadata.Name)
	require.True(t, ok, "the PingSource component removes the CronJob it replaces: %s/%s", patch.Kind, patch.Metadata.Name)
}

// component is the kustomization of a kustomize Component under components/.
type component struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Resources  []string `yaml:"resources"`
	Patches    []struct {
		Patch string `yaml:"patch"`
	} `yaml:"patches"`
}

// readComponent reads components/<name>/kustomization.yaml strictly and checks it is a Component.
func readComponent(t *testing.T, name string) component {
	t.Helper()
	var c component
	readYAML(t, filepath.Join("components", name, "kustomization.yaml"), &c, true)
	require.Equal(t, "Component", c.Kind, name)
	require.Equal(t, "kustomize.config.k8s.io/v1alpha1", c.APIVersion, name)
	return c
}

// Knative kinds validate against their CRD's openAPIV3Schema (as the API server would, with
// unknown fields refused where the schema does not preserve them); Kubernetes kinds decode
// strictly into the k8s.io/api types. Every object has a valid name.
func TestManifests_Schemas(t *testing.T) {
	t.Parallel()
	schemas := crdSchemas(t)
	m := load(t)
	require.NotEmpty(t, m.all)
	for _, o := range m.all {
		checkSchema(t, schemas, o)
	}
}

// checkSchema validates one object: its metadata, and the object against its CRD's schema or
// by strict decoding into its Kubernetes type.
func checkSchema(t *testing.T, schemas map[string]*jsonschema.Schema, o object) {
	t.Helper()
	var meta metav1.ObjectMeta
	md, err := json.Marshal(o.raw["metadata"])
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(md))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&meta), "%s: metadata", o)
	require.Empty(t, validation.IsDNS1123Subdomain(meta.Name), "%s: name", o)
	for key, value := range meta.Labels {
		require.Empty(t, validation.IsQualifiedName(key), "%s: label %s", o, key)
		require.Empty(t, validation.IsValidLabelValue(value), "%s: label %s", o, key)
	}

	gvk := o.apiVersion() + "/" + o.kind()
	if sch, ok := schemas[gvk]; ok {
		b, err := json.Marshal(o.raw)
		require.NoError(t, err)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		require.NoError(t, err)
		require.NoError(t, sch.Validate(inst), "%s against its CRD schema", o)
		return
	}
	// The scheme client-go decodes API responses with knows every Kubernetes kind's type, and
	// the Prometheus Operator's kinds are added to it (monitoring.coreos.com).
	typed, err := scheme.Scheme.New(schema.FromAPIVersionAndKind(o.apiVersion(), o.kind()))
	require.NoError(t, err, "%s: no schema or type to check this kind against", o)
	require.NoError(t, o.decode(typed), "%s: strict decoding", o)
}

// crdSchemas compiles the openAPIV3Schema of each vendored CRD, keyed by apiVersion/kind.
func crdSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob("testdata/crds/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 6)
	out := map[string]*jsonschema.Schema{}
	c := jsonschema.NewCompiler()
	for _, f := range files {
		for _, crd := range readObjects(t, f) {
			spec := crd.raw["spec"].(map[string]any)
			group := spec["group"].(string)
			kind := spec["names"].(map[string]any)["kind"].(string)
			for _, v := range spec["versions"].([]any) {
				v := v.(map[string]any)
				if v["served"] != true {
					continue
				}
				schema := v["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
				// Every object has these, whether its CRD's schema says so or not.
				props, _ := schema["properties"].(map[string]any)
				if props == nil {
					props = map[string]any{}
					schema["properties"] = props
				}
				for name, typ := range map[string]string{"apiVersion": "string", "kind": "string", "metadata": "object"} {
					if _, ok := props[name]; !ok {
						props[name] = map[string]any{"type": typ}
					}
				}
				strict(schema)
				url := fmt.Sprintf("file:///%s/%s/%s.json", group, v["name"], kind)
				b, err := json.Marshal(schema)
				require.NoError(t, err)
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
				require.NoError(t, err)
				require.NoError(t, c.AddResource(url, doc))
				sch, err := c.Compile(url)
				require.NoError(t, err, url)
				out[group+"/"+v["name"].(string)+"/"+kind] = sch
			}
		}
	}
	return out
}

// strict makes a structural schema refuse unknown fields, as the API server does with strict
// field validation: every object schema with properties, unless it preserves unknown fields or
// says what other properties may be.
func strict(node any) {
	switch n := node.(type) {
	case map[string]any:
		if _, ok := n["properties"]; ok && n["x-kubernetes-preserve-unknown-fields"] != true {
			if _, has := n["additionalProperties"]; !has {
				n["additionalProperties"] = false
			}
		}
		for _, v := range n {
			strict(v)
		}
	case []any:
		for _, v := range n {
			strict(v)
		}
	}
}

// The strict schemas do refuse what the API server would: a misspelt field, a wrong type.
func TestManifests_SchemaCatchesMistakes(t *testing.T) {
	t.Parallel()
	schemas := crdSchemas(t)
	svc, ok := load(t).find("Service", "auditstore-write")
	require.True(t, ok)
	check := func(mutate func(spec map[string]any)) error {
		return validateChanged(t, schemas["serving.knative.dev/v1/Service"], svc, func(o map[string]any) {
			mutate(o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any))
		})
	}
	require.NoError(t, check(func(map[string]any) {}))
	require.Error(t, check(func(s map[string]any) { s["timeoutSecond"] = 30 }), "a misspelt field")
	require.Error(t, check(func(s map[string]any) { s["containerConcurrency"] = "lots" }), "a wrong type")
	require.Error(t, check(func(s map[string]any) {
		s["containers"].([]any)[0].(map[string]any)["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)["paht"] = "/x"
	}), "a misspelt probe field")
}

// validateChanged validates a copy of o, changed by change, against sch.
func validateChanged(t *testing.T, sch *jsonschema.Schema, o object, change func(map[string]any)) error {
	t.Helper()
	b, err := json.Marshal(o.raw)
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c))
	change(c)
	b, err = json.Marshal(c)
	require.NoError(t, err)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return sch.Validate(inst)
}

// container is a container of a manifest with what it is given.
type container struct {
	owner object
	spec  corev1.Container
	// knative: a Knative Service's container (Knative sets PORT to its containerPort).
	knative bool
}

func (m manifests) containers(t *testing.T) []container {
	t.Helper()
	var out []container
	for _, o := range m.all {
		var pod *corev1.PodSpec
		switch o.kind() {
		case "Service":
			var svc struct {
				Spec struct {
					Template struct {
						Spec corev1.PodSpec `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			}
			b, err := json.Marshal(o.raw)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &svc), "%s", o)
			pod = &svc.Spec.Template.Spec
		case "Job":
			var job batchv1.Job
			require.NoError(t, o.decode(&job))
			pod = &job.Spec.Template.Spec
		case "CronJob":
			var cj batchv1.CronJob
			require.NoError(t, o.decode(&cj))
			pod = &cj.Spec.JobTemplate.Spec.Template.Spec
		default:
			continue
		}
		require.NotEmpty(t, pod.Containers, "%s", o)
		for _, c := range pod.Containers {
			out = append(out, container{owner: o, spec: c, knative: o.kind() == "Service"})
		}
	}
	return out
}

// Every image is a ko:// import path of a main package of this module, and every container
// runs as non-root, without privilege escalation, on a read-only root filesystem.
func TestManifests_Images(t *testing.T) {
	t.Parallel()
	cs := load(t).containers(t)
	require.Len(t, cs, 6, "write, query, maintain, the maintenance job, the migration job, the kubernaut component's standalone process")
	for _, c := range cs {
		pkg, ok := strings.CutPrefix(c.spec.Image, "ko://")
		require.True(t, ok, "%s: image %q is not a ko:// import path", c.owner, c.spec.Image)
		rel, ok := strings.CutPrefix(pkg, module+"/")
		require.True(t, ok, "%s: %s is not a package of %s", c.owner, pkg, module)
		name, hasMain := packageMain(t, filepath.Join("..", filepath.FromSlash(rel)))
		require.Equal(t, "main", name, "%s: %s is not a main package", c.owner, pkg)
		require.True(t, hasMain, "%s: %s has no func main", c.owner, pkg)

		sc := c.spec.SecurityContext
		require.NotNil(t, sc, "%s", c.owner)
		require.Equal(t, false, deref(sc.AllowPrivilegeEscalation), "%s", c.owner)
		require.Equal(t, true, deref(sc.ReadOnlyRootFilesystem), "%s", c.owner)
		require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s", c.owner)
		if c.knative {
			require.Equal(t, true, deref(sc.RunAsNonRoot), "%s", c.owner)
			require.NotZero(t, deref(sc.RunAsUser), "%s", c.owner)
			require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type, "%s", c.owner)
		}
		require.False(t, c.spec.Resources.Requests.Memory().IsZero(), "%s: memory request", c.owner)
		require.False(t, c.spec.Resources.Limits.Memory().IsZero(), "%s: memory limit", c.owner)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// packageMain parses the package in dir: its name, and whether it declares func main.
func packageMain(t *testing.T, dir string) (string, bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	name, hasMain := "", false
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		name = file.Name.Name
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "main" {
				hasMain = true
			}
		}
	}
	return name, hasMain
}

// configTypes are the types a command's config struct may hold, by the name its source gives
// them. A command that starts using another one fails TestManifests_Env until it is added.
var configTypes = map[string]reflect.Type{
	"string":                  reflect.TypeFor[string](),
	"bool":                    reflect.TypeFor[bool](),
	"int":                     reflect.TypeFor[int](),
	"int32":                   reflect.TypeFor[int32](),
	"int64":                   reflect.TypeFor[int64](),
	"float64":                 reflect.TypeFor[float64](),
	"time.Duration":           reflect.TypeFor[time.Duration](),
	"web.ServeConfig":         reflect.TypeFor[web.ServeConfig](),
	"auth.Config":             reflect.TypeFor[auth.Config](),
	"function.Config":         reflect.TypeFor[function.Config](),
	"write.Config":            reflect.TypeFor[write.Config](),
	"query.Config":            reflect.TypeFor[query.Config](),
	"lifecycle.ServiceConfig": reflect.TypeFor[lifecycle.ServiceConfig](),
}

// commandConfig rebuilds the config struct a command's main reads with envconfig (type
// config), from its source: the fields, their types and tags, as envconfig sees them.
func commandConfig(t *testing.T, dir string) reflect.Type {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		for _, d := range file.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if ts.Name.Name != "config" || !ok {
					continue
				}
				var fields []reflect.StructField
				for _, fld := range st.Fields.List {
					typeName := exprString(fld.Type)
					typ, known := configTypes[typeName]
					require.True(t, known, "%s: config field type %s is not in configTypes", dir, typeName)
					tag := ""
					if fld.Tag != nil {
						tag, err = strconv.Unquote(fld.Tag.Value)
						require.NoError(t, err)
					}
					names := fld.Names
					if len(names) == 0 { // embedded
						fields = append(fields, reflect.StructField{Name: typ.Name(), Type: typ, Tag: reflect.StructTag(tag), Anonymous: true})
						continue
					}
					for _, n := range names {
						fields = append(fields, reflect.StructField{Name: n.Name, Type: typ, Tag: reflect.StructTag(tag)})
					}
				}
				return reflect.StructOf(fields)
			}
		}
	}
	t.Fatalf("%s: no type config struct", dir)
	return nil
}

func exprString(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return exprString(x.X) + "." + x.Sel.Name
	}
	return fmt.Sprintf("%T", e)
}

// envVar is one variable envconfig reads for a config.
type envVar struct {
	names    []string // the names envconfig looks up: its key, and the alternative name of the tag
	required bool
}

// envVars lists the variables envconfig reads into a value of typ, by envconfig itself.
func envVars(t *testing.T, typ reflect.Type) []envVar {
	t.Helper()
	tmpl := template.Must(template.New("vars").Parse(`{{range .}}{{.Key}}|{{.Alt}}|{{.Tags.Get "required"}}
{{end}}`))
	var out bytes.Buffer
	require.NoError(t, envconfig.Usaget("", reflect.New(typ).Interface(), &out, tmpl))
	var vars []envVar
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		parts := strings.Split(line, "|")
		require.Len(t, parts, 3, line)
		v := envVar{names: []string{parts[0]}, required: parts[2] == "true"}
		if parts[1] != "" && parts[1] != parts[0] {
			v.names = append(v.names, parts[1])
		}
		vars = append(vars, v)
	}
	return vars
}

// Every variable a manifest gives a container (directly or from a ConfigMap) is one its
// command reads, every required one is given, PORT is left to Knative, the values parse as the
// command's config, and every Secret key referred to exists.
func TestManifests_Env(t *testing.T) {
	m := load(t)
	secrets := map[string]corev1.Secret{}
	for _, o := range m.of("Secret") {
		var sec corev1.Secret
		require.NoError(t, o.decode(&sec))
		secrets[sec.Name] = sec
	}
	require.Contains(t, secrets, "auditstore-database", "secret.example.yaml shows the Secrets' keys")

	for _, c := range m.containers(t) {
		t.Run(c.owner.name(), func(t *testing.T) {
			rel := strings.TrimPrefix(c.spec.Image, "ko://"+module+"/")
			typ := commandConfig(t, filepath.Join("..", filepath.FromSlash(rel)))
			vars := envVars(t, typ)
			known := map[string]bool{}
			for _, v := range vars {
				for _, n := range v.names {
					known[n] = true
				}
			}

			given := map[string]string{}
			for _, ef := range c.spec.EnvFrom {
				require.NotNil(t, ef.ConfigMapRef, "%s: envFrom only from ConfigMaps", c.owner)
				cmObj, ok := m.find("ConfigMap", ef.ConfigMapRef.Name)
				require.True(t, ok, "%s: ConfigMap %s is not in the manifests", c.owner, ef.ConfigMapRef.Name)
				var cm corev1.ConfigMap
				require.NoError(t, cmObj.decode(&cm))
				for k, v := range cm.Data {
					_, dup := given[k]
					require.False(t, dup, "%s: %s is given twice", c.owner, k)
					given[k] = v
				}
			}
			for _, e := range c.spec.Env {
				_, dup := given[e.Name]
				require.False(t, dup, "%s: %s is given twice", c.owner, e.Name)
				switch {
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					ref := e.ValueFrom.SecretKeyRef
					sec, ok := secrets[ref.Name]
					require.True(t, ok, "%s: %s reads Secret %s, which secret.example.yaml does not show", c.owner, e.Name, ref.Name)
					v, ok := sec.StringData[ref.Key]
					require.True(t, ok, "%s: %s reads key %s, which the Secret does not have", c.owner, e.Name, ref.Key)
					given[e.Name] = v
				case e.ValueFrom != nil:
					t.Fatalf("%s: %s: only Secret references are used", c.owner, e.Name)
				default:
					given[e.Name] = e.Value
				}
			}
			for name, v := range given {
				if name == "GOMEMLIMIT" {
					// Read by the Go runtime: a soft limit, so it must sit below the
					// container's hard one.
					lim, ok := c.spec.Resources.Limits[corev1.ResourceMemory]
					require.True(t, ok, "%s sets GOMEMLIMIT without a memory limit", c.owner)
					mib, ok := strings.CutSuffix(v, "MiB")
					require.True(t, ok, "%s: GOMEMLIMIT %q is not in MiB", c.owner, v)
					n, err := strconv.ParseInt(mib, 10, 64)
					require.NoError(t, err)
					require.Less(t, n<<20, lim.Value(), "%s: GOMEMLIMIT %s is not below the container's limit %s", c.owner, v, lim.String())
					require.Greater(t, n<<20, lim.Value()*8/10, "%s: GOMEMLIMIT %s leaves more than a fifth of the limit %s unused", c.owner, v, lim.String())
					continue
				}
				require.True(t, known[name], "%s sets %s, which %s does not read", c.owner, name, rel)
			}
			for _, v := range vars {
				if !v.required {
					continue
				}
				set := slices.ContainsFunc(v.names, func(n string) bool { _, ok := given[n]; return ok })
				require.True(t, set, "%s does not set %v, which %s requires", c.owner, v.names, rel)
			}
			if c.knative {
				_, setsPort := given["PORT"]
				require.False(t, setsPort, "%s: Knative sets PORT (to the containerPort)", c.owner)
			}

			// The values parse as the command's configuration.
			for _, v := range vars {
				for _, n := range v.names {
					t.Setenv(n, "")
					os.Unsetenv(n)
				}
			}
			for k, v := range given {
				t.Setenv(k, v)
			}
			require.NoError(t, envconfig.Process("", reflect.New(typ).Interface()), "%s", c.owner)
		})
	}
}

// Each function's probes ask its real health paths on the port Knative gives it (its
// containerPort, as PORT), and each function serves them.
func TestManifests_Probes(t *testing.T) {
	t.Parallel()
	m := load(t)
	servers := functionServers(t)
	for _, c := range m.containers(t) {
		if !c.knative {
			require.Nil(t, c.spec.ReadinessProbe, "%s: a job has no probes", c.owner)
			continue
		}
		require.Len(t, c.spec.Ports, 1, "%s", c.owner)
		port := c.spec.Ports[0].ContainerPort
		require.Equal(t, "http1", c.spec.Ports[0].Name, "%s: HTTP/1 to the function", c.owner)
		srv, ok := servers[c.spec.Image]
		require.True(t, ok, "%s: no function for %s", c.owner, c.spec.Image)
		for want, p := range map[string]*corev1.Probe{"/health/readiness": c.spec.ReadinessProbe, "/health/liveness": c.spec.LivenessProbe} {
			require.NotNil(t, p, "%s: %s probe", c.owner, want)
			require.NotNil(t, p.HTTPGet, "%s", c.owner)
			require.Equal(t, want, p.HTTPGet.Path, "%s", c.owner)
			require.EqualValues(t, port, p.HTTPGet.Port.IntValue(), "%s: the probe asks the port the function listens on", c.owner)
			resp, err := http.Get(srv.URL + p.HTTPGet.Path)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", c.owner, p.HTTPGet.Path)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s: %s is the function's own answer", c.owner, p.HTTPGet.Path)
		}
	}
}

// functionServers serves each function's routes as its command wires them, by ko:// image.
func functionServers(t *testing.T) map[string]*httptest.Server {
	t.Helper()
	out := map[string]*httptest.Server{}
	serve := func(image string, mux *http.ServeMux) {
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		out[image] = srv
	}
	for image, fn := range functions(t) {
		serve(image, fn.mux)
	}
	return out
}

// The ports Knative gives every container of a Service are declared; nothing but Services
// listen.
func TestManifests_ServiceShape(t *testing.T) {
	t.Parallel()
	for _, o := range load(t).of("Service") {
		spec := o.raw["spec"].(map[string]any)["template"].(map[string]any)
		ann := spec["metadata"].(map[string]any)["annotations"].(map[string]any)
		for _, a := range []string{"autoscaling.knative.dev/metric", "autoscaling.knative.dev/target", "autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/max-scale"} {
			require.Contains(t, ann, a, "%s: autoscaling is chosen, not left to defaults", o)
		}
		minScale, err := strconv.Atoi(ann["autoscaling.knative.dev/min-scale"].(string))
		require.NoError(t, err)
		maxScale, err := strconv.Atoi(ann["autoscaling.knative.dev/max-scale"].(string))
		require.NoError(t, err)
		require.LessOrEqual(t, minScale, maxScale, "%s", o)
		require.Positive(t, maxScale, "%s: bounded, so PostgreSQL's connections are", o)
		ps := spec["spec"].(map[string]any)
		require.Contains(t, ps, "timeoutSeconds", "%s", o)
		require.Contains(t, ps, "containerConcurrency", "%s", o)
		require.LessOrEqual(t, ps["timeoutSeconds"].(float64), 600.0, "%s: Knative's default max-revision-timeout-seconds", o)
	}
	write, ok := load(t).find("Service", "auditstore-write")
	require.True(t, ok)
	ann := write.raw["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"].(map[string]any)
	require.NotEqual(t, "0", ann["autoscaling.knative.dev/min-scale"], "no cold start on the audit path")
}

// The cnpg component's Cluster replicates synchronously (a standby must have flushed every
// acknowledged commit, and writes wait while none can), gives the functions the login roles
// their URLs name with the group roles they need, and the URLs go to its primary through the
// -rw Service, read-write only. Its schema (testdata/crds) refuses a misspelt or mistyped field.
func TestCNPGComponent(t *testing.T) {
	t.Parallel()
	c := readComponent(t, "cnpg")
	m := load(t)
	obj, ok := m.find("Cluster", "auditstore-db")
	require.True(t, ok)

	var cluster struct {
		Spec struct {
			Instances  int `json:"instances"`
			PostgreSQL struct {
				Parameters  map[string]string `json:"parameters"`
				Synchronous struct {
					Method         string `json:"method"`
					Number         int    `json:"number"`
					DataDurability string `json:"dataDurability"`
				} `json:"synchronous"`
			} `json:"postgresql"`
			Managed struct {
				Roles []struct {
					Name    string   `json:"name"`
					Login   bool     `json:"login"`
					InRoles []string `json:"inRoles"`
				} `json:"roles"`
			} `json:"managed"`
		} `json:"spec"`
	}
	b, err := json.Marshal(obj.raw)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cluster))
	sync := cluster.Spec.PostgreSQL.Synchronous
	require.Contains(t, []string{"any", "first"}, sync.Method)
	require.GreaterOrEqual(t, sync.Number, 1, "a standby flushes every acknowledged commit")
	require.Less(t, sync.Number, cluster.Spec.Instances, "enough standbys to be synchronous with")
	require.Equal(t, "required", sync.DataDurability, "no acknowledgement on the primary alone")
	require.Equal(t, "on", cluster.Spec.PostgreSQL.Parameters["synchronous_commit"])
	roles := map[string][]string{}
	for _, r := range cluster.Spec.Managed.Roles {
		require.True(t, r.Login, r.Name)
		roles[r.Name] = r.InRoles
	}
	for role, groups := range map[string][]string{
		"auditstore_write":    {"auditstore_writer"},
		"auditstore_query":    {"auditstore_reader", "auditstore_writer"},
		"auditstore_maintain": {"auditstore_maintainer", "pg_read_all_stats"},
	} {
		require.Subset(t, roles[role], groups, role)
	}

	// Its Secret example has the keys of the deployment's, every URL names a role the Cluster
	// manages and goes to its -rw Service, read-write only, except the query function's
	// replica, its -ro Service.
	base, ok := m.find("Secret", "auditstore-database")
	require.True(t, ok)
	var want, got corev1.Secret
	require.NoError(t, base.decode(&want))
	examples := readObjects(t, "components/cnpg/secret.example.yaml")
	require.Len(t, examples, 1)
	require.NoError(t, examples[0].decode(&got))
	require.ElementsMatch(t, slices.Collect(maps.Keys(want.StringData)), slices.Collect(maps.Keys(got.StringData)))
	for key, v := range got.StringData {
		if !strings.HasSuffix(key, "-url") {
			continue
		}
		u, err := url.Parse(v)
		require.NoError(t, err, key)
		require.Contains(t, roles, u.User.Username(), "%s: a role the Cluster manages", key)
		if key == "replica-url" {
			// The query function's reads (QUERY_DATABASE_URL) go to the standbys.
			require.Equal(t, "auditstore-db-ro.auditstore.svc:5432", u.Host, key)
			require.Empty(t, u.Query().Get("target_session_attrs"), key)
			continue
		}
		require.Equal(t, "auditstore-db-rw.auditstore.svc:5432", u.Host, key)
		require.Equal(t, "read-write", u.Query().Get("target_session_attrs"), key)
	}

	// The component's patch names a ConfigMap of the deployment and variables it already sets.
	require.Len(t, c.Patches, 1)
	var patch struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data map[string]string `yaml:"data"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(c.Patches[0].Patch), &patch))
	require.Equal(t, "ConfigMap", patch.Kind)
	cmObj, ok := m.find("ConfigMap", patch.Metadata.Name)
	require.True(t, ok, patch.Metadata.Name)
	var cm corev1.ConfigMap
	require.NoError(t, cmObj.decode(&cm))
	for k := range patch.Data {
		require.Contains(t, cm.Data, k)
	}

	schemas := crdSchemas(t)
	check := func(mutate func(spec map[string]any)) error {
		return validateChanged(t, schemas["postgresql.cnpg.io/v1/Cluster"], obj, func(o map[string]any) { mutate(o["spec"].(map[string]any)) })
	}
	pg := func(s map[string]any) map[string]any { return s["postgresql"].(map[string]any) }
	require.NoError(t, check(func(map[string]any) {}))
	require.Error(t, check(func(s map[string]any) { pg(s)["synchronus"] = pg(s)["synchronous"] }), "a misspelt field")
	require.Error(t, check(func(s map[string]any) { pg(s)["synchronous"].(map[string]any)["number"] = "1" }), "a wrong type")
	require.Error(t, check(func(s map[string]any) { pg(s)["synchronous"].(map[string]any)["method"] = "all" }), "a value outside the enum")
}
