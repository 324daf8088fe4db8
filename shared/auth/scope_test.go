package auth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/auth"
	"github.com/stretchr/testify/require"
)

// readCase is a reader's token, the namespaces its request names, and the scope (or error) it
// must get.
type readCase struct {
	token   string
	named   []string
	want    error
	cluster bool
	ns      []string
	sens    bool
}

func checkReads(t *testing.T, az auth.ReadAuthorizer, cases []readCase) {
	t.Helper()
	for _, tc := range cases {
		_, s, err := az.AuthorizeRead(context.Background(), tc.token, tc.named)
		if tc.want != nil {
			require.ErrorIs(t, err, tc.want, "%s %v", tc.token, tc.named)
			continue
		}
		require.NoError(t, err, "%s %v", tc.token, tc.named)
		require.Equal(t, tc.cluster, s.Cluster, tc.token)
		require.Equal(t, tc.ns, s.Namespaces, tc.token)
		require.Equal(t, tc.sens, s.Sensitive, tc.token)
	}
}

// A reader's scope in kubernetes mode: the cluster-wide list right reads everything; the right
// in some namespaces (a RoleBinding) reads those named, or, naming none, those of
// AUTH_NAMESPACES it holds; get on auditevents/sensitive reads sensitive events whole.
func TestKubernetes_ReadScope(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t)
	k := auth.NewKubernetes(f.clients(t), []string{"auditstore"}, time.Minute).WithNamespaces([]string{"team-a", "team-c"})
	ctx := context.Background()
	checkReads(t, k, []readCase{
		{token: "reader-token", cluster: true},
		{token: "reader-token", named: []string{"anything"}, cluster: true},
		{token: "dpo-token", cluster: true, sens: true},
		{token: "admin-token", cluster: true, sens: true},
		{token: "team-a-token", ns: []string{"team-a"}}, // AUTH_NAMESPACES probed: team-c is not its
		{token: "team-a-token", named: []string{"team-b"}, ns: []string{"team-b"}},
		{token: "team-a-token", named: []string{"team-b", "team-a"}, ns: []string{"team-a", "team-b"}},
		{token: "team-a-token", named: []string{"team-a", "team-c"}, want: auth.ErrForbidden},
		{token: "writer-token", want: auth.ErrForbidden},
		{token: "expired-token", want: auth.ErrUnauthenticated},
	})

	// One event by id, of a namespace the request did not name: asked of the API server.
	_, s, err := k.AuthorizeRead(ctx, "team-a-token", nil)
	require.NoError(t, err)
	for ns, want := range map[string]bool{"team-a": true, "team-b": true, "team-c": false, "": false} {
		ok, err := s.Allows(ctx, ns)
		require.NoError(t, err)
		require.Equal(t, want, ok, "namespace %q", ns)
	}

	// Cached like every review: asking again costs no review.
	reviews := f.accessChecks.Load()
	_, _, err = k.AuthorizeRead(ctx, "team-a-token", []string{"team-b", "team-a"})
	require.NoError(t, err)
	require.Equal(t, reviews, f.accessChecks.Load())

	// Without AUTH_NAMESPACES a namespaced reader must name its namespaces.
	bare := auth.NewKubernetes(f.clients(t), []string{"auditstore"}, time.Minute)
	_, _, err = bare.AuthorizeRead(ctx, "team-a-token", nil)
	require.ErrorIs(t, err, auth.ErrForbidden)
	_, err = bare.Authorize(ctx, "team-a-token", auth.Read)
	require.ErrorIs(t, err, auth.ErrForbidden, "no cluster-wide right")

	f.down.Store(true)
	_, _, err = auth.NewKubernetes(f.clients(t), nil, time.Minute).AuthorizeRead(ctx, "team-a-token", []string{"team-a"})
	require.ErrorIs(t, err, auth.ErrUnavailable)
}

// Static mode: a token may name its namespaces; sensitive-reader and admin read sensitive
// events whole.
func TestStatic_ReadScope(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	writeTokens(t, path, `tokens:
  - {principal: auditor, roles: [reader], token: r}
  - {principal: dpo, roles: [sensitive-reader], token: s}
  - {principal: sre, roles: [admin], token: a}
  - {principal: team-a, roles: [reader], namespaces: [team-a, team-b], token: n}
  - {principal: gateway, roles: [writer], token: w}
`)
	s, err := auth.NewStatic(path)
	require.NoError(t, err)
	ctx := context.Background()
	checkReads(t, s, []readCase{
		{token: "r", cluster: true},
		{token: "s", cluster: true, sens: true},
		{token: "a", cluster: true, sens: true},
		{token: "n", ns: []string{"team-a", "team-b"}},
		{token: "n", named: []string{"team-b"}, ns: []string{"team-a", "team-b"}},
		{token: "n", named: []string{"team-c"}, want: auth.ErrForbidden},
		{token: "w", want: auth.ErrForbidden},
		{token: "x", want: auth.ErrUnauthenticated},
	})
	_, err = s.Authorize(ctx, "n", auth.Read)
	require.ErrorIs(t, err, auth.ErrForbidden, "a namespaced token has no cluster-wide right")
	writeTokens(t, path, "tokens:\n  - {principal: x, roles: [viewer], token: v}\n")
	_, err = auth.NewStatic(path)
	require.ErrorContains(t, err, "sensitive-reader")
}

// ReadMiddleware passes the scope on, and a 403 for named namespaces says which.
func TestReadMiddleware(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t)
	var seen auth.Scope
	h := auth.ReadMiddleware(auth.NewKubernetes(f.clients(t), []string{"auditstore"}, time.Minute), nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = auth.ScopeFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func(target, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := do("/?namespace=team-a&namespace=team-b", "team-a-token")
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, []string{"team-a", "team-b"}, seen.Namespaces)
	require.False(t, seen.Cluster)

	rec = do("/?namespace=team-z", "team-a-token")
	require.Equal(t, http.StatusForbidden, rec.Code)
	var problem struct{ Detail string }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &problem))
	require.Equal(t, "team-a-oncall may not read audit events in namespace team-z", problem.Detail)
	rec = do("/", "team-a-token")
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Contains(t, rec.Body.String(), "names them with the namespace parameter")

	rec = do("/", "reader-token")
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, auth.Scope{Cluster: true}, seen)
	require.Equal(t, auth.FullScope, auth.ScopeFrom(context.Background()), "a request no ReadMiddleware saw")

	// AUTH_MODE=none: no token, everything.
	h = auth.ReadMiddleware(auth.None{}, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = auth.ScopeFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?namespace=team-a", nil))
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, auth.FullScope, seen)
}
