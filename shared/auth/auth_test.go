package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// fakeAPIServer answers TokenReviews and SubjectAccessReviews like a Kubernetes API server
// (in JSON), from fixed tables, counting the reviews.
type fakeAPIServer struct {
	srv          *httptest.Server
	tokenReviews atomic.Int64
	accessChecks atomic.Int64
	down         atomic.Bool
}

var fakeUsers = map[string]authnv1.TokenReviewStatus{
	"writer-token":  {Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:platform:gateway", Groups: []string{"system:serviceaccounts"}}, Audiences: []string{"auditstore"}},
	"reader-token":  {Authenticated: true, User: authnv1.UserInfo{Username: "auditor@example.com"}, Audiences: []string{"auditstore"}},
	"admin-token":   {Authenticated: true, User: authnv1.UserInfo{Username: "sre-admin"}, Audiences: []string{"auditstore"}},
	"expired-token": {Authenticated: false, Error: "token has expired"},
	"other-aud":     {Authenticated: true, User: authnv1.UserInfo{Username: "someone"}, Audiences: []string{"vault"}},
	"team-a-token":  {Authenticated: true, User: authnv1.UserInfo{Username: "team-a-oncall"}, Audiences: []string{"auditstore"}},
	"dpo-token":     {Authenticated: true, User: authnv1.UserInfo{Username: "privacy-officer"}, Audiences: []string{"auditstore"}},
}

var fakeRights = map[string][]string{
	"system:serviceaccount:platform:gateway": {"create"},
	"auditor@example.com":                    {"list"},
	"sre-admin":                              {"create", "list", "update", "get/sensitive"},
	"team-a-oncall":                          {"list@team-a", "list@team-b"},
	"privacy-officer":                        {"list", "get/sensitive"},
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	f := &fakeAPIServer{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcd unavailable","code":503}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/apis/authentication.k8s.io/v1/tokenreviews":
			f.tokenReviews.Add(1)
			var tr authnv1.TokenReview
			if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			st, ok := fakeUsers[tr.Spec.Token]
			if !ok {
				st = authnv1.TokenReviewStatus{Authenticated: false, Error: "invalid bearer token"}
			}
			tr.Status = st
			_ = json.NewEncoder(w).Encode(tr)
		case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
			f.accessChecks.Add(1)
			var sar authzv1.SubjectAccessReview
			if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			ra := sar.Spec.ResourceAttributes
			if ra != nil && ra.Group == "auditstore.dev" && ra.Resource == "auditevents" {
				// A right is a verb (with /subresource), granted cluster-wide, or in one namespace
				// after an @ (a RoleBinding): a cluster-wide grant allows in every namespace too.
				want := ra.Verb
				if ra.Subresource != "" {
					want += "/" + ra.Subresource
				}
				for _, v := range fakeRights[sar.Spec.User] {
					if v == want || ra.Namespace != "" && v == want+"@"+ra.Namespace {
						sar.Status.Allowed = true
					}
				}
			}
			if !sar.Status.Allowed {
				sar.Status.Reason = "no RBAC rule allows it"
			}
			_ = json.NewEncoder(w).Encode(sar)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) clients(t *testing.T) auth.KubeClients {
	// client-go speaks protobuf by default; this fake answers JSON.
	c, err := kubernetes.NewForConfig(&rest.Config{Host: f.srv.URL, ContentConfig: rest.ContentConfig{
		ContentType: "application/json", AcceptContentTypes: "application/json"}})
	require.NoError(t, err)
	return c
}

func TestKubernetes_Reviews(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t)
	k := auth.NewKubernetes(f.clients(t), []string{"auditstore"}, time.Minute)
	ctx := context.Background()
	for _, tc := range []struct {
		token  string
		action auth.Action
		want   error
		name   string
	}{
		{"writer-token", auth.Write, nil, "system:serviceaccount:platform:gateway"},
		{"writer-token", auth.Read, auth.ErrForbidden, ""},
		{"writer-token", auth.Admin, auth.ErrForbidden, ""},
		{"reader-token", auth.Read, nil, "auditor@example.com"},
		{"reader-token", auth.Write, auth.ErrForbidden, ""},
		{"admin-token", auth.Admin, nil, "sre-admin"},
		{"admin-token", auth.Write, nil, "sre-admin"},
		{"expired-token", auth.Write, auth.ErrUnauthenticated, ""},
		{"nonsense", auth.Read, auth.ErrUnauthenticated, ""},
		{"other-aud", auth.Read, auth.ErrUnauthenticated, ""},
	} {
		p, err := k.Authorize(ctx, tc.token, tc.action)
		if tc.want == nil {
			require.NoError(t, err, "%s %s", tc.token, tc.action)
			require.Equal(t, tc.name, p.Name)
		} else {
			require.ErrorIs(t, err, tc.want, "%s %s", tc.token, tc.action)
		}
	}
}

func TestKubernetes_CachesOneReviewPerTokenPerTTL(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t)
	k := auth.NewKubernetes(f.clients(t), []string{"auditstore"}, time.Hour)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 50 { // a burst
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = k.Authorize(ctx, "writer-token", auth.Write) }()
		go func() { defer wg.Done(); _, _ = k.Authorize(ctx, "expired-token", auth.Write) }()
	}
	wg.Wait()
	require.EqualValues(t, 2, f.tokenReviews.Load(), "one review per token, negative answers cached too")
	require.EqualValues(t, 1, f.accessChecks.Load())

	// After the TTL, a new review.
	short := auth.NewKubernetes(f.clients(t), []string{"auditstore"}, 50*time.Millisecond)
	_, err := short.Authorize(ctx, "reader-token", auth.Read)
	require.NoError(t, err)
	time.Sleep(80 * time.Millisecond)
	_, err = short.Authorize(ctx, "reader-token", auth.Read)
	require.NoError(t, err)
	require.EqualValues(t, 4, f.tokenReviews.Load())
}

func TestKubernetes_APIServerDownIsUnavailable(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t)
	k := auth.NewKubernetes(f.clients(t), nil, time.Hour)
	f.down.Store(true)
	_, err := k.Authorize(context.Background(), "writer-token", auth.Write)
	require.ErrorIs(t, err, auth.ErrUnavailable)
	// The outage was not cached: once the API server is back, the token works.
	f.down.Store(false)
	_, err = k.Authorize(context.Background(), "writer-token", auth.Write)
	require.NoError(t, err)

	// Through the middleware: 503, not 401, never a silent allow.
	f.down.Store(true)
	h := auth.Middleware(auth.NewKubernetes(f.clients(t), nil, time.Hour), auth.Write, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler reached during an API server outage")
	}))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("Authorization", "Bearer writer-token")
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t)
	reg := prometheus.NewRegistry()
	m := auth.NewMetrics(reg)
	var seen string
	h := auth.Middleware(auth.NewKubernetes(f.clients(t), []string{"auditstore"}, time.Minute), auth.Write, m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.PrincipalFrom(r.Context())
		require.True(t, ok)
		seen = p.Name
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func(headers ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, hdr := range [][]string{nil, {"Authorization", "Basic dXNlcjpwdw=="}, {"Authorization", "Bearer"}, {"Authorization", "Bearer a b"}, {"Authorization", "Bearer nonsense"}} {
		rec := do(hdr...)
		require.Equal(t, http.StatusUnauthorized, rec.Code, "%v", hdr)
		require.Equal(t, `Bearer realm="auditstore"`, rec.Header().Get("WWW-Authenticate"))
		require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	}
	rec := do("Authorization", "Bearer reader-token")
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))

	// Headers a proxy might set never change who the caller is.
	rec = do("Authorization", "bearer writer-token", "X-Forwarded-User", "root", "X-Auth-Request-User", "root", "X-Remote-User", "root")
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, "system:serviceaccount:platform:gateway", seen)

	require.Equal(t, 5.0, testutil.ToFloat64(m.Decisions().WithLabelValues("write", "unauthenticated")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Decisions().WithLabelValues("write", "forbidden")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Decisions().WithLabelValues("write", "allowed")))
}

// WithoutToken admits only a request that carries no Authorization header at all (a bad or
// malformed token is still a 401, a reader's a 403); Unrefused admits every request, naming a
// verified caller. Both count what they let through unverified.
func TestMiddleware_BrokerRoutes(t *testing.T) {
	t.Parallel()
	f := newFakeAPIServer(t)
	az := auth.NewKubernetes(f.clients(t), []string{"auditstore"}, time.Minute)
	broker := auth.Principal{Name: auth.BrokerUnauthenticated}
	do := func(mw func(http.Handler) http.Handler, headers ...string) (int, string) {
		var seen string
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := auth.PrincipalFrom(r.Context())
			seen = p.Name
			w.WriteHeader(http.StatusAccepted)
		}))
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, seen
	}
	m := auth.NewMetrics(prometheus.NewRegistry())
	without := auth.WithoutToken(az, auth.Write, m, broker)
	code, who := do(without)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, auth.BrokerUnauthenticated, who)
	for _, hdr := range [][]string{{"Authorization", "Bearer nonsense"}, {"Authorization", "Basic dXNlcjpwdw=="}, {"Authorization", "Bearer"}} {
		code, _ = do(without, hdr...)
		require.Equal(t, http.StatusUnauthorized, code, "%v: a token that is sent is checked", hdr)
	}
	code, _ = do(without, "Authorization", "Bearer reader-token")
	require.Equal(t, http.StatusForbidden, code)
	code, who = do(without, "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "system:serviceaccount:platform:gateway", who)
	require.Equal(t, 1.0, testutil.ToFloat64(m.Decisions().WithLabelValues("write", "admitted_unauthenticated")))

	m = auth.NewMetrics(prometheus.NewRegistry())
	unrefused := auth.Unrefused(az, auth.Write, m, broker)
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer nonsense"}, {"Authorization", "Bearer reader-token"}} {
		code, who = do(unrefused, hdr...)
		require.Equal(t, http.StatusAccepted, code, "%v", hdr)
		require.Equal(t, auth.BrokerUnauthenticated, who, "%v", hdr)
	}
	_, who = do(unrefused, "Authorization", "Bearer writer-token")
	require.Equal(t, "system:serviceaccount:platform:gateway", who)
	require.Equal(t, 3.0, testutil.ToFloat64(m.Decisions().WithLabelValues("write", "admitted_unauthenticated")))
}

func writeTokens(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

func TestStatic_TokensAndReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	sum := sha256.Sum256([]byte("gateway-secret"))
	writeTokens(t, path, `tokens:
  - principal: gateway
    roles: [writer]
    token_sha256: `+hex.EncodeToString(sum[:])+`
  - principal: auditor
    roles: [reader]
    token: auditor-secret
`)
	s, err := auth.NewStatic(path)
	require.NoError(t, err)
	ctx := context.Background()
	p, err := s.Authorize(ctx, "gateway-secret", auth.Write)
	require.NoError(t, err)
	require.Equal(t, "gateway", p.Name)
	_, err = s.Authorize(ctx, "gateway-secret", auth.Read)
	require.ErrorIs(t, err, auth.ErrForbidden, "a writer cannot read")
	_, err = s.Authorize(ctx, "auditor-secret", auth.Write)
	require.ErrorIs(t, err, auth.ErrForbidden, "a reader cannot write")
	_, err = s.Authorize(ctx, "auditor-secret", auth.Read)
	require.NoError(t, err)
	_, err = s.Authorize(ctx, "guess", auth.Read)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)

	// Rotate: the auditor's token is replaced, an admin is added.
	time.Sleep(1100 * time.Millisecond) // the file is looked at once a second at most
	writeTokens(t, path, `tokens:
  - principal: auditor
    roles: [reader]
    token: new-auditor-secret
  - principal: sre
    roles: [admin]
    token: sre-secret
`)
	require.Eventually(t, func() bool {
		_, err := s.Authorize(ctx, "new-auditor-secret", auth.Read)
		return err == nil
	}, 5*time.Second, 100*time.Millisecond)
	_, err = s.Authorize(ctx, "auditor-secret", auth.Read)
	require.ErrorIs(t, err, auth.ErrUnauthenticated, "the old token is gone")
	for _, a := range []auth.Action{auth.Write, auth.Read, auth.Admin} {
		_, err = s.Authorize(ctx, "sre-secret", a)
		require.NoError(t, err)
	}

	// A broken edit keeps the tokens in force.
	time.Sleep(1100 * time.Millisecond)
	writeTokens(t, path, "tokens: [this is not: valid")
	time.Sleep(1100 * time.Millisecond)
	_, err = s.Authorize(ctx, "sre-secret", auth.Admin)
	require.NoError(t, err)
}

func TestStatic_RejectsBadFiles(t *testing.T) {
	t.Parallel()
	for _, content := range []string{
		"tokens:\n  - principal: a\n    roles: [writer]\n",                                                                    // no token
		"tokens:\n  - principal: a\n    roles: [root]\n    token: x\n",                                                        // unknown role
		"tokens:\n  - roles: [writer]\n    token: x\n",                                                                        // no principal
		"tokens:\n  - principal: a\n    roles: [writer]\n    token_sha256: abc\n",                                             // short hash
		"tokens:\n  - principal: a\n    roles: [writer]\n    token: x\n    colour: red\n",                                     // unknown field
		"tokens:\n  - principal: a\n    roles: [writer]\n    token: x\n  - principal: b\n    roles: [reader]\n    token: x\n", // same token twice
	} {
		path := filepath.Join(t.TempDir(), "tokens.yaml")
		writeTokens(t, path, content)
		_, err := auth.NewStatic(path)
		require.Error(t, err, content)
	}
}

func TestRateLimiter_Burst(t *testing.T) {
	t.Parallel()
	r := auth.NewRateLimiter(10, 100, 0) // refused at once, never held
	accepted := 0
	for range 30 {
		if res, _ := r.Reserve("gateway", 7); res != nil {
			accepted += 7
		}
	}
	require.Equal(t, 98, accepted, "exactly the burst's worth of 7-event requests (14 of them) fit at once")
	res, retry := r.Reserve("gateway", 7)
	require.Nil(t, res)
	require.Greater(t, retry, time.Duration(0))
	require.LessOrEqual(t, retry, time.Second)
	res, _ = r.Reserve("someone-else", 100)
	require.NotNil(t, res, "limits are per principal")
	res, retry = r.Reserve("big", 101)
	require.Nil(t, res, "a request larger than the burst never fits")
	require.Equal(t, 11*time.Second, retry)
}
