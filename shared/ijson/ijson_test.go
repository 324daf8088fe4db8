package ijson_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/ijson"
	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	cases := []struct {
		name, text string
		kind       ijson.Kind // 0: valid
		where      string
	}{
		{"object", `{"a":1,"b":[true,false,null,"x",-0.5e3],"c":{}}`, 0, ""},
		{"scalar", ` "x" `, 0, ""},
		{"escaped names differ", `{"a":1,"\u0062":2}`, 0, ""},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, 0, ""},
		{"subnormal", `[5e-324]`, 0, ""},
		{"zero with exponent", `[0e-400, 0.000e5]`, 0, ""},
		{"long integer", `[123456789012345678901234567890]`, 0, ""},
		{"depth at limit", deep(4), 0, ""},
		{"depth over limit", deep(5), ijson.Depth, "a.a.a.a"},
		{"array depth", `[[[[[1]]]]]`, ijson.Depth, "[0][0][0][0]"},
		{"duplicate", `{"event_outcome":"success","event_outcome":"failure"}`, ijson.Duplicate, "event_outcome"},
		{"duplicate by escape", `{"x":{"a":1,"\u0061":2}}`, ijson.Duplicate, "x.a"},
		{"duplicate in a large object", `{` + manyMembers(40) + `,"m7":0}`, ijson.Duplicate, "m7"},
		{"duplicate in a batch", `[{"a":1},{"b":1,"b":2}]`, ijson.Duplicate, "[1].b"},
		{"lone high surrogate", `{"a":"x\ud800y"}`, ijson.Surrogate, "a"},
		{"lone low surrogate", `{"a":"\udc00"}`, ijson.Surrogate, "a"},
		{"high then non-low", `{"a":"\ud800\u0041"}`, ijson.Surrogate, "a"},
		{"overflow", `{"n":1e400}`, ijson.Number, "n"},
		{"underflow", `{"n":1e-400}`, ijson.Number, "n"},
		{"underflow as decimal", `{"n":0.` + strings.Repeat("0", 400) + `1}`, ijson.Number, "n"},
		{"empty", ``, ijson.Syntax, ""},
		{"trailing", `{} {}`, ijson.Syntax, ""},
		{"unclosed", `{"a":[1,2`, ijson.Syntax, "a[1]"},
		{"bad literal", `{"a":tru}`, ijson.Syntax, "a"},
		{"leading zero", `[01]`, ijson.Syntax, "[0]"},
		{"control char", "[\"a\tb\"]", ijson.Syntax, "[0]"},
		{"bad escape", `["\x"]`, ijson.Syntax, "[0]"},
		{"invalid UTF-8", "[\"\xff\"]", ijson.Syntax, "[0]"},
		{"trailing comma", `{"a":1,}`, ijson.Syntax, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := ijson.Check([]byte(tc.text), ijson.Limits{MaxDepth: 4})
			if tc.kind == 0 {
				require.Empty(t, errs)
				return
			}
			require.NotEmpty(t, errs)
			require.Equal(t, tc.kind, errs[0].Kind, errs[0].Error())
			require.Equal(t, tc.where, errs[0].Where(), errs[0].Error())
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m`)
		b.WriteString(strconv.Itoa(i))
		b.WriteString(`":0`)
	}
	return b.String()
}

func TestCheck_ReportsEveryViolationUntilFatal(t *testing.T) {
	t.Parallel()
	errs := ijson.Check([]byte(`{"a":1,"a":2,"b":"\ud800","c":1e999,"d":[[[[[[1]]]]]],"e":1,"e":2}`), ijson.Limits{MaxDepth: 4})
	kinds := make([]ijson.Kind, len(errs))
	for i, e := range errs {
		kinds[i] = e.Kind
	}
	// The depth error ends the check: the second duplicate after it is not reached.
	require.Equal(t, []ijson.Kind{ijson.Duplicate, ijson.Surrogate, ijson.Number, ijson.Depth}, kinds)
	require.Equal(t, "d[0][0][0]", ijson.FirstFatal(errs).Where())
}

func TestCheck_MaxErrors(t *testing.T) {
	t.Parallel()
	text := `[` + strings.TrimSuffix(strings.Repeat(`1e999,`, 100), ",") + `]`
	require.Len(t, ijson.Check([]byte(text), ijson.Limits{MaxErrors: 5}), 5)
}

// TestCheck_AsEncodingJSON holds the grammar to encoding/json's on a corpus of odd texts.
func TestCheck_AsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, text := range corpus {
		checkAgainstStd(t, []byte(text))
	}
}

var corpus = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `-`, `1.`, `.5`, `1e`, `1e+`, `1E-2`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`,
	`{"a" : 1 , "b" : [ ] }`, "\t\n\r [1]", `nul`, `nulll`, `"\u00e9"`, `"\uD834\uDD1E"`, `"\u12"`, `"\/"`,
	`{"a":1}}`, `[[]]]`, `"a` + "\x7f" + `"`, `-01`, `1.5e308`, `2e308`, `[true,false]`, `{"":0}`,
}

func checkAgainstStd(t *testing.T, text []byte) {
	t.Helper()
	if !utf8.Valid(text) {
		return // encoding/json does not check UTF-8 inside strings
	}
	errs := ijson.Check(text, ijson.Limits{MaxDepth: 10000})
	syntaxErr := false
	for _, e := range errs {
		if e.Kind == ijson.Syntax {
			syntaxErr = true
		}
	}
	require.Equal(t, json.Valid(text), !syntaxErr, "%q: %v", text, errs)
}

func FuzzCheck(f *testing.F) {
	for _, text := range corpus {
		f.Add([]byte(text))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		checkAgainstStd(t, text)
	})
}

// BenchmarkCheck shows the cost of a check growing with the bytes of a text, not its shape:
// compare ns/byte (the B/s column) across the cases.
func BenchmarkCheck(b *testing.B) {
	event := []byte(`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-1",` +
		`"event_data":{"version":"1.0","service":"gateway","operation":"signal.received","status":"success",` +
		`"payload":{"alert_name":"HighMemory","namespace":"prod","labels":{"app":"api","tier":"web"},"count":3,"ratio":0.25}}}`)
	cases := map[string][]byte{
		"event":      event,
		"deep-1k":    []byte(strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000)),
		"deep-40k":   []byte(strings.Repeat(`{"a":`, 40000) + "1" + strings.Repeat("}", 40000)),
		"wide-1MB":   []byte(`[` + strings.TrimSuffix(strings.Repeat(string(event)+",", 1<<20/len(event)), ",") + `]`),
		"members-1k": []byte(`{` + manyMembers(1000) + `}`),
	}
	for name, text := range cases {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				ijson.Check(text, ijson.Limits{MaxDepth: 34})
			}
		})
	}
}
