package audit

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
)

// quickSchema is a payload schema compiled for the common case: a payload that is valid. It
// knows the keywords the embedded schemas use (type, properties, additionalProperties, items,
// required, string enum, minLength, maxLength, integral minimum and maximum, the date-time
// format) and answers only "valid", or "not sure". validatePayload asks the schema library
// whenever it is not sure, so the library alone decides what is invalid and words every error.
// quickSchema is therefore written to be strict: each check accepts a subset of what the
// library accepts (an integer spelled 1.0, a leap second, a bound on a fraction: not sure),
// and TestQuickSchema_NeverMoreLenient holds it to that. It exists because the library
// allocated about 80 times per gateway event.
type quickSchema struct {
	types uint8 // bits of quickTypes; 0: any type
	// propNames are the names of properties, sorted; propSchemas their schemas.
	propNames    []string
	propSchemas  []*quickSchema
	additional   *quickSchema // for members not in props; nil: anything
	noAdditional bool         // additionalProperties: false
	items        *quickSchema
	required     []string // sorted, each once
	enum         []string // nil: no enum
	minLen       int
	maxLen       int // -1: none
	min, max     *int64
	dateTime     bool
	never        bool // the schema false
}

const (
	qtObject uint8 = 1 << iota
	qtArray
	qtString
	qtNumber
	qtInteger
	qtBoolean
	qtNull
)

var quickTypes = map[string]uint8{"object": qtObject, "array": qtArray, "string": qtString,
	"number": qtNumber, "integer": qtInteger, "boolean": qtBoolean, "null": qtNull}

// annotations are keywords that never change a verdict.
var annotations = map[string]bool{"$schema": true, "$id": true, "$defs": true, "$comment": true,
	"title": true, "description": true, "examples": true, "default": true, "deprecated": true,
	"readOnly": true, "writeOnly": true, PersonalDataKeyword: true}

// compileQuick compiles a schema document (decoded with UseNumber), or reports false when it
// uses anything quickSchema does not know: that schema is then left to the library alone.
func compileQuick(doc any) (*quickSchema, bool) {
	switch d := doc.(type) {
	case bool:
		return &quickSchema{maxLen: -1, never: !d}, true
	case map[string]any:
		s := &quickSchema{maxLen: -1}
		for k, v := range d {
			if annotations[k] {
				continue
			}
			if !s.keyword(k, v) {
				return nil, false
			}
		}
		return s, true
	}
	return nil, false
}

func (s *quickSchema) keyword(k string, v any) bool {
	switch k {
	case "type":
		names := []any{v}
		if list, ok := v.([]any); ok {
			names = list
		}
		for _, n := range names {
			name, _ := n.(string)
			bit, ok := quickTypes[name]
			if !ok {
				return false
			}
			s.types |= bit
		}
		return s.types != 0
	case "properties":
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		s.propNames = slices.Sorted(maps.Keys(m))
		s.propSchemas = make([]*quickSchema, len(s.propNames))
		for k, name := range s.propNames {
			if s.propSchemas[k], ok = compileQuick(m[name]); !ok {
				return false
			}
		}
		return true
	case "additionalProperties":
		if b, ok := v.(bool); ok {
			s.noAdditional = !b
			return true
		}
		var ok bool
		s.additional, ok = compileQuick(v)
		return ok
	case "items":
		var ok bool
		s.items, ok = compileQuick(v)
		return ok
	case "required":
		list, ok := v.([]any)
		for _, n := range list {
			name, isStr := n.(string)
			if !isStr {
				return false
			}
			s.required = append(s.required, name)
		}
		slices.Sort(s.required)
		s.required = slices.Compact(s.required)
		return ok
	case "enum":
		list, ok := v.([]any)
		s.enum = []string{}
		for _, e := range list {
			str, isStr := e.(string)
			if !isStr {
				return false
			}
			s.enum = append(s.enum, str)
		}
		return ok
	case "minLength", "maxLength":
		n, ok := quickInt(v)
		if !ok || n < 0 {
			return false
		}
		if k == "minLength" {
			s.minLen = int(n)
		} else {
			s.maxLen = int(n)
		}
		return true
	case "minimum", "maximum":
		n, ok := quickInt(v)
		if !ok || n > 1<<53 || n < -1<<53 { // a bound must be exact as a float64 (see valid)
			return false
		}
		if k == "minimum" {
			s.min = &n
		} else {
			s.max = &n
		}
		return true
	case "format":
		s.dateTime = v == "date-time"
		return s.dateTime
	}
	return false
}

// quickInt reads an integer spelled as one (no fraction, no exponent).
func quickInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

// validStored reports whether the value at b[i:] is certainly valid (false: "not sure"), and
// where it ends. b is event_data's stored form (integrity.Data.Stored) whose numbers are
// spelled as they were sent (Data.NumbersAsSent): canonical, so the walk only finds where
// things end, member names come in byte order (merged with props and required, which are
// sorted), and a string without a backslash is its own value; one with an escape is "not
// sure". A nil schema takes any value: the walk then only skips it.
func (s *quickSchema) validStored(b []byte, i int) (int, bool) {
	if i >= len(b) || s != nil && s.never {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		if s != nil && s.types != 0 && s.types&qtObject == 0 {
			return 0, false
		}
		return s.objectStored(b, i)
	case c == '[':
		if s != nil && s.types != 0 && s.types&qtArray == 0 {
			return 0, false
		}
		var items *quickSchema
		if s != nil {
			items = s.items
		}
		i++
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			end, ok := items.validStored(b, i)
			if !ok || end >= len(b) {
				return 0, false
			}
			switch b[end] {
			case ',':
				i = end + 1
			case ']':
				return end + 1, true
			default:
				return 0, false
			}
		}
	case c == '"':
		v, end, ok := storedString(b, i)
		if !ok {
			return 0, false
		}
		if s == nil {
			return end, true
		}
		if s.types != 0 && s.types&qtString == 0 {
			return 0, false
		}
		if s.minLen > 0 || s.maxLen >= 0 {
			n := utf8.RuneCount(v)
			if n < s.minLen || (s.maxLen >= 0 && n > s.maxLen) {
				return 0, false
			}
		}
		if s.enum != nil && !containsString(s.enum, string(v)) {
			return 0, false
		}
		if s.dateTime && !isDateTime(string(v)) {
			return 0, false
		}
		return end, true
	case c == 't' || c == 'f' || c == 'n':
		end := i + 4
		if c == 'f' {
			end++
		}
		if end > len(b) || s == nil {
			return end, end <= len(b)
		}
		if s.enum != nil || s.types != 0 && (c == 'n' && s.types&qtNull == 0 || c != 'n' && s.types&qtBoolean == 0) {
			return 0, false
		}
		return end, true
	}
	end := i
	for end < len(b) && (b[end] >= '0' && b[end] <= '9' || b[end] == '-' || b[end] == '+' || b[end] == '.' || b[end] == 'e' || b[end] == 'E') {
		end++
	}
	if end == i {
		return 0, false
	}
	return end, s == nil || s.numberValid(string(b[i:end]))
}

// validPayload reports whether payload, a whole value of a stored form (see validStored), is
// certainly valid; a nil schema (one the quick validator cannot take) is never sure.
func (s *quickSchema) validPayload(payload []byte) bool {
	if s == nil {
		return false
	}
	end, ok := s.validStored(payload, 0)
	return ok && end == len(payload)
}

// objectStored is validStored of the object at b[i:].
func (s *quickSchema) objectStored(b []byte, i int) (int, bool) {
	var names []string
	var subs []*quickSchema
	var required []string
	if s != nil {
		names, subs, required = s.propNames, s.propSchemas, s.required
	}
	p, r := 0, 0 // the next of names and of required not yet passed
	i++
	if i < len(b) && b[i] == '}' {
		return i + 1, len(required) == 0
	}
	for {
		name, end, ok := storedString(b, i)
		if !ok || end >= len(b) || b[end] != ':' {
			return 0, false
		}
		var sub *quickSchema
		if s != nil {
			for p < len(names) && names[p] < string(name) {
				p++
			}
			if r < len(required) && required[r] < string(name) {
				return 0, false // passed a required member that is not there
			}
			if r < len(required) && required[r] == string(name) {
				r++
			}
			switch {
			case p < len(names) && names[p] == string(name):
				sub = subs[p]
			case s.noAdditional:
				return 0, false
			default:
				sub = s.additional
			}
		}
		if end, ok = sub.validStored(b, end+1); !ok || end >= len(b) {
			return 0, false
		}
		switch b[end] {
		case ',':
			i = end + 1
		case '}':
			return end + 1, r == len(required)
		default:
			return 0, false
		}
	}
}

// storedString returns the text of the string at b[i] of a stored form, and where it ends;
// false for one with an escape (or no end).
func storedString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	// A quote inside the string is escaped: the first quote ends it, or follows a backslash.
	j := bytes.IndexByte(b[i+1:], '"')
	if j < 0 || bytes.IndexByte(b[i+1:i+1+j], '\\') >= 0 {
		return nil, 0, false
	}
	return b[i+1 : i+1+j], i + 2 + j, true
}

// numberValid reports whether the number spelled t (as sent) is certainly valid.
func (s *quickSchema) numberValid(t string) bool {
	if s.enum != nil {
		return false
	}
	i, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		// A fraction, an exponent or a huge integer; whether 1.0 is an integer is the
		// library's to say. Rounding to float64 is monotonic and the bounds are integers,
		// so a value strictly inside them as a float64 is inside them exactly; one on a
		// bound is not sure.
		if s.types != 0 && s.types&qtNumber == 0 {
			return false
		}
		if s.min == nil && s.max == nil {
			return true
		}
		f, err := strconv.ParseFloat(t, 64)
		return err == nil && (s.min == nil || f > float64(*s.min)) && (s.max == nil || f < float64(*s.max))
	}
	if s.types != 0 && s.types&(qtNumber|qtInteger) == 0 {
		return false
	}
	return (s.min == nil || i >= *s.min) && (s.max == nil || i <= *s.max)
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// isDateTime accepts the plainest RFC 3339 date-times, 2026-11-25T10:00:00(.123)?(Z|+01:00),
// with a real calendar date and no leap second: a strict subset of the library's date-time.
func isDateTime(s string) bool {
	if len(s) < 20 {
		return false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
		s[13] != ':' || s[16] != ':' {
		return false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		rest = rest[i:]
	}
	switch {
	case rest == "Z" || rest == "z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		s = rest
		oh, ok1 := num(1, 3)
		om, ok2 := num(4, 6)
		return ok1 && ok2 && oh <= 23 && om <= 59
	}
	return false
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
