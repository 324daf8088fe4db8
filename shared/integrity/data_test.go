package integrity_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/stretchr/testify/require"
)

const (
	maxDepth = 32
	maxBytes = 256 << 10
)

func TestParseData(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32)
	tooDeep := strings.Repeat(`[`, 33) + strings.Repeat("]", 33)
	for _, tc := range []struct{ in, stored, hashed, err string }{
		{`{"b":1,"a":[1.50,1e2,-0,12345678901234567890123]}`, `{"a":[1.5,100,0,12345678901234567890123],"b":1}`, `{"a":[1.5,100,0,1.2345678901234568e+22],"b":1}`, ""},
		{`{"s":"\u003c\/\"\n"}`, `{"s":"</\"\n"}`, "", ""},
		{`{"n":[1e6,1e-7,0.0001,123456.5]}`, `{"n":[1e+06,1e-07,0.0001,123456.5]}`, `{"n":[1000000,1e-7,0.0001,123456.5]}`, ""},
		{`{"😀":1,"\ufb33":2}`, "{\"\ufb33\":2,\"😀\":1}", "{\"😀\":1,\"\ufb33\":2}", ""},
		{` { "z" : { "b" : [ ] , "a" : { } } , "a" : "\u00e9\u0001" } `, `{"a":"é\u0001","z":{"a":{},"b":[]}}`, "", ""},
		{deep, deep, "", ""},
		{`{"x":` + tooDeep + `}`, "", "", "deeper than 32"},
		{`{"s":"a\u0000"}`, "", "", "U+0000"},
		{"{\"s\":\"\xff\"}", "", "", "UTF-8"},
		{`{"a":1} {}`, "", "", "after the value"},
		{`{"a":`, "", "", "not valid JSON"},
		{`{"a":01}`, "", "", "not valid JSON"},
		{`"x"`, "", "", "must be a JSON object"},
		{`{"a":1,"a":2}`, "", "", "I-JSON"},
		{`{"a":"\ud800"}`, "", "", "I-JSON"},
		{`{"a":1e400}`, "", "", "I-JSON"},
		{`{"a":1e-400}`, "", "", "I-JSON"},
		{`{"x":"` + strings.Repeat("a", maxBytes) + `"}`, "", "", "256 KiB"},
	} {
		d, err := integrity.ParseData([]byte(tc.in), maxDepth, maxBytes)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in[:min(len(tc.in), 40)])
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.stored, string(d.Stored), tc.in)
		require.Equal(t, cmpOr(tc.hashed, tc.stored), string(d.Hashed), tc.in)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// dataCorpus holds plain and odd event_data: escapes, numbers of every spelling, nesting,
// repeated members, and what must fail.
var dataCorpus = []string{
	`{}`, ` { } `, `{"a":1}`, `{"b":2,"a":1}`, `{"a":{"c":[1,2,{"z":null,"y":true}],"b":false}}`,
	`{"s":"plain","e":"tab\there \"quoted\" back\\slash \/ \u00e9 \u0001 \n\r\b\f"}`,
	`{"n":[0,-0,1.0,1e0,1E+2,-1.5e-3,12345678901234567890123,0.1,1e400,-0.0]}`,
	`{"a":1,"a":2}`, `{"":0,"0":0,"":0}`, `{"k\u0041":"v"}`, `{"x":"\ud83d\ude00"}`, `{"x":"\ud800"}`, `{"x":"\u0000"}`,
	`{"x":"é ü 中文 🙂"}`, "{\"x\":\"\x01\"}", `{"a":[]}`, `{"a":[[]]}`, `{"a": [ 1 , 2 ] , "b" : { } }`,
	`[]`, `"s"`, `1`, `null`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
	`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a":"x}`, `{"a":"\x"}`, `{"a":"\u12"}`,
	`{"a":1} x`, `{"a":1}{}`, `{"a":[1,]}`, `{"a":[,1]}`, `{1:2}`, `{"a":+1}`, `{"a":"\u00zz"}`,
	strings.Repeat(`{"a":`, 32) + `1` + strings.Repeat(`}`, 32),
	strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33),
	`{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `}`,
	`{"a":1,"b":[2,"x\n\u001f\"\\"],"c":{"d":null,"e":true},"é":"ü"}`, `{"a":"\u0000"}`, `{"a":"x\\u0000"}`,
	`{"a":-0}`, `{"a":1234567890123456}`, `{"a":"\/"}`, `{"a":"\u001F"}`, `{"a":"\u000a"}`, `{"b":1,"a":2}`,
	`{"a":"🙂"}`, `{"a\n":1}`, `{"a":1.5}`, `{"b":{"y":1,"x":2},"a":[{"d":1,"c":2}]}`, `{"😀":1,"\ufb33":2}`,
	`{"a":1e6,"b":1e21,"c":1e-7,"d":9007199254740993,"e":-1e-400}`,
	strings.Repeat(`{"a":`, 33) + `{}` + strings.Repeat(`}`, 33),
}

func TestParseData_AsReference(t *testing.T) {
	t.Parallel()
	for _, in := range dataCorpus {
		checkData(t, []byte(in))
	}
}

// FuzzParseData holds ParseData to independent references: encoding/json for what is JSON and
// what it decodes to, the stored form's rules written plainly over the decoded value, and
// Canonicalize (RFC 8785, checked against the RFC's own examples) for the hashed form.
func FuzzParseData(f *testing.F) {
	for _, in := range dataCorpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkData(t, raw) })
}

func checkData(t *testing.T, raw []byte) {
	t.Helper()
	d, err := integrity.ParseData(raw, maxDepth, maxBytes)
	// Read in place, inside a longer text, it is the same (not decoded), and ends where the
	// value ends.
	text := `[1,` + string(raw) + `,2]`
	in, end, inErr := integrity.ParseDataIn(text, 3, maxDepth, maxBytes)
	inOK := inErr == nil && strings.TrimLeft(text[end:], " \t\r\n") == ",2]"
	require.Equal(t, err == nil, inOK, "%q: %v, in place: %v", raw, err, inErr)
	var want any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	valid := json.Valid(raw) && utf8.Valid(raw) && dec.Decode(&want) == nil
	obj, isObject := want.(map[string]any)
	var ref bytes.Buffer
	refOK := valid && isObject && refStored(&ref, obj, 1) == nil && ref.Len() <= maxBytes
	if err != nil {
		if refOK {
			// What the reference takes is refused only by I-JSON's rules, which encoding/json
			// does not apply.
			require.Contains(t, err.Error(), "I-JSON", "%q", raw)
		}
		return
	}
	require.True(t, refOK, "ParseData took %q, which the reference refuses", raw)
	require.Equal(t, want, any(d.Value), "%q", raw)
	require.Equal(t, ref.String(), string(d.Stored), "%q", raw)
	jcs, err := integrity.Canonicalize(raw)
	require.NoError(t, err, "%q", raw)
	require.Equal(t, string(jcs), string(d.Hashed), "%q", raw)
	require.Nil(t, in.Value)
	in.Value = d.Value
	require.Equal(t, d, in, "%q", raw)
	require.Equal(t, 3+len(bytes.TrimRight(raw, " \t\r\n")), end, "%q", raw)
	again, err := integrity.ParseData(d.Stored, maxDepth, maxBytes)
	require.NoError(t, err, "%q", raw)
	require.Equal(t, string(d.Stored), string(again.Stored), "the stored form is its own stored form")
	if d.NumbersAsSent {
		// Read from the stored form, the value is the one sent, numbers spelled alike.
		require.Equal(t, d.Value, again.Value, "%q", raw)
	}
	// Version 2's member digests take where the scan found each member's end (Data.Layout):
	// the hash is the one of reading every value again.
	e := integrity.Event{ActorID: "a", EventData: d.Hashed, DataHashed: true, DataLayout: d.Layout,
		HashSalt: make([]byte, integrity.SaltKeySize)}
	laidOut, laidOutErr := e.Hash(integrity.HashVersionMembers)
	e.DataLayout = integrity.Layout{}
	read, readErr := e.Hash(integrity.HashVersionMembers)
	require.Equal(t, readErr, laidOutErr, "%q", raw)
	require.Equal(t, read, laidOut, "%q", raw)
}

// refStored writes the stored form plainly: names sorted by bytes, integers as sent, other
// numbers as the shortest 'g' spelling of their double, only the escapes JSON requires.
func refStored(buf *bytes.Buffer, v any, depth int) error {
	switch t := v.(type) {
	case map[string]any:
		if depth > maxDepth {
			return fmt.Errorf("too deep")
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := refString(buf, k); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := refStored(buf, t[k], depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		if depth > maxDepth {
			return fmt.Errorf("too deep")
		}
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := refStored(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case string:
		return refString(buf, t)
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if s == "-0" {
				s = "0"
			}
			buf.WriteString(s)
			return nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return err
		}
		if f == 0 {
			buf.WriteString("0")
			return nil
		}
		buf.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	}
	return nil
}

func refString(buf *bytes.Buffer, s string) error {
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0:
			return fmt.Errorf("U+0000")
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

// benchData is event_data as services send it: an envelope around an 800-byte payload, its
// members in the order a struct marshals them (unsorted).
var benchData = []byte(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success",
"payload":{"signal_type":"prometheus","alert_name":"KubePodCrashLooping","fingerprint":"rr-0193d2a4",
"severity":"critical","namespace":"production","labels":{"app":"checkout","team":"payments","pod":"checkout-7d9f8b6c5-x2k4q",
"container":"api","cluster":"prod-eu-west-1"},"annotations":{"summary":"Pod is crash looping",
"description":"Pod production/checkout-7d9f8b6c5-x2k4q (api) is restarting 2.5 times / 10 minutes.",
"runbook_url":"https://runbooks.example.com/KubePodCrashLooping"},"starts_at":"2026-11-25T10:00:00Z",
"deduplicated":false,"storm_detected":false,"risk_score":77,"retries":2,"remediation_request":"rr-0193d2a4",
"filler":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)

// BenchmarkParseData is the write path's one read of event_data: checked, written in both
// forms and decoded.
func BenchmarkParseData(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		if _, err := integrity.ParseData(benchData, maxDepth, maxBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalize is the sealer's and the verifiers' read of a stored event_data.
func BenchmarkCanonicalize(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		if _, err := integrity.Canonicalize(benchData); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPlainRun holds the eight-bytes-at-a-time test to the plain one: it stops at the first
// quote, backslash, control character or byte above 0x7F, wherever it lies.
func TestPlainRun(t *testing.T) {
	t.Parallel()
	for _, stop := range []byte{'"', '\\', 0, 0x1f, 0x80, 0xff, 0xc3} {
		for n := range 40 {
			for at := range n + 1 {
				b := []byte(strings.Repeat("aZ ~!#[]{}", 4)[:n])
				if at < n {
					b[at] = stop
				}
				for from := range min(at+1, 10) {
					want := from
					for want < len(b) && b[want] >= 0x20 && b[want] < 0x80 && b[want] != '"' && b[want] != '\\' {
						want++
					}
					require.Equal(t, want, integrity.PlainRun(string(b), from), "%q from %d", b, from)
				}
			}
		}
	}
}
