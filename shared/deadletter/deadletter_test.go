package deadletter_test

import (
	"context"
	"sync"
	"testing"

	"github.com/auditstore/auditstore/shared/deadletter"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// A dead letter kept in a file:// bucket reads back whole, lists oldest first with the
// store's filters and paging, and of many replays at once exactly one is recorded.
func TestBucket_KeepListReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, err := deadletter.Open(ctx, "file://"+t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })

	s := func(v string) *string { return &v }
	code := 400
	var kept []store.DeadLetter
	for i, typ := range []string{"gateway.signal.received", "workflow.step.done", "gateway.signal.received"} {
		d, err := q.InsertDeadLetter(ctx, store.DeadLetter{SubmittedBy: "knative-broker:unauthenticated", CEType: s(typ),
			CEID: s(uuid.NewString()), ErrorCode: &code, Event: []byte(`{"specversion":"1.0","n":` + string(rune('0'+i)) + `}`)})
		require.NoError(t, err)
		kept = append(kept, d)
	}
	raw, err := q.InsertDeadLetter(ctx, store.DeadLetter{Body: []byte{0xff, 0}, ParseError: s("no CloudEvent")})
	require.NoError(t, err)

	got, err := q.GetDeadLetter(ctx, kept[1].DeadLetterID)
	require.NoError(t, err)
	require.Equal(t, kept[1].Event, got.Event)
	require.Equal(t, "workflow.step.done", *got.CEType)
	require.Nil(t, got.ReplayedAt)
	got, err = q.GetDeadLetter(ctx, raw.DeadLetterID)
	require.NoError(t, err)
	require.Equal(t, []byte{0xff, 0}, got.Body, "bytes kept as they came")
	_, err = q.GetDeadLetter(ctx, uuid.New())
	require.ErrorIs(t, err, store.ErrNotFound)

	all, err := q.ListDeadLetters(ctx, store.DeadLetterParams{})
	require.NoError(t, err)
	require.Len(t, all, 4)
	require.Equal(t, kept[0].DeadLetterID, all[0].DeadLetterID, "oldest first")
	page, err := q.ListDeadLetters(ctx, store.DeadLetterParams{CEType: "gateway.signal.received", Limit: 1})
	require.NoError(t, err)
	require.Len(t, page, 1)
	page, err = q.ListDeadLetters(ctx, store.DeadLetterParams{CEType: "gateway.signal.received", After: &page[0].DeadLetterID})
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, kept[2].DeadLetterID, page[0].DeadLetterID)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var marked, refused int
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := q.MarkDeadLetterReplayed(ctx, kept[0].DeadLetterID, "admin")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				marked++
			} else {
				require.ErrorIs(t, err, store.ErrReplayed)
				refused++
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, marked, "one replay is recorded")
	require.Equal(t, 7, refused)
	_, err = q.MarkDeadLetterReplayed(ctx, uuid.New(), "admin")
	require.ErrorIs(t, err, store.ErrNotFound)

	pending, err := q.ListDeadLetters(ctx, store.DeadLetterParams{Pending: true})
	require.NoError(t, err)
	require.Len(t, pending, 3)
	n, err := q.PendingDeadLetters(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	got, err = q.GetDeadLetter(ctx, kept[0].DeadLetterID)
	require.NoError(t, err)
	require.Equal(t, "admin", *got.ReplayedBy)
}
