package audit

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	json "github.com/segmentio/encoding/json"
	"github.com/stretchr/testify/require"
)

// canonicalCorpus holds plain and odd event_data: escapes, numbers of every spelling, nesting,
// repeated members, and what must fail.
var canonicalCorpus = []string{
	`{}`, ` { } `, `{"a":1}`, `{"b":2,"a":1}`, `{"a":{"c":[1,2,{"z":null,"y":true}],"b":false}}`,
	`{"s":"plain","e":"tab\there \"quoted\" back\\slash \/ \u00e9 \u0001 \n\r\b\f"}`,
	`{"n":[0,-0,1.0,1e0,1E+2,-1.5e-3,12345678901234567890123,0.1,1e400,-0.0]}`,
	`{"a":1,"a":2}`, `{"k\u0041":"v"}`, `{"x":"\ud83d\ude00"}`, `{"x":"\ud800"}`, `{"x":"\u0000"}`,
	`{"x":"é ü 中文 🙂"}`, "{\"x\":\"\x01\"}", `{"a":[]}`, `{"a":[[]]}`, `{"a": [ 1 , 2 ] , "b" : { } }`,
	`[]`, `"s"`, `1`, `null`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
	`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a":"x}`, `{"a":"\x"}`, `{"a":"\u12"}`,
	`{"a":1} x`, `{"a":1}{}`, `{"a":[1,]}`, `{"a":[,1]}`, `{1:2}`, `{"a":+1}`, `{"a":"\u00zz"}`,
	strings.Repeat(`{"a":`, 32) + `1` + strings.Repeat(`}`, 32),
	strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33),
	`{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`,
	// Canonical already (kept as sent), and near misses that are not.
	`{"a":1,"b":[2,"x\n\u001f\"\\"],"c":{"d":null,"e":true},"é":"ü"}`, `{"a":"\u0000"}`, `{"a":"x\\u0000"}`,
	`{"a":-0}`, `{"a":1234567890123456}`, `{"a":"\/"}`, `{"a":"\u001F"}`, `{"a":"\u000a"}`, `{"b":1,"a":2}`,
	`{"a":"🙂"}`, `{"a\n":1}`, `{"a":1.5}`,
	strings.Repeat(`{"a":`, 33) + `{}` + strings.Repeat(`}`, 33),
}

// TestParseObject_AsJSONParse checks the fast decoder against json.Parse: the same value when
// it takes the input, and canonicalize's result the same as the reference implementation's
// (json.Parse, then the original writer) for every input.
func TestParseObject_AsJSONParse(t *testing.T) {
	t.Parallel()
	for _, in := range canonicalCorpus {
		checkCanonical(t, []byte(in))
	}
}

func FuzzCanonicalize(f *testing.F) {
	for _, in := range canonicalCorpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkCanonical(t, raw) })
}

func checkCanonical(t *testing.T, raw []byte) {
	t.Helper()
	var want any
	rest, perr := json.Parse(raw, &want, json.UseNumber)
	plain := perr == nil && len(bytes.TrimLeft(rest, " \t\r\n")) == 0
	// canonicalize refuses invalid UTF-8 before decoding; json.Parse would replace it.
	if got, ok := parseObject(raw); ok && utf8.Valid(raw) {
		require.True(t, plain, "parseObject took %q, which json.Parse refuses", raw)
		require.Equal(t, want, any(got), "%q", raw)
	}
	gotB, gotObj, gotErr := canonicalize(raw)
	wantB, wantErr := referenceCanonical(raw)
	if wantErr != nil {
		require.EqualError(t, gotErr, wantErr.Error(), "%q", raw)
		return
	}
	require.NoError(t, gotErr, "%q", raw)
	require.Equal(t, string(wantB), string(gotB), "%q", raw)
	require.Equal(t, want, any(gotObj), "%q", raw)
}

// referenceCanonical is canonicalize as it was before the fast decoder and writer: json.Parse
// and a bytes.Buffer writer, kept to hold the two to the same output.
func referenceCanonical(raw []byte) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("is not valid UTF-8")
	}
	var v any
	rest, err := json.Parse(raw, &v, json.UseNumber)
	if err != nil {
		return nil, fmt.Errorf("is not valid JSON: %s", jsonErrorText(err))
	}
	if len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return nil, errors.New("is not valid JSON: data after the value")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, errors.New("must be a JSON object")
	}
	var buf bytes.Buffer
	if err := refWrite(&buf, v, 1); err != nil {
		return nil, err
	}
	if buf.Len() > MaxDataBytes {
		return nil, fmt.Errorf("is %d bytes as compact JSON; at most %d (256 KiB) are accepted", buf.Len(), MaxDataBytes)
	}
	return buf.Bytes(), nil
}

func refWrite(buf *bytes.Buffer, v any, depth int) error {
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
			if err := refString(buf, k); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := refWrite(buf, t[k], depth+1); err != nil {
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
			if err := refWrite(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case string:
		return refString(buf, t)
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

func refString(buf *bytes.Buffer, s string) error {
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
