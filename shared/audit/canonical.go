package audit

import (
	"bytes"
	"errors"
	"fmt"
	json "github.com/segmentio/encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/integrity"
)

// MaxDataBytes is the largest event_data accepted, measured as compact JSON.
const MaxDataBytes = 256 << 10

// MaxDataDepth is the deepest nesting of objects and arrays accepted in event_data, event_data
// itself being level 1.
const MaxDataDepth = 32

// CanonicalJSON returns the canonical compact form of a JSON object: members sorted by key,
// no insignificant white space, numbers in one spelling (1.0, 1 and 1e0 are the same value).
// Two payloads that are equal as JSON values have the same canonical form, so its hash tells
// a retry from a conflict. It refuses what PostgreSQL's jsonb or the contract would refuse:
// a value that is not an object, invalid UTF-8, U+0000 in a string, nesting deeper than
// MaxDataDepth and a result larger than MaxDataBytes.
func CanonicalJSON(raw []byte) ([]byte, error) {
	b, _, err := canonicalize(raw)
	return b, err
}

// canonicalize is CanonicalJSON that also returns the decoded object.
func canonicalize(raw []byte) ([]byte, map[string]any, error) {
	if !utf8.Valid(raw) {
		return nil, nil, errors.New("is not valid UTF-8")
	}
	obj, fast := parseObject(raw)
	if !fast {
		// Not the plain case: json.Parse decodes it, or says what is wrong.
		var v any
		rest, err := json.Parse(raw, &v, json.UseNumber)
		if err != nil {
			return nil, nil, fmt.Errorf("is not valid JSON: %s", jsonErrorText(err))
		}
		if len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
			return nil, nil, errors.New("is not valid JSON: data after the value")
		}
		var isObject bool
		if obj, isObject = v.(map[string]any); !isObject {
			return nil, nil, errors.New("must be a JSON object")
		}
	}
	var buf []byte
	if fast && integrity.IsCanonical(raw) && !bytes.Contains(raw, nulEscape) {
		// Already canonical, as the SDK's builders and every encoder of sorted maps send it:
		// for what IsCanonical takes (sorted unescaped names, integers of at most 15 digits,
		// only the escapes JSON requires) RFC 8785's form is this one, so the bytes are kept
		// as they are instead of walking the map (a sixth of the function's CPU under batches).
		// U+0000 is the one difference: RFC 8785 escapes it, this form refuses it. Only the
		// fast decoder's success vouches for the nesting limit, which IsCanonical's is above.
		buf = bytes.Clone(raw)
	} else {
		var err error
		if buf, err = appendCanonical(make([]byte, 0, len(raw)), obj, 1); err != nil {
			return nil, nil, err
		}
	}
	if len(buf) > MaxDataBytes {
		return nil, nil, fmt.Errorf("is %d bytes as compact JSON; at most %d (256 KiB) are accepted", len(buf), MaxDataBytes)
	}
	return buf, obj, nil
}

func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s at byte %d", syn.Error(), syn.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

func appendCanonical(buf []byte, v any, depth int) ([]byte, error) {
	var err error
	switch t := v.(type) {
	case map[string]any:
		if depth > MaxDataDepth {
			return nil, fmt.Errorf("nests objects and arrays deeper than %d levels", MaxDataDepth)
		}
		// Most objects are small: their keys are sorted in an array on the stack.
		var small [16]string
		keys := small[:0]
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendString(buf, k); err != nil {
				return nil, err
			}
			buf = append(buf, ':')
			if buf, err = appendCanonical(buf, t[k], depth+1); err != nil {
				return nil, err
			}
		}
		buf = append(buf, '}')
	case []any:
		if depth > MaxDataDepth {
			return nil, fmt.Errorf("nests objects and arrays deeper than %d levels", MaxDataDepth)
		}
		buf = append(buf, '[')
		for i, e := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendCanonical(buf, e, depth+1); err != nil {
				return nil, err
			}
		}
		buf = append(buf, ']')
	case string:
		return appendString(buf, t)
	case json.Number:
		buf = appendNumber(buf, t)
	case bool:
		buf = strconv.AppendBool(buf, t)
	case nil:
		buf = append(buf, "null"...)
	default:
		return nil, fmt.Errorf("holds an unsupported value of type %T", v)
	}
	return buf, nil
}

// appendNumber appends canonicalNumber(n).
func appendNumber(buf []byte, n json.Number) []byte {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return append(buf, '0')
		}
		return append(buf, s...)
	}
	return append(buf, canonicalNumber(n)...)
}

// canonicalNumber spells integers as they are (exact at any size) and every other number as
// the shortest float64 form, so 1.0, 1e0 and 1 compare equal.
func canonicalNumber(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return "0"
		}
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s // out of float64 range: keep the exact spelling
	}
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// appendString appends s as a JSON string with only the escapes JSON requires, refusing
// U+0000 (PostgreSQL's jsonb cannot store it). Runs that need no escape are copied whole.
func appendString(buf []byte, s string) ([]byte, error) {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		start = i + 1
		switch c {
		case 0:
			return nil, errors.New("holds U+0000 in a string, which cannot be stored")
		case '"':
			buf = append(buf, `\"`...)
		case '\\':
			buf = append(buf, `\\`...)
		case '\n':
			buf = append(buf, `\n`...)
		case '\r':
			buf = append(buf, `\r`...)
		case '\t':
			buf = append(buf, `\t`...)
		case '\b':
			buf = append(buf, `\b`...)
		case '\f':
			buf = append(buf, `\f`...)
		default:
			buf = append(buf, `\u00`...)
			buf = append(buf, hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"'), nil
}

const hexDigits = "0123456789abcdef"

// nulEscape is U+0000 as JSON escapes it.
var nulEscape = []byte(`\u0000`)
