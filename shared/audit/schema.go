package audit

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The JSON Schemas (draft 2020-12) of the event_data envelope and of each service's payload,
// one file each: schemas/<service>.schema.json. Each has a Markdown page beside it,
// schemas/<service>.md, generated from it (a test fails when a page is stale).
//
//go:embed schemas/*.schema.json
var schemaFiles embed.FS

// SchemaBaseURL is where the schemas' $id URLs live: <SchemaBaseURL><name>.schema.json.
const SchemaBaseURL = "https://auditstore.dev/schemas/event-data/v1/"

// envelopeSchema is the name of the envelope's schema among the payload schemas.
const envelopeSchema = "envelope"

// completeDef is the subschema of a payload schema that also requires the members its
// service's builder requires: $defs/complete. The schema itself only types the members it
// knows, so the store refuses a wrong value but never an event for lacking a member (existing
// clients send payloads of their own making, and an audit store that refuses them loses
// events); builders are held to the complete form, so what they make is whole.
const completeDef = "#/$defs/complete"

// Services returns the services whose payloads have a registered schema, sorted: an event
// whose event_data envelope names one of them (version 1.x) has its payload validated
// against that schema by the store. Other services' payloads are stored as they are.
func Services() []string {
	var out []string
	for name := range compiledSchemas().payloads {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Schema returns the JSON Schema document of a service's payload, or of the envelope for
// "envelope".
func Schema(name string) ([]byte, bool) {
	b, err := schemaFiles.ReadFile("schemas/" + name + ".schema.json")
	return b, err == nil
}

// payloadSchema is one service's payload schema, compiled: the types of its members, and the
// complete form builders are held to.
type payloadSchema struct {
	types, complete *jsonschema.Schema
	// quick answers "valid" for most payloads without the library (nil: it cannot).
	quick *quickSchema
}

type schemaSet struct {
	envelope *jsonschema.Schema
	payloads map[string]payloadSchema
}

// compiledSchemas compiles every embedded schema once, on first use (a few milliseconds),
// so validating an event costs only the validation itself. The schemas are part of the
// binary and tested, so a schema that does not compile is a bug that panics.
var compiledSchemas = sync.OnceValue(func() *schemaSet {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	entries, err := schemaFiles.ReadDir("schemas")
	if err != nil {
		panic(err)
	}
	var names []string
	docs := map[string][]byte{}
	for _, e := range entries {
		b, err := schemaFiles.ReadFile("schemas/" + e.Name())
		if err != nil {
			panic(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			panic(fmt.Sprintf("audit: schema %s: %v", e.Name(), err))
		}
		if err := c.AddResource(SchemaBaseURL+e.Name(), doc); err != nil {
			panic(fmt.Sprintf("audit: schema %s: %v", e.Name(), err))
		}
		names = append(names, strings.TrimSuffix(e.Name(), ".schema.json"))
		docs[names[len(names)-1]] = b
	}
	set := &schemaSet{payloads: map[string]payloadSchema{}}
	for _, name := range names {
		url := SchemaBaseURL + name + ".schema.json"
		types, err := c.Compile(url)
		if err != nil {
			panic(fmt.Sprintf("audit: schema %s: %v", name, err))
		}
		if name == envelopeSchema {
			set.envelope = types
			continue
		}
		complete, err := c.Compile(url + completeDef)
		if err != nil {
			panic(fmt.Sprintf("audit: schema %s: %v", name, err))
		}
		ps := payloadSchema{types: types, complete: complete}
		var plain any
		d := json.NewDecoder(bytes.NewReader(docs[name]))
		d.UseNumber()
		if err := d.Decode(&plain); err != nil {
			panic(fmt.Sprintf("audit: schema %s: %v", name, err))
		}
		if q, ok := compileQuick(plain); ok {
			ps.quick = q
		}
		set.payloads[name] = ps
	}
	return set
})

// noLoader refuses to load any schema that is not embedded: validation never touches the
// network or the file system.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not embedded", url)
}

// validatePayload checks the payload of an envelope of the given version and service against
// the service's registered schema (the complete form when strict). Only version 1.x payloads
// are checked: a later major version is a shape this store does not know yet, and is stored
// as it is rather than refused.
func validatePayload(version, service string, payload any, strict bool) []FieldError {
	if version != "1" && !strings.HasPrefix(version, "1.") {
		return nil
	}
	s, ok := compiledSchemas().payloads[service]
	if !ok {
		return nil
	}
	if payload == nil {
		if strict {
			return []FieldError{{Field: "event_data.payload", Message: fmt.Sprintf("is required for service %s", service)}}
		}
		return nil
	}
	// The quick validator had its say before (quickEnvelope): only what it was not sure of
	// comes here.
	sch := s.types
	if strict {
		sch = s.complete
	}
	return schemaErrors("event_data.payload", sch.Validate(payload))
}

// schemaErrors turns a validation error into field errors: one per failed leaf, named by
// where it is under prefix (event_data.payload.labels.app).
func schemaErrors(prefix string, err error) []FieldError {
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []FieldError{{Field: prefix, Message: err.Error()}}
	}
	var out []FieldError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		field := prefix
		if len(e.InstanceLocation) > 0 {
			field += "." + strings.Join(e.InstanceLocation, ".")
		}
		if req, ok := e.ErrorKind.(*kind.Required); ok {
			for _, m := range req.Missing {
				out = append(out, FieldError{Field: field + "." + m, Message: "is required"})
			}
			return
		}
		out = append(out, FieldError{Field: field, Message: schemaMessage(e.ErrorKind)})
	}
	walk(ve)
	slices.SortStableFunc(out, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	return out
}

var schemaPrinter = message.NewPrinter(language.English)

// schemaMessage says what was wrong in the house's words (STYLE: name what is accepted).
func schemaMessage(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = jsonTypeName(w)
		}
		return fmt.Sprintf("must be %s, not %s", strings.Join(want, " or "), jsonTypeName(k.Got))
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = fmt.Sprint(w)
		}
		return fmt.Sprintf("%v is not one of %s", quoteValue(k.Got), strings.Join(want, ", "))
	case *kind.Minimum:
		return fmt.Sprintf("is %s; it must be at least %s", ratString(k.Got), ratString(k.Want))
	case *kind.Maximum:
		return fmt.Sprintf("is %s; it must be at most %s", ratString(k.Got), ratString(k.Want))
	case *kind.MinLength:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("is %d characters long; at least %d are required", k.Got, k.Want)
	case *kind.MaxLength:
		return fmt.Sprintf("is %d characters long; at most %d are accepted", k.Got, k.Want)
	case *kind.Format:
		if k.Want == "date-time" {
			return fmt.Sprintf("%v is not an RFC 3339 timestamp such as 2026-11-25T10:00:00Z", quoteValue(k.Got))
		}
		return fmt.Sprintf("%v is not a valid %s", quoteValue(k.Got), k.Want)
	case *kind.Pattern:
		return fmt.Sprintf("%q does not match %s", k.Got, k.Want)
	}
	return k.LocalizedString(schemaPrinter)
}

func jsonTypeName(t string) string {
	switch t {
	case "object", "integer", "array":
		return "an " + t
	case "boolean":
		return "true or false"
	case "null":
		return "null"
	}
	return "a " + t
}

func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.RatString()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}
