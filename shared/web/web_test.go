package web_test

import (
	"encoding/json"
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
