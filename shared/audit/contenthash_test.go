package audit_test

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/stretchr/testify/require"
)

// TestContentHash_Pinned pins the content hash of an event that uses every kind of field:
// stored hashes tell a retry from a conflict, so a change to how the hash is computed must
// never change its value.
func TestContentHash_Pinned(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	n := int64(1234)
	yes := true
	in := &audit.Input{EventID: s("0193d2a4-7b1c-7def-8abc-0123456789ab"), Version: s("1.0"), EventTimestamp: s("2026-11-25T10:00:00.5+01:00"),
		EventType: s("gateway.signal.received"), EventOutcome: s("success"), CorrelationID: s("rr-1"), ActorIP: s("10.0.0.1"),
		ParentEventID: s("0193D2A4-7B1C-7DEF-8ABC-0123456789AB"), DurationMS: &n, RetentionDays: &n, IsSensitive: &yes,
		ErrorMessage: s("x"), EventData: []byte(`{"b":[1,2.50,"é\n"],"a":{"z":null}}`)}
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	e, errs := in.Prepare(audit.Defaults{Now: now, Principal: "p", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	require.Empty(t, errs)
	require.Equal(t, "99cb24e2152524d85f41728390e2970a4c8dbd056593a86ed87ced49d9528ce5", hex.EncodeToString(e.ContentHash))
}
