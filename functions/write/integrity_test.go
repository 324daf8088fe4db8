package write_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// Every stored event carries the hash of its stored fields, as the verifier recomputes it
// from the row read back; a payload without an RFC 8785 form is refused, not stored unhashed.
func TestWrittenEventsCarryTheirHash(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	body := `[{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-h","actor_ip":"::FFFF:192.0.2.7",
	  "event_timestamp":"2026-11-26T08:00:00.1234567+02:00",
	  "event_data":{"n":1.50,"e":1E3,"s":"caf\u00e9","deep":{"b":[1,{"z":null}],"a":true}}},
	 {"event_type":"gateway.signal.received","event_outcome":"failure","correlation_id":"rr-h","event_data":{"k":"v"}}]`
	r := f.post(t, "/api/v1/audit/events", "application/json", []byte(body))
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	rows, err := f.pool.Query(ctx, `SELECT event_id FROM audit_events WHERE correlation_id = 'rr-h'`)
	require.NoError(t, err)
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 2)
	for _, id := range ids {
		e, err := f.store.GetEvent(ctx, id)
		require.NoError(t, err)
		require.Len(t, e.EventHash, 32)
		require.Equal(t, ledger.DefaultHashVersion, e.HashVersion, "new events are hashed with version 2 by default")
		h, err := ledger.Recompute(e)
		require.NoError(t, err)
		require.Equal(t, audit.Digest(h[:]), e.EventHash, "the hash of the row as read back")
	}

	r = f.post(t, "/api/v1/audit/events", "application/json", []byte(`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-big","event_data":{"n":1e400}}`))
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	require.Contains(t, string(r.body), "event_data")
	var n int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE correlation_id = 'rr-big'`).Scan(&n))
	require.Zero(t, n)

	// A client may not set the integrity fields.
	r = f.post(t, "/api/v1/audit/events", "application/json", []byte(`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"rr-x","event_data":{},"event_hash":"00"}`))
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	require.Contains(t, string(r.body), "event_hash")
}
