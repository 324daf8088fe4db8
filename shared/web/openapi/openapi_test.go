package openapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/shared/web/openapi"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/stretchr/testify/require"
)

// TestOperations serves the document and the operations every function shares (health,
// metrics) and checks each exchange against the document.
func TestOperations(t *testing.T) {
	t.Parallel()
	var readyErr error
	mux := http.NewServeMux()
	openapi.Routes(mux)
	web.Health(mux, func(context.Context) error { return readyErr })
	web.Metrics(mux, web.NewRegistry())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		return openapitest.Do(t, req, nil)
	}

	resp, body := get(openapi.Path)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/yaml", resp.Header.Get("Content-Type"))
	require.Equal(t, openapi.Document(), body)

	resp, _ = get("/health/liveness")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = get("/health/readiness")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// kubernaut's probe paths answer the same checks with its body.
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, body = get(path)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, `{"status":"healthy"}`, string(body))
	}
	readyErr = errors.New("connection refused")
	resp, _ = get("/health/readiness")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	resp, _ = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	resp, _ = get("/healthz")
	require.Equal(t, http.StatusOK, resp.StatusCode, "liveness does not depend on the database")

	resp, body = get("/metrics")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "go_goroutines")
}

func TestDocument_IsACopy(t *testing.T) {
	t.Parallel()
	d := openapi.Document()
	d[0] = 'X'
	require.NotEqual(t, d[0], openapi.Document()[0])
}
