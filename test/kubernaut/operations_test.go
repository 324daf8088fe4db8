package kubernaut_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/auditstore/auditstore/test/standalonetest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// operation is one row of TestOperations' table: what kubernaut's client did, and how it fared.
type operation struct {
	name   string
	status string // the HTTP statuses answered, in order
	err    error
}

// TestOperations runs every operation kubernaut's services and generated client make — with
// the client's strictness and the buffered store's batches at the default limits — against the
// functions served as the standalone process serves them, and logs a table of how each fared
// (go test -v). Every operation must succeed.
//
// With KUBERNAUT_STANDALONE set to a built standalone command, it runs against that process
// instead, e.g. an earlier commit's, to see how that one fared (the test then fails where it
// does):
//
//	git worktree add /tmp/before <commit> && (cd /tmp/before && go build -o /tmp/standalone ./functions/standalone)
//	KUBERNAUT_STANDALONE=/tmp/standalone go test ./test/kubernaut -run TestOperations -v
func TestOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t, pgtest.Options{})
	pool := pgtest.Connect(t, dbURL)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	key := base64.StdEncoding.EncodeToString(priv.Seed())
	var srv *standalonetest.Server
	if bin := os.Getenv("KUBERNAUT_STANDALONE"); bin != "" {
		srv, err = standalonetest.StartBinary(ctx, bin, dbURL, t.TempDir(), "INTEGRITY_SIGNING_KEY="+key)
	} else {
		srv, err = standalonetest.Start(ctx, dbURL, t.TempDir(), func(c *standalonetest.Config) {
			c.Query.SigningKey, c.Maintain.Integrity.SigningKey = key, key
		})
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })

	var ops []operation
	var statuses []string
	client := func(token string) *kubernaut.Client {
		return &kubernaut.Client{URL: srv.URL, Token: token, HTTP: &http.Client{Timeout: time.Minute},
			Answered: func(status int) { statuses = append(statuses, fmt.Sprint(status)) }}
	}
	writer, reader, admin := client(standalonetest.WriterToken), client(standalonetest.ReaderToken), client(standalonetest.AdminToken)
	run := func(name string, op func() error) {
		statuses = nil
		err := op()
		ops = append(ops, operation{name: name, status: strings.Join(statuses, ", "), err: err})
	}

	run("GET /healthz", func() error { return reader.Health(ctx, "/healthz") })
	run("GET /readyz", func() error { return reader.Health(ctx, "/readyz") })

	// Events as kubernaut's gateway sends them: its own payload, optional members left out.
	single := gatewayEvent("rr-single", 0)
	run("POST /events (one event)", func() error {
		r, err := writer.StoreEvent(ctx, single)
		return errors.Join(err, want(err != nil || r.EventID != uuid.Nil, "no event_id"))
	})
	var batch []kubernaut.Event
	for i := range 30 {
		batch = append(batch, gatewayEvent(fmt.Sprintf("rr-%d", i%3), i))
	}
	full := gatewayEvent("rr-0", 99)
	ns, sev := "production", "critical"
	full.ActorIP, full.ResourceType, full.ResourceID, full.Namespace, full.Severity = "10.0.0.7", "Signal", "fp-99", &ns, &sev
	batch = append(batch, full)
	var ids []uuid.UUID
	run("POST /events/batch (31 events)", func() error {
		ids, err = writer.StoreBatch(ctx, batch)
		return err
	})

	// Values kubernaut's services send that a strict store refused, losing their batch.
	lenient := []kubernaut.Event{gatewayEvent("rr-lenient", 0), gatewayEvent("rr-lenient", 1), gatewayEvent("rr-lenient", 2), gatewayEvent("rr-lenient", 3)}
	days, high := int64(30), "HIGH"
	lenient[0].ActorIP = "10.1.2.3:54321"
	lenient[1].RetentionDays = &days
	lenient[2].Severity = &high
	lenient[3].EventTimestamp = time.Now().UTC().AddDate(0, -14, 0)
	run("POST /events/batch (actor_ip with port, retention_days 30, severity HIGH, 14 months old)", func() error {
		lids, err := writer.StoreBatch(ctx, lenient)
		if err != nil {
			return err
		}
		e, err := reader.Get(ctx, lids[0])
		if err != nil {
			return err
		}
		return want(e.ActorIP == "10.1.2.3", "actor_ip read back as %q", e.ActorIP)
	})
	run("POST /events/batch (invalid values: 400 with field_errors)", func() error {
		bad := []kubernaut.Event{gatewayEvent("rr-bad", 0), gatewayEvent("rr-bad", 1)}
		bad[1].EventType = "Gateway Signal"
		_, err := writer.StoreBatch(ctx, bad)
		var se *kubernaut.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusBadRequest || se.Problem == nil {
			return fmt.Errorf("want a 400 problem, got %v", err)
		}
		_, named := se.Problem.FieldErrors["[1].event_type"]
		return want(named, "field_errors %v do not name [1].event_type", se.Problem.FieldErrors)
	})

	// An operator's maintenance run seals what was written, and records auditstore's own
	// events (reads are recorded too) beside kubernaut's.
	resp, body := adminPost(t, srv.URL, "/api/v1/maintenance/run")
	require.Equal(t, http.StatusOK, resp, "%s", body)

	run("GET /events/{event_id}", func() error {
		if len(ids) == 0 {
			return errors.New("nothing stored to read")
		}
		e, err := reader.Get(ctx, ids[len(ids)-1])
		return errors.Join(err, want(err != nil || e.ActorIP == "10.0.0.7", "actor_ip %q", e.ActorIP))
	})
	query := func(name string, params url.Values, n int) {
		run("GET /events?"+name, func() error {
			page, err := reader.Query(ctx, params)
			if err != nil {
				return err
			}
			return want(n < 0 || len(page.Data) == n, "%d events, want %d", len(page.Data), n)
		})
	}
	// The store holds auditstore's own events by now: the maintenance run's and the reads'.
	query("limit=50 (unfiltered)", url.Values{"limit": {"50"}}, -1)
	query("correlation_id (timeline)", url.Values{"correlation_id": {"rr-0"}, "limit": {"50"}}, 11)
	query("event_category, event_outcome", url.Values{"event_category": {"gateway"}, "event_outcome": {"success"}, "limit": {"50"}}, 36)
	query("detail_key, detail_value", url.Values{"detail_key": {"fingerprint"}, "detail_value": {"fp-7"}, "limit": {"50"}}, 1)
	query("offset=20, limit=10", url.Values{"event_category": {"gateway"}, "offset": {"20"}, "limit": {"10"}}, 10)
	query("offset=20000", url.Values{"offset": {"20000"}, "limit": {"50"}}, 0)
	query("since, until", url.Values{"correlation_id": {"rr-1"}, "since": {"1h"}, "until": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}}, 10)

	run("POST /verify-chain (sealed, unchanged)", func() error {
		c, err := reader.VerifyChain(ctx, "rr-1")
		if err != nil {
			return err
		}
		return want(c.IsValid && c.TotalEvents == 10 && c.VerifiedEvents == 10, "is_valid %v, %d of %d verified", c.IsValid, c.VerifiedEvents, c.TotalEvents)
	})
	run("POST /verify-chain (an event changed behind the guards)", func() error {
		if len(ids) == 0 {
			return errors.New("nothing stored to change")
		}
		victim := ids[2] // of rr-2
		pgtest.Tamper(t, pool, `UPDATE audit_events SET event_outcome = 'failure' WHERE event_id = $1`, victim)
		c, err := reader.VerifyChain(ctx, "rr-2")
		if err != nil {
			return err
		}
		return want(!c.IsValid && len(c.TamperedEvents) == 1 && c.TamperedEvents[0].EventID == victim.String(),
			"is_valid %v, tampered %v", c.IsValid, c.TamperedEvents)
	})

	run("POST /legal-hold", func() error {
		h, err := admin.PlaceLegalHold(ctx, "rr-0", "subpoena 42", "mallory")
		return errors.Join(err, want(err != nil || h.EventsAffected == 11 && h.PlacedBy == "admin", "%+v", h))
	})
	run("GET /legal-hold", func() error {
		l, err := admin.ListLegalHolds(ctx)
		return errors.Join(err, want(err != nil || l.Total == 1 && len(l.Holds) == 1, "%+v", l))
	})

	run("GET /export (format=json, include_detached_signature)", func() error {
		x, body, err := reader.Export(ctx, url.Values{"correlation_id": {"rr-0"}, "include_detached_signature": {"true"}})
		if err != nil {
			return err
		}
		pub, err := publishedKey(srv.URL)
		if err != nil {
			return err
		}
		if err := kubernaut.VerifyExport(body, pub); err != nil {
			return err
		}
		changed := slices.Clone(body)
		changed[len(body)/2] ^= 0x01
		return errors.Join(
			want(kubernaut.VerifyExport(changed, pub) != nil, "the signature still verifies after a byte changed"),
			want(len(x.Events) == 11 && x.Events[0].LegalHold && x.HashChainVerification.ValidChainEvents == 11, "%d events, %d valid", len(x.Events), x.HashChainVerification.ValidChainEvents))
	})
	run("GET /export (format=json, redact_pii)", func() error {
		x, body, err := reader.Export(ctx, url.Values{"correlation_id": {"rr-0"}, "redact_pii": {"true"}})
		if err != nil {
			return err
		}
		return errors.Join(want(!strings.Contains(string(body), "10.0.0.7"), "actor_ip not redacted"),
			want(len(x.Events) > 0 && strings.HasPrefix(x.Events[0].ActorID, "pseudonym:"), "actor_id not pseudonymised"))
	})
	run("DELETE /legal-hold/{correlation_id}", func() error {
		r, err := admin.ReleaseLegalHold(ctx, "rr-0", "case closed", "mallory")
		return errors.Join(err, want(err != nil || r.EventsReleased == 11 && r.ReleasedBy == "admin", "%+v", r))
	})

	run("POST /notifications (and its retry)", func() error {
		level := 2
		n := kubernaut.Notification{RemediationID: "rr-0", NotificationID: "notif-1", Recipient: "oncall@example.com", Channel: "slack",
			MessageSummary: "pod restarted", Status: "sent", SentAt: time.Now().UTC().Truncate(time.Second), EscalationLevel: &level}
		first, err := writer.StoreNotification(ctx, n)
		if err != nil {
			return err
		}
		retry, err := writer.StoreNotification(ctx, n)
		return errors.Join(err, want(err != nil || retry.ID == first.ID, "a retry answered id %d, first %d", retry.ID, first.ID))
	})

	run("buffered store: 5,000 events, batches of 1,000, default rate limit", func() error {
		events := make([]kubernaut.Event, 5000)
		for i := range events {
			events[i] = gatewayEvent(fmt.Sprintf("rr-buffered-%d", i%50), i)
			events[i].EventType = "gateway.signal.buffered"
		}
		b := &kubernaut.BufferedStore{Client: writer}
		b.Flush(ctx, events)
		t.Logf("buffered store: batch latencies %v", b.Latencies)
		if b.Dropped > 0 {
			return fmt.Errorf("%d of 5000 dropped: %w", b.Dropped, b.Errors[0])
		}
		page, err := reader.Query(ctx, url.Values{"event_type": {"gateway.signal.buffered"}, "include_total": {"true"}, "limit": {"1"}})
		if err != nil {
			return err
		}
		return want(page.Pagination.Total != nil && *page.Pagination.Total == 5000, "%v stored", page.Pagination.Total)
	})

	var table strings.Builder
	table.WriteString("\n| operation | statuses | result |\n|---|---|---|\n")
	failed := 0
	for _, op := range ops {
		result := "ok"
		if op.err != nil {
			failed++
			result = strings.ReplaceAll(op.err.Error(), "\n", "; ")
			if len(result) > 160 {
				result = result[:160] + "…"
			}
		}
		fmt.Fprintf(&table, "| %s | %s | %s |\n", op.name, op.status, result)
	}
	t.Log(table.String())
	require.Zero(t, failed, "operations failed")
}

// want is nil when ok, else an error saying what was found.
func want(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// adminPost posts an empty JSON object to path as the administrator.
func adminPost(t *testing.T, base, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+standalonetest.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// publishedKey reads the checkpoint key the query function publishes.
func publishedKey(base string) (ed25519.PublicKey, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/audit/integrity/public-key", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+standalonetest.ReaderToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var keys struct {
		Keys []struct {
			PublicKey []byte `json:"public_key"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&keys); err != nil {
		return nil, err
	}
	if len(keys.Keys) == 0 {
		return nil, errors.New("no key published")
	}
	return ed25519.PublicKey(keys.Keys[0].PublicKey), nil
}
