package write

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
)

// FuzzDecode feeds arbitrary bodies to every decoder (JSON event, JSON batch, header form,
// CloudEvents structured, batch and binary) and validation. None may panic, and whatever they
// accept must be storable: valid UTF-8, event_data a canonical JSON object without U+0000,
// hashed as a verifier recomputes it.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-1","event_data":{"a":[1,2.5,"x"]}}`,
		`[{"event_type":"a.b","event_outcome":"failure","correlation_id":"c","event_data":{}},{"event_id":"01a215d3-8005-732f-a9f2-5aea589037c8"}]`,
		`{"specversion":"1.0","id":"1","source":"/s","type":"a.b","correlationid":"c","datacontenttype":"application/json","data":{"k":"v"}}`,
		`[{"specversion":"1.0","id":"1","source":"/s","type":"a.b","correlationid":"c","data":{"k":null}}]`,
		`{"event_data":{"s":"\u0000"},"duration_ms":1e3,"retention_days":-1}`,
		`{"version":"1.0","service":"gateway","operation":"x","status":"ok","payload":{"deep":[[[[[]]]]]}}`,
		"{\"a\":\"\xff\"}", `{`, `[]`, `null`, `"x"`, `{"colour":1,"is_sensitive":"yes"}`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	d := audit.Defaults{Now: now, Principal: "fuzz", RetentionClasses: audit.DefaultRetentionClasses, Hash: true}
	check := func(t *testing.T, in *audit.Input) {
		if in == nil {
			return
		}
		e, errs := in.Prepare(d, audit.DefaultLimits)
		if len(errs) > 0 {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(e.EventData, &obj); err != nil {
			t.Fatalf("accepted event_data is not a JSON object: %v: %q", err, e.EventData)
		}
		again, err := audit.CanonicalJSON(e.EventData)
		if err != nil || string(again) != string(e.EventData) {
			t.Fatalf("accepted event_data is not canonical: %q -> %q (%v)", e.EventData, again, err)
		}
		if len(e.ContentHash) != 32 || e.RetentionDays < audit.MinRetentionDays {
			t.Fatalf("accepted event is not prepared: %+v", e)
		}
		// The hash Prepare takes from its scan is the one a verifier recomputes from the fields.
		if h, err := e.ComputeHash(e.HashVersion); err != nil || string(h[:]) != string(e.EventHash) {
			t.Fatalf("event hash %x, recomputed %x (%v): %q", e.EventHash, h, err, e.EventData)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, _ := decodeInput(body)
		check(t, in)
		inputs, _ := decodeBatch(body)
		for _, in := range inputs {
			check(t, in)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("X-Event-Type", "gateway.x.y")
		h.Set("X-Service", "svc")
		h.Set("X-Correlation-ID", "c")
		h.Set("X-Outcome", "success")
		hin, _ := headerInput(h, body)
		check(t, hin)
		for _, ct := range []string{"application/cloudevents+json", "application/cloudevents-batch+json"} {
			h := http.Header{}
			h.Set("Content-Type", ct)
			inputs, _, _ := decodeCloudEvents(context.Background(), h, body)
			for _, in := range inputs {
				check(t, in)
			}
		}
		bh := http.Header{}
		bh.Set("Content-Type", "application/json")
		for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Source": "/s", "Ce-Type": "a.b", "Ce-Correlationid": "c"} {
			bh.Set(k, v)
		}
		inputs, _, _ = decodeCloudEvents(context.Background(), bh, body)
		for _, in := range inputs {
			check(t, in)
		}
	})
}
