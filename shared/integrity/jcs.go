// Package integrity is auditstore's tamper evidence as pure logic: the canonical encoding and
// hash of an event, the append-only Merkle log of RFC 9162 (leaf and node hashes, roots,
// inclusion, consistency and range proofs), and Ed25519-signed checkpoints. It does no I/O and
// imports no other package of auditstore, so an auditor's offline verifier can use it alone.
package integrity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of a JSON value:
// object members sorted by the UTF-16 code units of their names, no insignificant white space,
// strings with only the escapes ECMAScript's JSON.stringify makes, and every number as the
// shortest ECMAScript spelling of its IEEE 754 double. Members named in drop are left out of
// the top-level object. A number outside the double range, invalid UTF-8 or a duplicate member
// name is an error: such a value has no canonical form.
func Canonicalize(raw []byte, drop ...string) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := canonicalValue(&buf, dec, drop); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("JSON has data after the value")
	}
	return buf.Bytes(), nil
}

// canonicalValue writes the next value of dec; drop applies to this value's members only.
func canonicalValue(buf *bytes.Buffer, dec *json.Decoder, drop []string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return canonicalObject(buf, dec, drop)
		case '[':
			buf.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					buf.WriteByte(',')
				}
				if err := canonicalValue(buf, dec, nil); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("JSON: %w", err)
			}
			buf.WriteByte(']')
			return nil
		}
		return fmt.Errorf("JSON: unexpected %q", t)
	case string:
		writeJCSString(buf, t)
	case json.Number:
		s, err := jcsNumber(string(t))
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	}
	return nil
}

// canonicalObject writes an object whose '{' has been read.
func canonicalObject(buf *bytes.Buffer, dec *json.Decoder, drop []string) error {
	type member struct {
		key   string
		value []byte
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("JSON: %w", err)
		}
		key := tok.(string) // the decoder only returns strings in key position
		var v bytes.Buffer
		if err := canonicalValue(&v, dec, nil); err != nil {
			return err
		}
		if slices.Contains(drop, key) {
			continue
		}
		members = append(members, member{key, v.Bytes()})
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("JSON: %w", err)
	}
	slices.SortFunc(members, func(a, b member) int { return compareUTF16(a.key, b.key) })
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			if m.key == members[i-1].key {
				return fmt.Errorf("JSON object has the member %q twice", m.key)
			}
			buf.WriteByte(',')
		}
		writeJCSString(buf, m.key)
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return nil
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

// writeJCSString writes s with the escapes of RFC 8785 §3.2.2.2: \b \t \n \f \r \" \\ and
// \u00xx for the other control characters; everything else as it is.
func writeJCSString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			buf.WriteByte('\\')
			buf.WriteByte(c)
		case c >= 0x20:
			buf.WriteByte(c)
		case c == '\b':
			buf.WriteString(`\b`)
		case c == '\t':
			buf.WriteString(`\t`)
		case c == '\n':
			buf.WriteString(`\n`)
		case c == '\f':
			buf.WriteString(`\f`)
		case c == '\r':
			buf.WriteString(`\r`)
		default:
			buf.WriteString(`\u00`)
			buf.WriteByte(hex[c>>4])
			buf.WriteByte(hex[c&0xf])
		}
	}
	buf.WriteByte('"')
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
