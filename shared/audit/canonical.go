package audit

import (
	"bytes"
	"errors"
	"fmt"
	json "github.com/segmentio/encoding/json"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
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
	var v any
	rest, err := json.Parse(raw, &v, json.UseNumber)
	if err != nil {
		return nil, nil, fmt.Errorf("is not valid JSON: %s", jsonErrorText(err))
	}
	if len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return nil, nil, errors.New("is not valid JSON: data after the value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil, errors.New("must be a JSON object")
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := writeCanonical(&buf, v, 1); err != nil {
		return nil, nil, err
	}
	if buf.Len() > MaxDataBytes {
		return nil, nil, fmt.Errorf("is %d bytes as compact JSON; at most %d (256 KiB) are accepted", buf.Len(), MaxDataBytes)
	}
	return buf.Bytes(), obj, nil
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

func writeCanonical(buf *bytes.Buffer, v any, depth int) error {
	switch t := v.(type) {
	case map[string]any:
		if depth > MaxDataDepth {
			return fmt.Errorf("nests objects and arrays deeper than %d levels", MaxDataDepth)
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeString(buf, k); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := writeCanonical(buf, t[k], depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		if depth > MaxDataDepth {
			return fmt.Errorf("nests objects and arrays deeper than %d levels", MaxDataDepth)
		}
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case string:
		return writeString(buf, t)
	case json.Number:
		buf.WriteString(canonicalNumber(t))
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	default:
		return fmt.Errorf("holds an unsupported value of type %T", v)
	}
	return nil
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

// writeString writes s as a JSON string with only the escapes JSON requires, refusing U+0000
// (PostgreSQL's jsonb cannot store it).
func writeString(buf *bytes.Buffer, s string) error {
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0:
			return errors.New("holds U+0000 in a string, which cannot be stored")
		case c == '"':
			buf.WriteString(`\"`)
		case c == '\\':
			buf.WriteString(`\\`)
		case c < 0x20:
			switch c {
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			case '\b':
				buf.WriteString(`\b`)
			case '\f':
				buf.WriteString(`\f`)
			default:
				fmt.Fprintf(buf, `\u%04x`, c)
			}
		default:
			buf.WriteByte(c)
		}
	}
	buf.WriteByte('"')
	return nil
}
