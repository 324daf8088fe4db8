package query

import (
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/stretchr/testify/require"
)

// TestWriteList_AsWriteJSON: the hand-assembled page is what encoding/json made of it.
func TestWriteList_AsWriteJSON(t *testing.T) {
	t.Parallel()
	cursor, total := "c<1>&", int64(7)
	for _, reply := range []listReply{
		{Data: []audit.Event{}},
		{Data: []audit.Event{audittest.Event(t, nil)}, Pagination: pagination{Limit: 1, HasMore: true, NextCursor: &cursor, Total: &total}},
		{Data: []audit.Event{audittest.Event(t, nil), audittest.Event(t, nil), audittest.Event(t, nil)}, Pagination: pagination{Limit: 3, Offset: 6}},
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		require.NoError(t, web.WriteJSON(want, 200, reply))
		require.NoError(t, writeList(got, reply))
		require.Equal(t, want.Body.String(), got.Body.String())
		require.Equal(t, want.Header().Get("Content-Type"), got.Header().Get("Content-Type"))
		require.Equal(t, got.Body.Len(), atoi(t, got.Header().Get("Content-Length")))
		require.Equal(t, want.Code, got.Code)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
