package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/erasure"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/coldtest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestVerifyArchive_ErasedColdEvent: verify -archive passes over a cold file an erasure
// rewrote, with and without the database's log, and still names a change made after the
// erasure: the event, its file and the member.
func TestVerifyArchive_ErasedColdEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.NewPool(t))
	url := "file://" + t.TempDir()
	bucket, err := archive.OpenBucket(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { bucket.Close() })
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -4, 0)
	data := `{"version":"1.0","service":"notification","operation":"message.sent","status":"success","payload":{"recipient":"alice@example.com","attempts":2}}`
	var events []audit.Event
	for i := range 5 {
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-verify", RetentionDays: 2557, EventTimestamp: month.Add(time.Duration(i) * time.Hour), EventData: json.RawMessage(data)})
		require.NoError(t, ledger.Hash(&e))
		events = append(events, e)
	}
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = (&ledger.Sealer{Store: st}).SealAll(ctx)
	require.NoError(t, err)
	tier := archive.NewCold(bucket, archive.ColdOptions{})
	mover := &cold.Mover{Store: st, Tier: tier}
	coldtest.Run(t, st, coldtest.Runner(t, st, mover, "2557=2", func() time.Time { return now }))
	_, err = erasure.Erase(ctx, st, erasure.Request{EventIDs: []uuid.UUID{events[2].EventID}, Members: []string{"/event_data/payload/recipient"},
		Reason: "art. 17", By: "dpo", Cold: mover})
	require.NoError(t, err)

	verify := func(sealed archive.LeafHashes) (string, error) {
		var out bytes.Buffer
		err := verifyArchives(ctx, url, "", nil, sealed, json.NewEncoder(&out))
		return out.String(), err
	}
	for _, sealed := range []archive.LeafHashes{nil, leafHashes(st)} {
		out, err := verify(sealed)
		require.NoError(t, err, out)
		require.Equal(t, 1, strings.Count(out, `"cold_file"`), "one cold file, the rewritten one: %s", out)
		require.NotContains(t, out, "alice")
	}

	// The rewritten file forged whole with a manifest to match: attempts changed in the erased
	// event.
	files, err := tier.Manifests(ctx)
	require.NoError(t, err)
	require.Len(t, files, 1)
	var rows []audit.Event
	require.NoError(t, tier.Scan(ctx, files[0], func(r *archive.ColdRow) error {
		e := r.Event()
		if e.EventID == events[2].EventID {
			e.EventData = json.RawMessage(strings.Replace(string(e.EventData), `"attempts": 2`, `"attempts": 3`, 1))
			require.Contains(t, string(e.EventData), `"attempts": 3`, "event_data is in jsonb's form, as in every cold file")
		}
		rows = append(rows, e)
		return nil
	}))
	_, err = tier.WriteMonth(ctx, 2557, month, func(fn func(*audit.Event) error) (int64, error) {
		for i := range rows {
			if err := fn(&rows[i]); err != nil {
				return 0, err
			}
		}
		return int64(len(rows)), nil
	})
	require.NoError(t, err)
	require.NoError(t, tier.Delete(ctx, files[0].Key))
	out, err := verify(leafHashes(st))
	require.ErrorContains(t, err, "integrity problems found")
	require.Contains(t, out, events[2].EventID.String())
	require.Contains(t, out, "/event_data/payload/attempts no longer has the value it was committed with")
}
