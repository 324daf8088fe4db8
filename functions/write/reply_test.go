package write

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestReplies_AsEncodingJSON holds the hand-written replies to encoding/json's encoding of
// eventReply and batchReply.
func TestReplies_AsEncodingJSON(t *testing.T) {
	t.Parallel()
	encode := func(v any) string {
		var b bytes.Buffer
		require.NoError(t, json.NewEncoder(&b).Encode(v))
		return b.String()
	}
	for _, ts := range []time.Time{
		time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC),
		time.Date(2026, 11, 25, 10, 0, 0, 120000000, time.FixedZone("", 3600)),
	} {
		res := store.InsertResult{EventID: uuid.Must(uuid.NewV7()), EventTimestamp: ts}
		require.Equal(t, encode(eventReply{res.EventID.String(), ts, false, "event stored"}),
			string(appendEventReply(nil, res, false, "event stored")))
		require.Equal(t, encode(eventReply{res.EventID.String(), ts, true, "event already stored; nothing new was stored"}),
			string(appendEventReply(nil, res, true, "event already stored; nothing new was stored")))
	}
	for _, n := range []int{1, 3, 100} {
		results := make([]store.InsertResult, n)
		ids := make([]string, n)
		for i := range results {
			results[i].EventID = uuid.New()
			ids[i] = results[i].EventID.String()
		}
		for _, inserted := range []int{0, 1, n} {
			want := batchReply{EventIDs: ids, Accepted: inserted, Duplicates: n - inserted}
			want.Message = fmtMessage(inserted, n-inserted)
			require.Equal(t, encode(want), string(appendBatchReply(nil, results, inserted)))
		}
	}
}

func fmtMessage(accepted, dups int) string {
	b, _ := json.Marshal(accepted)
	c, _ := json.Marshal(dups)
	return string(b) + " events stored, " + string(c) + " duplicates"
}
