package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/auditstore/auditstore/shared/web"
	"github.com/stretchr/testify/require"
)

// TestWriteError_FieldErrors: a 400 carries its errors twice, as the list and as kubernaut's
// field_errors object; an event of a batch is prefixed with its index, and two messages for
// one field are joined.
func TestWriteError_FieldErrors(t *testing.T) {
	t.Parallel()
	three, seven := 3, 7
	errs := []web.FieldError{
		{Index: &three, Field: "event_type", Message: "is required"},
		{Index: &three, Field: "event_outcome", Message: `"ok" is not one of success, failure, pending, unknown`},
		{Index: &seven, Field: "event_type", Message: "is required"},
		{Field: "limit", Message: "is too large"},
		{Field: "limit", Message: "may be given once"},
	}
	rec := httptest.NewRecorder()
	web.WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), web.Invalid("invalid", errs))
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	var p struct {
		Errors      []web.FieldError  `json:"errors"`
		FieldErrors map[string]string `json:"field_errors"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	require.Equal(t, errs, p.Errors)
	require.Equal(t, map[string]string{
		"[3].event_type":    "is required",
		"[3].event_outcome": `"ok" is not one of success, failure, pending, unknown`,
		"[7].event_type":    "is required",
		"limit":             "is too large; may be given once",
	}, p.FieldErrors)

	rec = httptest.NewRecorder()
	web.WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), web.Error(http.StatusNotFound, "no such event", nil))
	require.NotContains(t, rec.Body.String(), "field_errors", "only a problem with field errors has them")
}

// TestHealth_DatabaseStateKeepsReady: a database that is away or read-only leaves the function
// in rotation, answering 503 with Retry-After itself, and readiness names the state; only a
// check failing for another reason takes it out.
func TestHealth_DatabaseStateKeepsReady(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
		wantDB     string
	}{
		{"answers", nil, http.StatusOK, "available"},
		{"away", &web.NotReady{State: "unavailable", Err: errors.New("connection refused")}, http.StatusOK, "unavailable"},
		{"read-only", fmt.Errorf("ping: %w", &web.NotReady{State: "read-only", Err: errors.New("in recovery")}), http.StatusOK, "read-only"},
		{"broken", errors.New("the committer has stopped"), http.StatusServiceUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			web.Health(mux, func(context.Context) error { return tc.err })
			for _, path := range []string{"/health/readiness", "/readyz"} { // the same check
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				require.Equal(t, tc.wantStatus, rec.Code, path)
				if tc.wantStatus != http.StatusOK {
					require.NotEmpty(t, rec.Header().Get("Retry-After"))
					continue
				}
				var body map[string]string
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
				if path == "/readyz" {
					require.Equal(t, map[string]string{"status": "healthy"}, body, "kubernaut's answer as it is")
					continue
				}
				require.Equal(t, tc.wantDB, body["database"], path)
			}
		})
	}
}
