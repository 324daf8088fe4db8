package write_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func notificationBody(id, status, summary string) []byte {
	return []byte(`{"remediation_id":"rr-77","notification_id":"` + id + `","recipient":"oncall@example.com",
		"channel":"slack","message_summary":"` + summary + `","status":"` + status + `",
		"sent_at":"` + time.Now().UTC().Add(-time.Minute).Truncate(time.Second).Format(time.RFC3339) + `","escalation_level":2}`)
}

// TestNotifications stores kubernaut's notification records as audit events through the write
// path: a retry is a duplicate with the same answer, other content for the same notification_id
// a 409, and every answer is in kubernaut's shape and the OpenAPI document's.
func TestNotifications(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const path = "/api/v1/audit/notifications"
	body := notificationBody("notif-1", "sent", "pod restarted")

	r := exchange(t, f.url, path, "application/json", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var first kubernaut.NotificationResponse
	require.NoError(t, kubernaut.Decode(r.body, &first))
	require.Equal(t, "rr-77", first.RemediationID)
	require.Equal(t, "oncall@example.com", first.Recipient)
	require.Equal(t, 2, *first.EscalationLevel)
	require.Nil(t, first.DeliveryStatus)

	// The record is one audit event of the remediation, its id derived from notification_id.
	id := uuid.NewSHA1(write.NotificationNamespace, []byte("notif-1"))
	require.Equal(t, write.NotificationRecordID(id), first.ID)
	require.Positive(t, first.ID)
	e, err := f.store.GetEvent(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, "notification.message.sent", e.EventType)
	require.Equal(t, "success", e.EventOutcome)
	require.Equal(t, "rr-77", e.CorrelationID)
	require.Equal(t, "notification", e.EventCategory)
	require.Equal(t, first.SentAt, e.EventTimestamp)
	require.JSONEq(t, string(body), string(e.EventData), "event_data is the record")
	require.Equal(t, first.CreatedAt, e.ReceivedAt)
	h, err := ledger.Recompute(e)
	require.NoError(t, err)
	require.Equal(t, h[:], []byte(e.EventHash), "hashed as every event is")

	// A retry: the same answer, nothing new stored.
	r = exchange(t, f.url, path, "application/json", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var retry kubernaut.NotificationResponse
	require.NoError(t, kubernaut.Decode(r.body, &retry))
	require.Equal(t, first, retry)
	require.Equal(t, 1, f.count(t))

	// Other content under the same notification_id: a conflict.
	r = exchange(t, f.url, path, "application/json", notificationBody("notif-1", "failed", "pod restarted"))
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Equal(t, 1, f.count(t))

	for name, bad := range map[string]string{
		"no notification_id": `{"remediation_id":"rr","recipient":"a","channel":"slack","message_summary":"m","status":"sent","sent_at":"2026-01-01T00:00:00Z"}`,
		"unknown channel":    strings.Replace(string(body), `"slack"`, `"fax"`, 1),
		"unknown status":     strings.Replace(string(body), `"sent",`, `"lost",`, 1),
		"unknown member":     strings.Replace(string(body), `{`, `{"priority":1,`, 1),
		"wrong type":         strings.Replace(string(body), `"escalation_level":2`, `"escalation_level":"2"`, 1),
		"bad sent_at":        strings.Replace(string(body), `"sent_at":"`, `"sent_at":"x`, 1),
		"not an object":      `[]`,
	} {
		r = exchange(t, f.url, path, "application/json", []byte(bad))
		require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", name, r.body)
	}
	r = exchange(t, f.url, path, "text/plain", body)
	require.Equal(t, http.StatusUnsupportedMediaType, r.status)
	require.Equal(t, 1, f.count(t))
}

// TestNotifications_RateLimited: a record counts against its principal's rate limit like any
// event.
func TestNotifications_RateLimited(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	h, err := write.New(store.New(pool), defaultConfig(), prometheus.NewRegistry(),
		write.WithAuthorizer(staticAuth(t), nil), write.WithRateLimiter(auth.NewRateLimiter(0.001, 1, 0)))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); h.Close() })

	r := exchange(t, srv.URL, "/api/v1/audit/notifications", "application/json", notificationBody("n-1", "pending", "m"), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = exchange(t, srv.URL, "/api/v1/audit/notifications", "application/json", notificationBody("n-2", "pending", "m"), "Authorization", "Bearer writer-token")
	require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
	r = exchange(t, srv.URL, "/api/v1/audit/notifications", "application/json", notificationBody("n-3", "pending", "m"), "Authorization", "Bearer reader-token")
	require.Equal(t, http.StatusForbidden, r.status, "a reader may not write")
}
