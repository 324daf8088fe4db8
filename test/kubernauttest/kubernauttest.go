// Package kubernauttest decodes answers as strictly as kubernaut's generated Data Storage
// client does, so a test fails where that client would: a required member missing or null, an
// optional member the client declares non-nullable sent as null, or any member of the wrong
// type. Members the client does not know are skipped, as its decoder skips them.
//
// Declare the answer as a Go struct with json tags; tag a field `kn:"required"` when
// kubernaut's schema requires it and `kn:"nonnull"` when it is optional but not nullable.
// Nested structs, pointers to them and slices of them are checked the same way.
package kubernauttest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Decode decodes body into v (a pointer to a struct) and checks the members' presence.
func Decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return check(json.RawMessage(body), reflect.TypeOf(v).Elem(), "")
}

func check(raw json.RawMessage, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[json.RawMessage]() {
		return nil // any JSON value
	}
	switch t.Kind() {
	case reflect.Slice:
		if string(raw) == "null" {
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i, item := range items {
			if err := check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		if t.PkgPath() == "time" {
			return nil
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			m, ok := members[name]
			rule := f.Tag.Get("kn")
			switch {
			case !ok && rule == "required":
				return fmt.Errorf("%s.%s: required member missing", path, name)
			case ok && string(m) == "null" && (rule == "required" || rule == "nonnull"):
				return fmt.Errorf("%s.%s: null where the client refuses null", path, name)
			case ok:
				if err := check(m, f.Type, path+"."+name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
