package write

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/google/uuid"
	"github.com/kelseyhightower/envconfig"
)

// BenchmarkPrepareRequest measures what the write function does with a request's body before
// it reaches the committer: decoding, validation (with the gateway payload's schema), the
// content hash and the integrity hash, per request shape of the load generator. ns/op and
// allocs/op are per request; a batch holds 100 events.
func BenchmarkPrepareRequest(b *testing.B) {
	var cfg Config
	if err := envconfig.Process("", &cfg); err != nil {
		b.Fatal(err)
	}
	// No store: the committer is never reached.
	h, err := New(nil, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)

	single, err := json.Marshal(audittest.Input(b, nil))
	if err != nil {
		b.Fatal(err)
	}
	var batch bytes.Buffer
	batch.WriteByte('[')
	for i := range 100 {
		in := audittest.Input(b, nil)
		id := uuid.Must(uuid.NewV7()).String()
		in.EventID = &id
		ev, err := json.Marshal(in)
		if err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			batch.WriteByte(',')
		}
		batch.Write(ev)
	}
	batch.WriteByte(']')
	in := audittest.Input(b, nil)
	var data bytes.Buffer
	if err := json.Compact(&data, in.EventData); err != nil {
		b.Fatal(err)
	}
	ce := http.Header{}
	for k, v := range map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Type": *in.EventType,
		"Ce-Source": "gateway", "Ce-Id": uuid.Must(uuid.NewV7()).String(), "Ce-Correlationid": *in.CorrelationID,
		"Ce-Subject": "fp-1", "Ce-Outcome": "success", "Ce-Namespace": "production", "Ce-Severity": "info"} {
		ce.Set(k, v)
	}

	for _, tc := range []struct {
		name   string
		sh     shape
		body   []byte
		header http.Header
	}{
		{"json", shapeJSON, single, http.Header{"Content-Type": {"application/json"}}},
		{"batch100", shapeBatch, batch.Bytes(), http.Header{"Content-Type": {"application/json"}}},
		{"cloudevents", shapeCE, data.Bytes(), ce},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.body)))
			for b.Loop() {
				if _, _, _, err := h.prepareEvents(b.Context(), "writer", tc.header, tc.sh, tc.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
