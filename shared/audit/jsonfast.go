package audit

import (
	json "github.com/segmentio/encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parseObject decodes a JSON object into the values canonicalize works on (map[string]any,
// []any, string, json.Number, bool, nil) the way json.Parse with UseNumber does, but with
// every string that holds no escape a substring of one copy of raw, instead of an allocation
// of its own: event_data is mostly short strings, and allocating each was the largest share
// of the write path's garbage. It handles only the plain case and reports false for anything
// else (invalid JSON, not an object, nesting deeper than MaxDataDepth, an escaped surrogate):
// canonicalize then decodes with json.Parse, which says what is wrong in its own words.
func parseObject(raw []byte) (map[string]any, bool) {
	p := fastParser{src: string(raw)}
	p.space()
	if p.i >= len(p.src) || p.src[p.i] != '{' {
		return nil, false
	}
	v, ok := p.value(1)
	if !ok {
		return nil, false
	}
	p.space()
	if p.i != len(p.src) {
		return nil, false
	}
	return v.(map[string]any), true
}

type fastParser struct {
	src string
	i   int
}

func (p *fastParser) space() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses the value at p.i, an object or array at the given depth (event_data is 1).
func (p *fastParser) value(depth int) (any, bool) {
	if p.i >= len(p.src) {
		return nil, false
	}
	switch c := p.src[p.i]; {
	case c == '{':
		if depth > MaxDataDepth {
			return nil, false
		}
		p.i++
		m := make(map[string]any, 8)
		p.space()
		if p.i < len(p.src) && p.src[p.i] == '}' {
			p.i++
			return m, true
		}
		for {
			p.space()
			if p.i >= len(p.src) || p.src[p.i] != '"' {
				return nil, false
			}
			k, ok := p.string()
			if !ok {
				return nil, false
			}
			p.space()
			if p.i >= len(p.src) || p.src[p.i] != ':' {
				return nil, false
			}
			p.i++
			p.space()
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			m[k] = v // a repeated member: the last wins, as with json.Parse
			if more, ok := p.next('}'); !ok {
				return nil, false
			} else if !more {
				return m, true
			}
		}
	case c == '[':
		if depth > MaxDataDepth {
			return nil, false
		}
		p.i++
		a := []any{}
		p.space()
		if p.i < len(p.src) && p.src[p.i] == ']' {
			p.i++
			return a, true
		}
		for {
			p.space()
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			if more, ok := p.next(']'); !ok {
				return nil, false
			} else if !more {
				return a, true
			}
		}
	case c == '"':
		return p.string()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, false
}

// next reads what follows a member or element: a comma (more follows) or close (the end, ok);
// anything else is not JSON.
func (p *fastParser) next(close byte) (more, ok bool) {
	p.space()
	if p.i >= len(p.src) {
		return false, false
	}
	switch p.src[p.i] {
	case ',':
		p.i++
		return true, true
	case close:
		p.i++
		return false, true
	}
	return false, false
}

func (p *fastParser) literal(lit string) bool {
	if len(p.src)-p.i < len(lit) || p.src[p.i:p.i+len(lit)] != lit {
		return false
	}
	p.i += len(lit)
	return true
}

// number parses a number of JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *fastParser) number() (any, bool) {
	start := p.i
	if p.src[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.src) && p.src[p.i] == '0':
		p.i++
	case p.i < len(p.src) && p.src[p.i] >= '1' && p.src[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.i < len(p.src) && p.src[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, false
		}
	}
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		p.i++
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, false
		}
	}
	return json.Number(p.src[start:p.i]), true
}

// digits skips one or more decimal digits; false if there is none.
func (p *fastParser) digits() bool {
	start := p.i
	for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// string parses the string at p.i (its opening quote). Without escapes it is a substring of
// src; with them it is decoded into a string of its own.
func (p *fastParser) string() (string, bool) {
	p.i++
	start := p.i
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			s := p.src[start:p.i]
			p.i++
			return s, true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", false // a control character must be escaped
		}
		p.i++
	}
	return "", false
}

// escaped decodes a string with escapes; p.i is at the first backslash, start just after the
// opening quote.
func (p *fastParser) escaped(start int) (string, bool) {
	b := make([]byte, 0, p.i-start+16)
	b = append(b, p.src[start:p.i]...)
	for p.i < len(p.src) {
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.src) {
			return "", false
		}
		p.i += 2
		switch p.src[p.i-1] {
		case '"':
			b = append(b, '"')
		case '\\':
			b = append(b, '\\')
		case '/':
			b = append(b, '/')
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			if p.i+4 > len(p.src) {
				return "", false
			}
			r, err := strconv.ParseUint(p.src[p.i:p.i+4], 16, 32)
			if err != nil || utf16.IsSurrogate(rune(r)) {
				// Surrogates (pairs and lone halves) are left to json.Parse's rules.
				return "", false
			}
			p.i += 4
			b = utf8.AppendRune(b, rune(r))
		default:
			return "", false
		}
	}
	return "", false
}
