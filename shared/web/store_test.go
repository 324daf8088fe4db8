package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/stretchr/testify/require"
)

// TestStoreError is the one map from the store's errors to HTTP: each error's status, the
// detail a function says for it (else the table's), Retry-After on a 503, and any other error
// left as it is (a 500 whose cause is only logged).
func TestStoreError(t *testing.T) {
	t.Parallel()
	said := []web.Said{
		{Status: http.StatusServiceUnavailable, Detail: "nothing was stored, retry later"},
		{Status: http.StatusBadRequest, Detail: "bad data_path", Errors: []web.FieldError{{Field: "data_path", Message: "m"}}},
	}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		detail string
	}{
		{"unavailable", fmt.Errorf("insert: %w", store.ErrUnavailable), http.StatusServiceUnavailable, "nothing was stored, retry later"},
		{"read-only", store.ErrReadOnly, http.StatusServiceUnavailable, "nothing was stored, retry later"},
		{"own deadline", context.DeadlineExceeded, http.StatusServiceUnavailable, "nothing was stored, retry later"},
		{"timeout", store.ErrTimeout, http.StatusGatewayTimeout, "the database took too long to answer"},
		{"invalid", store.ErrInvalid, http.StatusBadRequest, "bad data_path"},
		{"no partition", store.ErrNoPartition, http.StatusBadRequest, "bad data_path"},
		{"not found", store.ErrNotFound, http.StatusNotFound, "not found"},
		{"conflict", store.ErrConflict, http.StatusConflict, "the key is taken by other content"},
		{"locked", store.ErrLocked, http.StatusConflict, "another maintenance run is in progress; this one did nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var he *web.HTTPError
			require.ErrorAs(t, web.StoreError(tc.err, said...), &he)
			require.Equal(t, tc.status, he.Status)
			require.Equal(t, tc.detail, he.Detail)
			require.ErrorIs(t, he, tc.err, "the cause is kept for the log")
			if tc.status == http.StatusServiceUnavailable {
				require.Equal(t, 5*time.Second, he.RetryAfter)
			} else {
				require.Zero(t, he.RetryAfter)
			}
		})
	}
	var he *web.HTTPError
	require.ErrorAs(t, web.StoreError(store.ErrInvalid, said...), &he)
	require.Len(t, he.Errors, 1, "a function's field errors go with its 400")

	other := errors.New("can't scan")
	require.Same(t, other, web.StoreError(other, said...), "an error the table does not know is a 500")
	require.NotErrorAs(t, web.StoreError(store.ErrImmutable), &he)
}
