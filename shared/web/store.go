package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/auditstore/auditstore/shared/store"
)

// Said is what a function tells its clients when a store error becomes Status: the detail
// (and, for a 400, the fields) that name what failed in that function's own terms.
type Said struct {
	Status int
	Detail string
	Errors []FieldError
}

// storeStatuses is the one map from the store's errors to HTTP statuses, first match wins
// (ErrReadOnly is ErrUnavailable; ErrNoPartition is ErrInvalid). Each status has a detail a
// function may say in its own words (StoreError's said). An error not listed is a 500 whose
// cause is only logged.
var storeStatuses = []struct {
	err    error
	status int
	detail string
}{
	{store.ErrTimeout, http.StatusGatewayTimeout, "the database took too long to answer"},
	{store.ErrInvalid, http.StatusBadRequest, "the database refused the value"},
	{store.ErrUnavailable, http.StatusServiceUnavailable, "the database is unavailable; retry later"},
	// A request's own deadline (a write's WRITE_TIMEOUT) passed waiting for the database.
	{context.DeadlineExceeded, http.StatusServiceUnavailable, "the database is unavailable; retry later"},
	{context.Canceled, http.StatusServiceUnavailable, "the database is unavailable; retry later"},
	{store.ErrNotFound, http.StatusNotFound, "not found"},
	{store.ErrConflict, http.StatusConflict, "the key is taken by other content"},
	{store.ErrLocked, http.StatusConflict, "another maintenance run is in progress; this one did nothing"},
}

// storeRetryAfter is the Retry-After of a 503 from the store: long enough for a failover or a
// restart, short enough that a broker's retries find it back.
const storeRetryAfter = 5 * time.Second

// StoreError turns an error of the store into the HTTP error every handler returns for it,
// through the one table of statuses (storeStatuses): its status, said's detail for that status
// (else the table's), Retry-After on a 503, and err as the logged cause. Any other error is
// returned as it is (a 500 with a generic body).
func StoreError(err error, said ...Said) error {
	for _, m := range storeStatuses {
		if !errors.Is(err, m.err) {
			continue
		}
		he := &HTTPError{Status: m.status, Detail: m.detail, Err: err}
		for _, s := range said {
			if s.Status == m.status {
				he.Detail, he.Errors = s.Detail, s.Errors
			}
		}
		if m.status == http.StatusServiceUnavailable {
			he.RetryAfter = storeRetryAfter
		}
		return he
	}
	return err
}
