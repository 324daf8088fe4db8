package write

import (
	"bytes"
	"encoding/json"

	"errors"
	"fmt"
	fastjson "github.com/segmentio/encoding/json"
	"reflect"
	"slices"
	"strings"

	"github.com/auditstore/auditstore/shared/audit"
)

// inputFields maps each JSON name of audit.Input to its struct field index, for the decoder
// that names every bad field at once.
var inputFields = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[audit.Input]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if !t.Field(i).IsExported() || name == "" || name == "-" {
			continue // not part of the JSON form (Input keeps its decoded event_data)
		}
		m[name] = i
	}
	return m
}()

// serverFields are set by the server; a client that sends one gets a 400.
var serverFields = map[string]bool{"received_at": true, "submitted_by": true, "event_hash": true, "hash_version": true}

// decodeInput decodes one event object strictly. The common case (a plain valid object) takes
// one scan (fastInput), else one pass of a JSON decoder (strictParse); an invalid one is decoded again member by member, so the reply names
// every unknown field and every wrong type at once, not only the first. With errors, the Input
// holds the members that decoded (nil when the body is not a JSON object), so validation can
// name their problems in the same reply.
func decodeInput(raw []byte) (*audit.Input, []audit.FieldError) {
	if in, ok := fastInput(raw); ok {
		return in, nil
	}
	return strictInput(raw)
}

// strictInput is decodeInput of a body fastInput did not take.
func strictInput(raw []byte) (*audit.Input, []audit.FieldError) {
	var in audit.Input
	if strictParse(raw, &in) {
		return &in, nil
	}
	return decodeErrors(raw)
}

// strictParse decodes raw into v in one pass, refusing unknown members, members that differ
// from a field's name only in case (encoding/json would take "EVENT_TYPE" for event_type) and
// data after the value. It uses segmentio/encoding/json, a drop-in decoder that takes about
// half the CPU of encoding/json here; only a body that fails is decoded again, slowly, to name
// every problem.
func strictParse(raw []byte, v any) bool {
	rest, err := fastjson.Parse(raw, v, fastjson.DisallowUnknownFields|fastjson.DontMatchCaseInsensitiveStructFields)
	return err == nil && len(bytes.TrimLeft(rest, " \t\r\n")) == 0
}

func decodeErrors(raw []byte) (*audit.Input, []audit.FieldError) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		var typeErr *json.UnmarshalTypeError
		var synErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			return nil, []audit.FieldError{{Field: "body", Message: "must be a JSON object (an audit event), not " + typeErr.Value}}
		case errors.As(err, &synErr):
			return nil, []audit.FieldError{{Field: "body", Message: fmt.Sprintf("is not valid JSON: %s at byte %d", synErr.Error(), synErr.Offset)}}
		}
		return nil, []audit.FieldError{{Field: "body", Message: "is not valid JSON: " + err.Error()}}
	}
	var errs []audit.FieldError
	var probe audit.Input
	v := reflect.ValueOf(&probe).Elem()
	for _, name := range slices.Sorted(mapKeys(members)) {
		i, known := inputFields[name]
		switch {
		case serverFields[name]:
			errs = append(errs, audit.FieldError{Field: name, Message: "is set by the server and may not be sent"})
		case !known:
			errs = append(errs, audit.FieldError{Field: name, Message: "is not a field of an audit event"})
		default:
			if err := json.Unmarshal(members[name], v.Field(i).Addr().Interface()); err != nil {
				errs = append(errs, audit.FieldError{Field: name, Message: "must be " + typeName(v.Field(i).Type())})
				v.Field(i).Set(reflect.Zero(v.Field(i).Type()))
			}
		}
	}
	if len(errs) == 0 {
		errs = []audit.FieldError{{Field: "body", Message: "is not valid JSON"}}
	}
	return &probe, errs
}

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[*string]():
		return "a string"
	case reflect.TypeFor[*int64]():
		return "an integer"
	case reflect.TypeFor[*bool]():
		return "true or false"
	case reflect.TypeFor[json.RawMessage]():
		return "a JSON object"
	}
	return "of type " + t.String()
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
