package audit_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the schema pages in schemas/ from the schemas")

// schemaNames are every schema file: the envelope and each registered service.
func schemaNames(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("schemas/*.schema.json")
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".schema.json"))
	}
	require.Equal(t, append([]string{"envelope"}, audit.Services()...), sortEnvelopeFirst(names))
	return names
}

func sortEnvelopeFirst(names []string) []string {
	out := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "envelope" })
	return append([]string{"envelope"}, out...)
}

// compile compiles the schema files with a compiler of the test's own, independently of the
// package's registry: what a consumer of the published schemas would do.
func compile(t *testing.T, name, fragment string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, n := range []string{name} {
		b, ok := audit.Schema(n)
		require.True(t, ok, n)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		require.NoError(t, err)
		require.NoError(t, c.AddResource(audit.SchemaBaseURL+n+".schema.json", doc))
	}
	sch, err := c.Compile(audit.SchemaBaseURL + name + ".schema.json" + fragment)
	require.NoError(t, err)
	return sch
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return v
}

// TestSchemas_Valid checks that every schema is a draft 2020-12 schema whose $id is its own
// address, and that its examples are valid (payload examples in the complete form).
func TestSchemas_Valid(t *testing.T) {
	t.Parallel()
	for _, name := range schemaNames(t) {
		b, _ := audit.Schema(name)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(b, &doc))
		require.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc["$schema"], name)
		require.Equal(t, audit.SchemaBaseURL+name+".schema.json", doc["$id"], name)
		fragment := "#/$defs/complete"
		if name == "envelope" {
			fragment = ""
		}
		sch := compile(t, name, fragment)
		examples, _ := doc["examples"].([]any)
		require.NotEmpty(t, examples, "%s has an example", name)
		for _, ex := range examples {
			b, _ := json.Marshal(ex)
			require.NoError(t, sch.Validate(decode(t, b)), name)
		}
	}
}

// TestSchemas_EnvelopeAgreesWithStore holds the envelope schema and the store's own envelope
// check (Go code, on the write path) to one verdict.
func TestSchemas_EnvelopeAgreesWithStore(t *testing.T) {
	t.Parallel()
	sch := compile(t, "envelope", "")
	for _, data := range []string{
		`{"version":"1.0","service":"billing","operation":"invoice.sent","status":"success"}`,
		`{"version":"1.0","service":"billing","operation":"invoice.sent","status":"success","payload":{"a":[1]},"attempt":3,"retry_reason":"timeout","source_payload":"raw"}`,
		`{"version":"1.0","service":"billing"}`,
		`{"version":"1.0","service":"billing","operation":"","status":"success"}`,
		`{"version":"1.0","service":"billing","operation":"   ","status":"success"}`,
		`{"version":"1.0","service":"billing","operation":"x","status":7}`,
		`{"version":"1.0","service":"billing","operation":"x","status":"ok","payload":[]}`,
		`{"version":"1.0","service":"billing","operation":"x","status":"ok","payload":"x"}`,
		`{"version":"1.0","service":"billing","operation":"x","status":"ok","attempt":0}`,
		`{"version":"1.0","service":"billing","operation":"x","status":"ok","attempt":2.5}`,
		`{"version":"1.0","service":"billing","operation":"x","status":"ok","attempt":"2"}`,
		`{"version":"1.0","service":"billing","operation":"x","status":"ok","retry_reason":5}`,
		`{"version":"1.0","service":"` + strings.Repeat("s", 256) + `","operation":"x","status":"ok"}`,
	} {
		in := audittest.Input(t, &audittest.EventOpts{EventData: json.RawMessage(data)})
		_, errs := in.Prepare(defaults(), audit.DefaultLimits)
		schemaErr := sch.Validate(decode(t, []byte(data)))
		require.Equal(t, len(errs) == 0, schemaErr == nil, "%s\nstore: %v\nschema: %v", data, errs, schemaErr)
	}
}

// TestSchemaPages checks that every schema's Markdown page is the one generated from it; run
// with -update to rewrite them after changing a schema.
func TestSchemaPages(t *testing.T) {
	t.Parallel()
	for _, name := range schemaNames(t) {
		b, _ := audit.Schema(name)
		want := renderPage(t, name, b)
		path := filepath.Join("schemas", name+".md")
		if *update {
			require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "%s: missing page; run go test ./shared/audit -run TestSchemaPages -update", path)
		require.Equal(t, want, string(got), "%s is stale; run go test ./shared/audit -run TestSchemaPages -update", path)
	}
}

// renderPage makes the Markdown page of a schema: what it is for, one row per member (nested
// members of arrays too, in the schema's own order), and its example.
func renderPage(t *testing.T, name string, raw []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	v, err := decodeOrdered(dec)
	require.NoError(t, err)
	doc := v.(*object)
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("# %s\n\n", doc.get("title"))
	p("<!-- Generated from %s.schema.json by `go test ./shared/audit -run TestSchemaPages -update`. Edit the schema, not this page. -->\n\n", name)
	p("%s\n\n", doc.get("description"))
	p("JSON Schema (draft 2020-12): [`%s.schema.json`](%s.schema.json), `$id` `%s`.\n\n", name, name, doc.get("$id"))

	required := strs(doc.get("required"))
	if defs, ok := doc.get("$defs").(*object); ok {
		if complete, ok := defs.get("complete").(*object); ok {
			required = strs(complete.get("required"))
		}
	}
	p("| member | type | required | rules | description |\n|---|---|---|---|---|\n")
	rows(&sb, "", doc, required)
	p("\n")
	if name == "envelope" {
		p("*Required* members must be present whenever event_data holds both `version` and `service`; ")
		p("an event_data without them is not an envelope and is stored as it is.\n\n")
	} else {
		p("*Required* is what the builder requires (`$defs/complete` of the schema): its events always have these members. ")
		p("The store checks the type and rules of every member present in an event whose envelope names service `%s` with version 1.x, but requires none of the payload's own members ", name)
		p("(a member of a nested object is required wherever that object appears), so that events of clients that fill in fewer members are still stored. ")
		p("Members not listed are stored as they are: a newer client may send members this store does not know yet.\n\n")
	}
	for _, ex := range slicesOf(doc.get("examples")) {
		b, err := json.MarshalIndent(plain(ex), "", "  ")
		require.NoError(t, err)
		p("## Example\n\n```json\n%s\n```\n", b)
	}
	return sb.String()
}

func rows(sb *strings.Builder, prefix string, schema *object, required []string) {
	props, ok := schema.get("properties").(*object)
	if !ok {
		return
	}
	for _, name := range props.keys {
		m := props.get(name).(*object)
		req := ""
		if slices.Contains(required, name) {
			req = "yes"
		}
		fmt.Fprintf(sb, "| `%s%s` | %s | %s | %s | %s |\n", prefix, name, typeOf(m), req, rules(m), m.get("description"))
		if items, ok := m.get("items").(*object); ok {
			rows(sb, prefix+name+"[].", items, strs(items.get("required")))
		}
	}
}

func typeOf(m *object) string {
	t, _ := m.get("type").(string)
	switch t {
	case "":
		return "any"
	case "array":
		if items, ok := m.get("items").(*object); ok {
			return "array of " + typeOf(items)
		}
	case "object":
		if ap, ok := m.get("additionalProperties").(*object); ok {
			return "object of " + typeOf(ap)
		}
	}
	return t
}

func rules(m *object) string {
	var out []string
	num := func(k string) (float64, bool) { v, ok := m.get(k).(float64); return v, ok }
	minL, hasMinL := num("minLength")
	maxL, hasMaxL := num("maxLength")
	switch {
	case hasMinL && hasMaxL:
		out = append(out, fmt.Sprintf("%g to %g characters", minL, maxL))
	case hasMaxL:
		out = append(out, fmt.Sprintf("at most %g characters", maxL))
	case hasMinL:
		out = append(out, fmt.Sprintf("at least %g characters", minL))
	}
	if p, ok := m.get("pattern").(string); ok {
		if p == `\S` {
			out = append(out, "not blank")
		} else {
			out = append(out, fmt.Sprintf("matches `%s`", p))
		}
	}
	lo, hasLo := num("minimum")
	hi, hasHi := num("maximum")
	switch {
	case hasLo && hasHi:
		out = append(out, fmt.Sprintf("%g to %g", lo, hi))
	case hasLo:
		out = append(out, fmt.Sprintf("%g or more", lo))
	case hasHi:
		out = append(out, fmt.Sprintf("%g or less", hi))
	}
	if e := strs(m.get("enum")); len(e) > 0 {
		out = append(out, "one of "+strings.Join(e, ", "))
	}
	if m.get("format") == "date-time" {
		out = append(out, "RFC 3339 timestamp")
	}
	return strings.Join(out, "; ")
}

func strs(v any) []string {
	var out []string
	for _, s := range slicesOf(v) {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

func slicesOf(v any) []any {
	a, _ := v.([]any)
	return a
}

// object is a JSON object that keeps its members' order, so a page lists members in the order
// the schema's author chose.
type object struct {
	keys []string
	vals map[string]any
}

func (o *object) get(k string) any { return o.vals[k] }

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &object{vals: map[string]any{}}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			o.keys = append(o.keys, k.(string))
			o.vals[k.(string)] = v
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return tok, nil
}

// plain turns ordered objects back into values json.Marshal writes, keeping the order.
func plain(v any) any {
	switch t := v.(type) {
	case *object:
		var b bytes.Buffer
		b.WriteByte('{')
		for i, k := range t.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			vb, _ := json.Marshal(plain(t.vals[k]))
			b.Write(kb)
			b.WriteByte(':')
			b.Write(vb)
		}
		b.WriteByte('}')
		return json.RawMessage(b.Bytes())
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = plain(e)
		}
		return out
	}
	return v
}
