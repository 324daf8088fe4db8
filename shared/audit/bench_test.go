package audit_test

import (
	"encoding/json"
	"strings"
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

// BenchmarkPrepareSchema measures what validating a payload against its service's schema adds
// to the write path: the same ~800-byte event_data under a registered service (gateway) and
// under one without a schema.
func BenchmarkPrepareSchema(b *testing.B) {
	d := audit.Defaults{Now: time.Now(), Principal: "gateway", RetentionClasses: audit.DefaultRetentionClasses}
	for _, service := range []string{"gateway", "unregistered"} {
		in := audittest.Input(b, nil)
		in.EventData = []byte(strings.Replace(string(in.EventData), `"service":"gateway"`, `"service":"`+service+`"`, 1))
		b.Run(service, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, errs := in.Prepare(d, audit.DefaultLimits); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}

// BenchmarkBuild measures a client building and checking a gateway event.
func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := audit.NewGatewayEvent("signal.received").WithCorrelationID("rr-1").WithSignalType("prometheus").
			WithFingerprint("a1b2c3").WithAlertName("KubePodCrashLooping", "critical").WithRiskScore(40).Build(); err != nil {
			b.Fatal(err)
		}
	}
}
