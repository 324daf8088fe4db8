package write

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/stretchr/testify/require"
)

var fastInputCorpus = []string{
	`{}`, ` {"event_id":"0193d2a4-7b1c-7def-8abc-0123456789ab","event_type":"a.b","event_data":{"a":[1,2.5e3,"x\n\u00e9"],"b":null}} `,
	`{"version":null,"duration_ms":12,"retention_days":-0,"is_sensitive":true,"event_data":null}`,
	`{"duration_ms":1.0}`, `{"duration_ms":1e2}`, `{"duration_ms":01}`, `{"duration_ms":99999999999999999999}`, `{"duration_ms":"1"}`,
	`{"is_sensitive":false,"is_sensitive":true}`, `{"event_type":"a.b","event_type":"c.d"}`, `{"Event_Type":"a.b"}`,
	`{"received_at":"x"}`, `{"unknown":1}`, `{"event_type":"a\"b"}`, `{"event_type":"a\u0000b"}`, `{"event_type":1}`,
	`{"event_data":"x"}`, `{"event_data":[1,]}`, `{"event_data":{"a":tru}}`, `{"event_data":{"a":"\x"}}`, `{"event_data":{"a":"\u12g4"}}`,
	`{"event_data":{"a":1}`, `{"event_data":{"a":1}}}`, `{"event_data":{"a":1}} x`, `{"event_data":-}`, `{"event_data":-01}`,
	`{"event_data":{"a":"\ud800"}}`, `{"event_data":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`,
	`{"event_type":"a.b","event_outcome":"success","correlation_id":"c","event_data":{"b":[1e6,-0,"\u00e9"],"a":{}}}`,
	"{\"namespace\":\"\xff\"}", "{\"namespace\":\"\xc3\xa9\"}", `{"event_data":{"a":1},"event_data":{"a":1}}`,
	`{"duration_ms":1,"duration_ms":1}`, `{"event_id":null,"event_id":null}`, `{"event_data":{"a":1,"b":2,"a":3}}`,
	`{"event_data":{"b":1,"a":2,"b":3}}`, `{"event_data":` + strings.Repeat(`{"a":`, 32) + `1` + strings.Repeat(`}`, 32) + `}`,
	`{"event_data":` + strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33) + `}`, `{"event_data":{"a":1e400}}`,
	`{"event_data":{"a":1e-400}}`, `{"event_type":"a.b",}`, `{,}`, `{"event_type" "a.b"}`, `{"actor_ip":"10.0.0.1","namespace":"é ü"}`, `[]`, `null`, `"x"`,
}

// TestFastInput_AsStrictParse holds the scan to strictParse: whatever it takes, strictParse
// takes too, to the same Input.
func TestFastInput_AsStrictParse(t *testing.T) {
	t.Parallel()
	for _, c := range fastInputCorpus[:3] {
		_, ok := fastInput([]byte(c))
		require.True(t, ok, "the plain case %s is scanned", c)
	}
	for _, c := range fastInputCorpus {
		checkFastInput(t, []byte(c))
		checkFastInput(t, []byte("["+c+"]"))
		checkFastInput(t, []byte("["+c+","+c+"]"))
	}
}

func FuzzFastInput(f *testing.F) {
	for _, c := range fastInputCorpus {
		f.Add([]byte(c))
		f.Add([]byte("[" + c + "]"))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkFastInput(t, raw) })
}

func checkFastInput(t *testing.T, raw []byte) {
	t.Helper()
	header := http.Header{"Content-Type": {"application/json"}}
	if in, ok := fastInput(raw); ok {
		// What the scan takes skips checkJSON: it must be what checkJSON takes.
		require.NoError(t, checkJSON(header, shapeJSON, raw), "fastInput took %q", raw)
		var want audit.Input
		require.True(t, strictParse(raw, &want), "fastInput took %q, which strictParse refuses", raw)
		sameInput(t, &want, in, raw)
	}
	if inputs, ok := fastBatch(raw); ok {
		require.NoError(t, checkJSON(header, shapeBatch, raw), "fastBatch took %q", raw)
		var want []audit.Input
		require.True(t, strictParse(raw, &want), "fastBatch took %q, which strictParse refuses", raw)
		require.Len(t, inputs, len(want))
		for i := range want {
			sameInput(t, &want[i], inputs[i], raw)
		}
	}
	// The body as a binary-mode CloudEvent's data: what fastData takes skips checkJSON too.
	var in audit.Input
	if fastData(&in, raw) {
		ce := http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}}
		require.NoError(t, checkJSON(ce, shapeCE, raw), "fastData took %q", raw)
		sameInput(t, &audit.Input{EventData: bytes.TrimSpace(raw)}, &in, raw)
	}
}

// sameInput compares two Inputs by what they hold (their JSON form, every field set or nil),
// not by what the fast decoder keeps beside it: event_data already read (Input.SetData).
func sameInput(t *testing.T, want, got *audit.Input, raw []byte) {
	t.Helper()
	w, err := json.Marshal(want)
	require.NoError(t, err)
	g, err := json.Marshal(got)
	require.NoError(t, err)
	require.Equal(t, string(w), string(g), "%q", raw)
	require.Equal(t, string(want.EventData), string(got.EventData), "%q", raw)
	if got.EventData != nil && string(got.EventData) != "null" {
		// What the scan handed Prepare is what Prepare would read.
		d := audit.Defaults{Now: time.Now(), Principal: "p", RetentionClasses: audit.DefaultRetentionClasses, Hash: true}
		ef, errsF := got.Prepare(d, audit.DefaultLimits)
		es, errsS := want.Prepare(d, audit.DefaultLimits)
		require.Equal(t, errsS, errsF, "%q", raw)
		if len(errsF) == 0 {
			require.Equal(t, string(es.EventData), string(ef.EventData), "%q", raw)
			if want.EventID == nil {
				ef.EventID, ef.EventHash = es.EventID, nil // each made its own id
				require.NoError(t, ef.SetHash())
			}
			require.Equal(t, es.EventHash, ef.EventHash, "%q", raw)
			require.Equal(t, es.ContentHash, ef.ContentHash, "%q", raw)
		}
	}
}
