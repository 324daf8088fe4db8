package ledger_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// BenchmarkHash is the write path's cost of tamper evidence per event (~800-byte event_data).
func BenchmarkHash(b *testing.B) {
	in := audittest.Input(b, nil)
	e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "bench", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := ledger.HashDecoded(&e, in.DecodedData()); err != nil {
			b.Fatal(err)
		}
	}
}

// The direct RFC 8785 writer and the generic path (the event's JSON, canonicalized) agree on
// every field, set or null: an auditor recomputes hashes with the generic one.
func TestRecomputeMatchesTheJSONForm(t *testing.T) {
	t.Parallel()
	prepare := func(opts *audittest.EventOpts) (audit.Event, map[string]any) {
		in := audittest.Input(t, opts)
		e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "p", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
		require.Empty(t, errs)
		return e, in.DecodedData()
	}
	decoded := map[uuid.UUID]map[string]any{}
	full, d := prepare(&audittest.EventOpts{EventData: json.RawMessage(`{"z":[1.0,2e3,-0.0,"\u2028\t<"],"a":{"b":null},"é":true}`)})
	decoded[full.EventID] = d
	s := func(v string) *string { return &v }
	dur := int64(9007199254740993)
	parent := uuid.New()
	full.ActorIP, full.ResourceType, full.ResourceID, full.ResourceName = s("2001:db8::1"), s("Pod"), s("p-1"), s("name \"quoted\"")
	full.ParentEventID, full.TraceID, full.SpanID, full.Namespace, full.ClusterID = &parent, s("t"), s("sp"), s("ns"), s("c")
	full.Severity, full.DurationMS, full.ErrorCode, full.ErrorMessage, full.IsSensitive = s("high"), &dur, s("E1"), s("line\nbreak \x01"), true
	minimal, d := prepare(nil)
	decoded[minimal.EventID] = d
	for _, e := range []audit.Event{full, minimal} {
		b, err := json.Marshal(e)
		require.NoError(t, err)
		want, err := integrity.EventHash(b)
		require.NoError(t, err)
		got, err := ledger.Recompute(e)
		require.NoError(t, err)
		require.Equal(t, want, got, "%s", b)
		withDecoded := e
		require.NoError(t, ledger.HashDecoded(&withDecoded, decoded[e.EventID]))
		require.Equal(t, audit.Digest(want[:]), withDecoded.EventHash)
	}
}
