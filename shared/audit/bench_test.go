package audit_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
)

// BenchmarkPrepare measures validation, defaults and the content hash of a realistic event
// (~800-byte event_data): the write path's CPU per event outside the database.
func BenchmarkPrepare(b *testing.B) {
	in := audittest.Input(b, nil)
	d := audit.Defaults{Now: time.Now(), Principal: "gateway", RetentionClasses: audit.DefaultRetentionClasses}
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := in.Prepare(d, audit.DefaultLimits); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkDecodeAndPrepare adds decoding the request body, as the write function does.
func BenchmarkDecodeAndPrepare(b *testing.B) {
	body, err := json.Marshal(audittest.Input(b, nil))
	if err != nil {
		b.Fatal(err)
	}
	d := audit.Defaults{Now: time.Now(), Principal: "gateway", RetentionClasses: audit.DefaultRetentionClasses}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var in audit.Input
		if err := json.Unmarshal(body, &in); err != nil {
			b.Fatal(err)
		}
		if _, errs := in.Prepare(d, audit.DefaultLimits); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
