package ledger_test

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/stretchr/testify/require"
)

// TestHashes_Pinned pins both hashes of an event whose event_data has what the stored and the
// RFC 8785 forms spell differently (1e6, an integer beyond 2^53, 1e-7, -0.0, names beyond
// U+FFFF), taken from the code that hashed stored events before one scan made both forms:
// stored hashes of version 1 must verify for ever, and stored content hashes tell retries.
func TestHashes_Pinned(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	n := int64(1234)
	in := &audit.Input{EventID: s("0193d2a4-7b1c-7def-8abc-0123456789ab"), Version: s("1.0"), EventTimestamp: s("2026-11-25T10:00:00.5+01:00"),
		EventType: s("gateway.signal.received"), EventOutcome: s("success"), CorrelationID: s("rr-1"), ActorIP: s("10.0.0.1"),
		ParentEventID: s("0193D2A4-7B1C-7DEF-8ABC-0123456789AB"), DurationMS: &n, RetentionDays: &n,
		ErrorMessage: s("x\n\"<"), Severity: s("HIGH"), EventData: []byte(`{"b":[1,2.50,"é\n",1e6,12345678901234567890,1e-7,-0.0],"a":{"z":null,"\ud83d\ude00":1,"\ufb33":2}}`)}
	now := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	e, errs := in.Prepare(audit.Defaults{Now: now, Principal: "p", RetentionClasses: audit.DefaultRetentionClasses, Hash: true}, audit.DefaultLimits)
	require.Empty(t, errs)
	const eventHash = "5dc77ceb737b08e4c1d0d1ef3362f57334884fa5f095f5046c1f4929735560dc"
	require.Equal(t, "ad6c698299652320aa704889210d4f5d9cb6330ae009edf7a36db13bf293bb6e", hex.EncodeToString(e.ContentHash))
	require.Equal(t, eventHash, hex.EncodeToString(e.EventHash), "hashed within Prepare")
	require.Equal(t, integrity.HashVersion, e.HashVersion)
	h, err := ledger.Recompute(e)
	require.NoError(t, err)
	require.Equal(t, eventHash, h.String(), "recomputed from the stored form")
	// As PostgreSQL prints the stored jsonb: other spacing, order and spellings, one value.
	e.EventData = []byte(`{"a": {"z": null, "\ud83d\ude00": 1, "\ufb33": 2}, "b": [1, 2.5, "\u00e9\n", 1000000, 12345678901234567890, 0.0000001, 0]}`)
	h, err = ledger.Recompute(e)
	require.NoError(t, err)
	require.Equal(t, eventHash, h.String(), "recomputed from jsonb's spelling")
	_, err = e.ComputeHash(integrity.HashVersion + 1)
	require.Error(t, err, "a version this build does not know is not guessed")
}
