package write_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func staticAuth(t *testing.T) auth.Authorizer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`tokens:
  - {principal: gateway, roles: [writer], token: writer-token}
  - {principal: auditor, roles: [reader], token: reader-token}
`), 0o600))
	az, err := auth.NewStatic(path)
	require.NoError(t, err)
	return az
}

func authFixture(t *testing.T, limiter write.Limiter, configure ...func(*write.Config)) *fixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	opts := []write.Option{write.WithAuthorizer(staticAuth(t), nil)}
	if limiter != nil {
		opts = append(opts, write.WithRateLimiter(limiter))
	}
	cfg := defaultConfig()
	for _, c := range configure {
		c(&cfg)
	}
	opts = append(opts, write.WithDeadLetters(s))
	h, err := write.New(s, cfg, prometheus.NewRegistry(), opts...)
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return &fixture{url: srv.URL, pool: pool, store: s}
}

// TestWrite_BrokerDeliveries: with AUTH_BROKER_DELIVERIES=unauthenticated (Knative's defaults,
// no sender identity) a delivery without a token at POST / is stored as
// knative-broker:unauthenticated, while a bad token there and a missing one on every other
// route are still refused; verified (the default) refuses it. The dead-letter sink refuses no
// one in either mode, and names a verified sender.
func TestWrite_BrokerDeliveries(t *testing.T) {
	t.Parallel()
	ce := func(id string) []string {
		return []string{"Ce-Specversion", "1.0", "Ce-Id", id, "Ce-Source", "/gateway", "Ce-Type", "gateway.signal.received", "Ce-Correlationid", "rr-broker"}
	}
	data := []byte(`{"signal":"x"}`)
	for _, mode := range []string{"verified", "unauthenticated"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := authFixture(t, nil, func(c *write.Config) { c.BrokerDeliveries = mode })
			r := f.post(t, "/", "application/json", data, ce("ev-1")...)
			if mode == "verified" {
				require.Equal(t, http.StatusUnauthorized, r.status)
			} else {
				require.Equal(t, http.StatusAccepted, r.status, string(r.body))
				var by string
				require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT submitted_by FROM audit_events`).Scan(&by))
				require.Equal(t, auth.BrokerUnauthenticated, by)
			}
			r = f.post(t, "/", "application/json", data, append(ce("ev-2"), "Authorization", "Bearer wrong")...)
			require.Equal(t, http.StatusUnauthorized, r.status, "a token that is sent is checked")
			r = f.post(t, "/api/v1/audit/events", "application/json", data, ce("ev-3")...)
			require.Equal(t, http.StatusUnauthorized, r.status, "only the broker's route")
			r = f.post(t, "/api/v1/audit/events/batch", "application/json", []byte(`[]`))
			require.Equal(t, http.StatusUnauthorized, r.status)
			r = f.post(t, "/api/v1/audit/notifications", "application/json", []byte(`{}`))
			require.Equal(t, http.StatusUnauthorized, r.status)
			resp, err := http.Get(f.url + "/api/v1/deadletters")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

			for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer reader-token"}, {"Authorization", "Bearer writer-token"}} {
				r = f.post(t, "/api/v1/deadletter", "application/json", data, append(append(ce(uuid.NewString()), "Ce-Knativeerrorcode", "401"), hdr...)...)
				require.Equal(t, http.StatusAccepted, r.status, "%v: %s", hdr, r.body)
			}
			rows, err := f.pool.Query(context.Background(), `SELECT submitted_by FROM audit_deadletters ORDER BY deadletter_id`)
			require.NoError(t, err)
			var by []string
			for rows.Next() {
				var s string
				require.NoError(t, rows.Scan(&s))
				by = append(by, s)
			}
			require.NoError(t, rows.Err())
			u := auth.BrokerUnauthenticated
			require.Equal(t, []string{u, u, u, "gateway"}, by)
		})
	}
}

func TestWrite_Authorization(t *testing.T) {
	t.Parallel()
	f := authFixture(t, nil)
	body := eventJSON(t, nil)
	r := f.post(t, "/api/v1/audit/events", "application/json", body)
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, `Bearer realm="auditstore"`, r.header.Get("WWW-Authenticate"))
	r = f.post(t, "/api/v1/audit/events", "application/json", body, "Authorization", "Bearer reader-token")
	require.Equal(t, http.StatusForbidden, r.status, "a reader cannot write")
	r = f.post(t, "/", "application/cloudevents+json", []byte(`{}`), "Authorization", "Bearer wrong")
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, 0, f.count(t))

	// The writer writes; the event names it as submitter whatever headers or body say.
	forged := eventJSON(t, func(m map[string]any) { m["actor_id"] = "someone-else" })
	r = f.post(t, "/api/v1/audit/events", "application/json", forged, "Authorization", "Bearer writer-token",
		"X-Forwarded-User", "admin", "X-Auth-Request-User", "admin", "X-Remote-User", "admin")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	e, err := f.store.GetEvent(context.Background(), uuid.MustParse(r.json(t)["event_id"].(string)))
	require.NoError(t, err)
	require.Equal(t, "gateway", e.SubmittedBy)
	require.Equal(t, "someone-else", e.ActorID, "an actor can be claimed, the submitter cannot")

	r = f.post(t, "/api/v1/audit/events", "application/json", eventJSON(t, func(m map[string]any) { m["submitted_by"] = "admin" }), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.body), `"field":"submitted_by"`)

	// Order of checks: 401/403 come before 415 and 400.
	r = f.post(t, "/api/v1/audit/events", "text/plain", []byte("x"), "Authorization", "Bearer reader-token")
	require.Equal(t, http.StatusForbidden, r.status)
	r = f.post(t, "/api/v1/audit/events", "text/plain", []byte("x"), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusUnsupportedMediaType, r.status)
}

func TestWrite_RateLimit(t *testing.T) {
	t.Parallel()
	// 1 event/s, burst 10: a burst of 7-event batches gets exactly one through, the second
	// would take the budget to 14.
	f := authFixture(t, auth.NewRateLimiter(1, 10, 0))
	batch := func() []byte {
		var items []json.RawMessage
		for range 7 {
			items = append(items, eventJSON(t, nil))
		}
		b, _ := json.Marshal(items)
		return b
	}
	r := f.post(t, "/api/v1/audit/events/batch", "application/json", batch(), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = f.post(t, "/api/v1/audit/events/batch", "application/json", batch(), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Equal(t, 7, f.count(t), "nothing of the rejected request is stored")
	// 3 events still fit the burst.
	r = f.post(t, "/api/v1/audit/events/batch", "application/json", []byte("["+string(eventJSON(t, nil))+","+string(eventJSON(t, nil))+","+string(eventJSON(t, nil))+"]"), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusCreated, r.status)
	// Invalid input is a 400 even when over the limit: 400 comes before 429.
	r = f.post(t, "/api/v1/audit/events", "application/json", []byte(`{"colour":1}`), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Equal(t, 10, f.count(t))
}

// TestWrite_RateLimitHolds: over the limit a request is held until the budget admits it, then
// stored; only one the bound cannot admit is refused, at once and with nothing stored.
func TestWrite_RateLimitHolds(t *testing.T) {
	t.Parallel()
	f := authFixture(t, auth.NewRateLimiter(1, 10, 2*time.Second))
	batch := func(n int) []byte {
		var items []json.RawMessage
		for range n {
			items = append(items, eventJSON(t, nil))
		}
		b, _ := json.Marshal(items)
		return b
	}
	r := f.post(t, "/api/v1/audit/events/batch", "application/json", batch(10), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	// The budget is spent: one more event is admitted about a second later.
	r = f.post(t, "/api/v1/audit/events/batch", "application/json", batch(1), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusCreated, r.status, "held, then stored: %s", r.body)
	// Seven more would take seven seconds, past the two-second bound.
	r = f.post(t, "/api/v1/audit/events/batch", "application/json", batch(7), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Equal(t, 11, f.count(t))
}
