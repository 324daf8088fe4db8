// Package integrity is auditstore's tamper evidence as pure logic: the canonical encoding and
// hash of an event, the append-only Merkle log of RFC 9162 (leaf and node hashes, roots,
// inclusion, consistency and range proofs), and Ed25519-signed checkpoints. It does no I/O and
// imports no other package of auditstore, so an auditor's offline verifier can use it alone.
package integrity

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	json "github.com/segmentio/encoding/json"
)

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of a JSON value:
// object members sorted by the UTF-16 code units of their names, no insignificant white space,
// strings with only the escapes ECMAScript's JSON.stringify makes, and every number as the
// shortest ECMAScript spelling of its IEEE 754 double. Members named in drop are left out of
// the top-level object. A member name given twice keeps its last value, as PostgreSQL's jsonb
// does. A number outside the double range or invalid UTF-8 is an error: such a value has no
// canonical form.
func Canonicalize(raw []byte, drop ...string) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(raw)), raw, drop...)
}

// AppendCanonical appends Canonicalize(raw, drop...) to buf.
func AppendCanonical(buf, raw []byte, drop ...string) ([]byte, error) {
	v, err := parse(raw)
	if err != nil {
		return nil, err
	}
	if obj, ok := v.(map[string]any); ok && len(drop) > 0 {
		for _, k := range drop {
			delete(obj, k)
		}
	}
	return appendValue(buf, v)
}

// parse decodes one JSON value, numbers as json.Number, refusing invalid UTF-8 and trailing data.
func parse(raw []byte) (any, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("JSON is not valid UTF-8")
	}
	var v any
	rest, err := json.Parse(raw, &v, json.UseNumber)
	if err != nil {
		return nil, fmt.Errorf("JSON: %w", err)
	}
	if len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return nil, errors.New("JSON has data after the value")
	}
	return v, nil
}

// AppendCanonicalValue appends the RFC 8785 form of a decoded JSON value: maps, slices,
// strings, json.Number (encoding/json's, also segmentio's), float64, bool and nil.
func AppendCanonicalValue(buf []byte, v any) ([]byte, error) { return appendValue(buf, v) }

func appendValue(buf []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendString(buf, k)
			buf = append(buf, ':')
			var err error
			if buf, err = appendValue(buf, t[k]); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case []any:
		buf = append(buf, '[')
		for i, e := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendValue(buf, e); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case string:
		return AppendString(buf, t), nil
	case json.Number:
		s, err := jcsNumber(string(t))
		if err != nil {
			return nil, err
		}
		return append(buf, s...), nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, fmt.Errorf("JSON number %v has no RFC 8785 form", t)
		}
		return append(buf, FormatNumber(t)...), nil
	case bool:
		return strconv.AppendBool(buf, t), nil
	case nil:
		return append(buf, "null"...), nil
	}
	return nil, fmt.Errorf("JSON value of type %T", v)
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires (it
// differs from byte order only for characters above U+FFFF against U+E000..U+FFFF).
func compareUTF16(a, b string) int {
	if isASCII(a) && isASCII(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// AppendString appends s as a JSON string with the escapes of RFC 8785 §3.2.2.2: \b \t \n \f
// \r \" \\ and \u00xx for the other control characters; everything else as it is.
func AppendString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c >= 0x20:
			buf = append(buf, c)
		case c == '\b':
			buf = append(buf, '\\', 'b')
		case c == '\t':
			buf = append(buf, '\\', 't')
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '\f':
			buf = append(buf, '\\', 'f')
		case c == '\r':
			buf = append(buf, '\\', 'r')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(buf, '"')
}

// jcsNumber spells a JSON number as ECMAScript's Number.prototype.toString spells its double
// (RFC 8785 §3.2.2.3).
func jcsNumber(s string) (string, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("JSON number %s is outside the IEEE 754 double range RFC 8785 can encode", s)
	}
	return FormatNumber(f), nil
}

// FormatNumber is ECMAScript's Number.prototype.toString for a finite double.
func FormatNumber(f float64) string {
	if f == 0 {
		return "0" // also -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// The shortest digits that round-trip, and the decimal exponent n with value = 0.d1d2... × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	var out string
	switch {
	case k <= n && n <= 21:
		out = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		out = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		out = "0." + strings.Repeat("0", -n) + digits
	default:
		exponent := n - 1
		es := "+"
		if exponent < 0 {
			es, exponent = "-", -exponent
		}
		if k == 1 {
			out = digits + "e" + es + strconv.Itoa(exponent)
		} else {
			out = digits[:1] + "." + digits[1:] + "e" + es + strconv.Itoa(exponent)
		}
	}
	return sign + out
}

// IsCanonical reports whether b is already the RFC 8785 form of the JSON value it holds, for a
// cheap, common case: integers of at most 15 digits as the only numbers, member names without
// escapes, no character beyond U+FFFF. Then Canonicalize(b) is b itself, and a hash can take b
// as it is instead of decoding and re-encoding it. False says nothing: canonicalize instead.
func IsCanonical(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	end, ok := canonicalValue(b, 0, 0)
	return ok && end == len(b)
}

// maxCanonicalDepth bounds IsCanonical's recursion; deeper values go the general way.
const maxCanonicalDepth = 64

// canonicalValue checks the value at b[i:] and returns where it ends.
func canonicalValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxCanonicalDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '{':
		i++
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		var prev []byte
		for first := true; ; first = false {
			start := i
			end, ok := canonicalString(b, i, true)
			if !ok {
				return 0, false
			}
			name := b[start+1 : end-1]
			// Names in strictly increasing order: sorted, and none twice. Without escapes and
			// characters beyond U+FFFF, UTF-8 byte order is RFC 8785's UTF-16 order.
			if !first && bytes.Compare(prev, name) >= 0 {
				return 0, false
			}
			prev = name
			if end >= len(b) || b[end] != ':' {
				return 0, false
			}
			if i, ok = canonicalValue(b, end+1, depth+1); !ok || i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i++
			case '}':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '[':
		i++
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = canonicalValue(b, i, depth+1); !ok || i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ',':
				i++
			case ']':
				return i + 1, true
			default:
				return 0, false
			}
		}
	case c == '"':
		return canonicalString(b, i, false)
	case c == '-' || c >= '0' && c <= '9':
		start := i
		if c == '-' {
			i++
		}
		digits := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		n := i - digits
		// 0, or no leading zero; no -0; exact as a double (up to 15 digits) and so spelled
		// by ECMAScript as it is. A fraction or an exponent ends the number here and fails.
		if n == 0 || n > 15 || (b[digits] == '0' && (n > 1 || digits > start)) {
			return 0, false
		}
		return i, true
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return 0, false
}

func literal(b []byte, i int, word string) (int, bool) {
	if len(b)-i >= len(word) && string(b[i:i+len(word)]) == word {
		return i + len(word), true
	}
	return 0, false
}

// canonicalString checks the string at b[i:] (b[i] is '"') and returns where it ends: only the
// escapes AppendString makes, no character beyond U+FFFF, and, for a member name, no escape.
func canonicalString(b []byte, i int, name bool) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20 || c >= 0xf0:
			return 0, false
		case c == '\\':
			if name || i+1 >= len(b) {
				return 0, false
			}
			i++
			switch b[i] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
			case 'u':
				// \u00xx, lower-case hex, only for the control characters without a short escape.
				if len(b)-i < 5 || b[i+1] != '0' || b[i+2] != '0' || !isLowerHex(b[i+3]) || !isLowerHex(b[i+4]) {
					return 0, false
				}
				switch v := unhex(b[i+3])<<4 | unhex(b[i+4]); {
				case v >= 0x20, v == '\b', v == '\f', v == '\n', v == '\r', v == '\t':
					return 0, false
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}
