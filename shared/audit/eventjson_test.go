package audit_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// encodingJSON is what encoding/json's Encoder writes for v, without the newline.
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, json.NewEncoder(&buf).Encode(v))
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestEventAppendJSON_AsEncodingJSON(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	n := int64(-42)
	parent := uuid.MustParse("0192f0c4-8b7e-7c3a-9d2e-5f6a7b8c9d0e")
	full := audittest.Event(t, nil)
	full.ActorIP, full.ResourceType, full.ResourceID, full.ResourceName = s("10.0.0.1"), s("pod"), s("p-1"), s(`a "quoted" <name> & more`)
	full.ParentEventID, full.TraceID, full.SpanID, full.Namespace = &parent, s("t"), s("s"), s("ns")
	full.ClusterID, full.Severity, full.DurationMS, full.ErrorCode = s("c"), s("high"), &n, s("E1")
	full.ErrorMessage = s("line\nbreak\ttab \x01 \u2028 \u2029 é 日本 \xff bad utf-8 \\ back")
	full.IsSensitive = true
	full.Erased, full.Withheld = []string{"/actor_id", "/event_data/payload/recipient"}, []string{"/event_data"}
	full.EventTimestamp = time.Date(2026, 11, 26, 9, 30, 0, 123456000, time.UTC)
	full.ReceivedAt = time.Date(2026, 11, 26, 9, 30, 1, 0, time.UTC)
	bare := audittest.Event(t, nil)
	bare.EventHash, bare.HashVersion, bare.EventData = nil, 0, nil

	data := []string{
		`{}`,
		`{"a": 1, "b": [1, 2, {"c": null}], "d": true}`,
		"{\n\t\"x\" : \"<script>alert('&')</script>\" ,\r\n \"y\": \"\u2028\u2029\"}",
		`{"esc": "a \" quote, a \\ backslash, \u003c, \n", "num": -1.5e+300, "nested": {"deep": {"deeper": [[], {}]}}}`,
		`{"spaces in string": "  keep  them  ", "unicode": "é 日本 🙂"}`,
	}
	for _, d := range data {
		for _, base := range []audit.Event{full, bare} {
			e := base
			e.EventData = json.RawMessage(d)
			require.Equal(t, string(encodingJSON(t, e)), string(e.AppendJSON(nil)), "event_data %q", d)
		}
	}
	require.Equal(t, string(encodingJSON(t, bare)), string(bare.AppendJSON(nil)), "no event_data, no hash")
	// Appends to what is there.
	require.Equal(t, "x"+string(encodingJSON(t, full)), string(full.AppendJSON([]byte("x"))))
}

func FuzzEventAppendJSON(f *testing.F) {
	f.Add("gateway", `{"a": "<b>", "c": [1, 2.5, "\u2028"]}`)
	f.Add("\x00\x7f\"\\", "{\n}")
	f.Fuzz(func(t *testing.T, s string, data string) {
		if !json.Valid([]byte(data)) {
			return // event_data is always valid JSON as PostgreSQL prints it
		}
		e := audit.Event{EventType: s, CorrelationID: s, ErrorMessage: &s, EventData: json.RawMessage(data)}
		require.Equal(t, string(encodingJSON(t, e)), string(e.AppendJSON(nil)))
	})
}

func BenchmarkEventAppendJSON(b *testing.B) {
	events := make([]audit.Event, 100)
	for i := range events {
		events[i] = audittest.Event(b, nil)
	}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = buf[:0]
			for i := range events {
				buf = events[i].AppendJSON(buf)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			_ = json.NewEncoder(&buf).Encode(events)
		}
	})
}
