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
	if obj, ok := v.(map[string]any); ok && len(drop) > 0 {
		for _, k := range drop {
			delete(obj, k)
		}
	}
	return appendValue(buf, v)
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
