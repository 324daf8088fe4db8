package ledger_test

import (
	"encoding/json"
	"testing"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// BenchmarkHash is the write path's cost of tamper evidence per event (~800-byte event_data).
func BenchmarkHash(b *testing.B) {
	e := audittest.Event(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := ledger.Hash(&e); err != nil {
			b.Fatal(err)
		}
	}
}

// The direct RFC 8785 writer and the generic path (the event's JSON, canonicalized) agree on
// every field, set or null: an auditor recomputes hashes with the generic one.
func TestRecomputeMatchesTheJSONForm(t *testing.T) {
	t.Parallel()
	full := audittest.Event(t, &audittest.EventOpts{EventData: json.RawMessage(`{"z":[1.0,2e3,-0.0,"\u2028\t<"],"a":{"b":null},"é":true}`)})
	s := func(v string) *string { return &v }
	dur := int64(9007199254740993)
	parent := uuid.New()
	full.ActorIP, full.ResourceType, full.ResourceID, full.ResourceName = s("2001:db8::1"), s("Pod"), s("p-1"), s("name \"quoted\"")
	full.ParentEventID, full.TraceID, full.SpanID, full.Namespace, full.ClusterID = &parent, s("t"), s("sp"), s("ns"), s("c")
	full.Severity, full.DurationMS, full.ErrorCode, full.ErrorMessage, full.IsSensitive = s("high"), &dur, s("E1"), s("line\nbreak \x01"), true
	minimal := audittest.Event(t, nil)
	for _, e := range []audit.Event{full, minimal} {
		b, err := json.Marshal(e)
		require.NoError(t, err)
		want, err := integrity.EventHash(b)
		require.NoError(t, err)
		got, err := ledger.Recompute(e)
		require.NoError(t, err)
		require.Equal(t, want, got, "%s", b)
	}
}
