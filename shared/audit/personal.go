package audit

import (
	"encoding/json"
	"slices"
	"sync"
)

// PersonalDataKeyword marks a member of an event_data schema as personal data
// ("x-personal-data": true): an export asked to redact personal data replaces its value with a
// pseudonym. It is an annotation, never a reason to refuse an event.
const PersonalDataKeyword = "x-personal-data"

// PersonalData returns the paths, within event_data, of the members the schemas mark as
// personal data for event_data whose envelope names service: the envelope's own members
// (["source_payload"]) and the members of the service's payload (["payload", "annotations"]).
// For a service without a registered schema only the envelope's are returned.
func PersonalData(service string) [][]string {
	m := personalPaths()
	out := slices.Clone(m[envelopeSchema])
	for _, p := range m[service] {
		if service != envelopeSchema {
			out = append(out, append([]string{"payload"}, p...))
		}
	}
	return out
}

// personalPaths reads the marked members of every embedded schema once.
var personalPaths = sync.OnceValue(func() map[string][][]string {
	out := map[string][][]string{}
	entries, err := schemaFiles.ReadDir("schemas")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		b, err := schemaFiles.ReadFile("schemas/" + e.Name())
		if err != nil {
			panic(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			panic(err)
		}
		name := e.Name()[:len(e.Name())-len(".schema.json")]
		out[name] = markedMembers(doc, nil)
	}
	return out
})

// markedMembers walks a schema's properties, nested objects included.
func markedMembers(schema map[string]any, prefix []string) [][]string {
	var out [][]string
	props, _ := schema["properties"].(map[string]any)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range props {
			if !yield(k) {
				return
			}
		}
	}) {
		sub, _ := props[name].(map[string]any)
		path := append(slices.Clone(prefix), name)
		if marked, _ := sub[PersonalDataKeyword].(bool); marked {
			out = append(out, path)
			continue
		}
		out = append(out, markedMembers(sub, path)...)
	}
	return out
}
