package brokertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/migrations"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/brokertest"
	"github.com/auditstore/auditstore/test/pgcluster"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kelseyhightower/envconfig"
	"github.com/stretchr/testify/require"
)

// The scenario's sizes: events from several producers through the broker, one in invalidEvery
// refused as invalid, PostgreSQL stopped for outage once a quarter of them were sent.
const (
	producers    = 4
	perProducer  = 2500
	invalidEvery = 97
	outage       = 20 * time.Second
	// Paced so that the outage falls in the middle of the run (about 40 s in all).
	sendEvery = 16 * time.Millisecond
)

// profile is a delivery profile of the deployment (knative/components).
type profile struct {
	name string
	// brokerDeliveries is the write function's AUTH_BROKER_DELIVERIES.
	brokerDeliveries string
	// token is what the broker sends as its OIDC token ("": sender identity off).
	token string
}

// TestBroker_LosesNothing delivers 10,000 events from several producers through a broker as
// Knative's delivers them, for each delivery profile, and stops PostgreSQL for 20 s in the
// middle; some events are invalid. Every event ends up stored exactly once or in the dead
// letters (kept outside the database, so the broker's last attempts during the outage are
// taken), none is lost; replaying the dead letters stores each valid one once, and a second
// replay stores nothing.
func TestBroker_LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and starts PostgreSQL clusters of its own")
	}
	for _, p := range []profile{
		{name: "knative-defaults", brokerDeliveries: "unauthenticated"},
		{name: "sender-identity", brokerDeliveries: "verified", token: "broker-token"},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			run(t, p)
		})
	}
}

// sent is an event the producers sent, by its mapped event_id.
type sent struct {
	ceID, source string
	valid        bool
}

func run(t *testing.T, p profile) {
	ctx := context.Background()
	dir := t.TempDir()
	pg, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Logf: t.Logf})
	if errors.Is(err, pgcluster.ErrNoServer) {
		t.Skipf("no PostgreSQL server binaries to start a cluster of our own: %v", err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = pgcluster.RemovePersistent(dir) })
	require.NoError(t, migrations.Up(pg.URL))
	// Commits are durable whatever the cluster's defaults: acknowledged means stored.
	dbURL := pg.URL + "&options=-c%20synchronous_commit%3Don&connect_timeout=2"

	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte(`tokens:
  - {principal: broker, roles: [writer], token: broker-token}
  - {principal: operator, roles: [admin], token: admin-token}
`), 0o600))
	// The rate limit is not what this test is about: every broker delivery of the defaults
	// profile is one principal.
	srv, err := function.NewServer(function.Config{Auth: auth.Config{Mode: "static", TokensFile: tokens,
		RateLimit: 1e6, RateBurst: 1e6, RateMaxWait: time.Second}})
	require.NoError(t, err)
	s, closeDB, err := function.OpenStore(ctx, dbURL, store.PoolOptions{MaxConns: 4, Writes: true})
	require.NoError(t, err)
	t.Cleanup(closeDB)
	var wcfg write.Config
	require.NoError(t, envconfig.Process("", &wcfg))
	wcfg.Timeout = 3 * time.Second
	wcfg.BrokerDeliveries = p.brokerDeliveries
	wcfg.DeadLetterURL = "file://" + t.TempDir()
	h, err := write.Open(ctx, srv, s, wcfg)
	require.NoError(t, err)
	hs := httptest.NewServer(function.Mux(srv.Writable(s.PingWritable), srv.Registry, h.Routes))
	t.Cleanup(func() { hs.Close(); h.Close() })

	b := brokertest.New(brokertest.Options{Subscriber: hs.URL + "/", DeadLetterSink: hs.URL + "/api/v1/deadletter",
		Token: p.token, Retry: 5, BackoffDelay: 250 * time.Millisecond})

	// Producers send through the broker; the database goes away once a quarter was sent.
	var (
		mu      sync.Mutex
		events  = map[uuid.UUID]sent{}
		count   atomic.Int64
		stopped = make(chan struct{})
		wg      sync.WaitGroup
	)
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			source := fmt.Sprintf("/producer-%d", i)
			for n := range perProducer {
				ev := event.New()
				ev.SetID(fmt.Sprintf("%d", n))
				ev.SetSource(source)
				ev.SetType("gateway.signal.received")
				ev.SetExtension("correlationid", fmt.Sprintf("rr-%d-%d", i, n/10))
				valid := (n+i)%invalidEvery != 0
				if !valid {
					ev.SetExtension("outcome", "ok") // not one of success, failure, pending, unknown
				}
				if !assertNoError(t, ev.SetData("application/json", map[string]any{"producer": i, "n": n})) {
					return
				}
				mu.Lock()
				events[uuid.NewSHA1(uuid.NameSpaceURL, []byte(source+" "+ev.ID()))] = sent{ceID: ev.ID(), source: source, valid: valid}
				mu.Unlock()
				b.Send(ev)
				if count.Add(1) == producers*perProducer/4 {
					close(stopped)
				}
				time.Sleep(sendEvery)
			}
		}()
	}
	<-stopped
	require.NoError(t, pgcluster.StopPersistent(dir))
	t.Logf("%s: PostgreSQL stopped after %d events were sent", p.name, count.Load())
	time.Sleep(outage / 2)
	status, database := readiness(t, hs.URL)
	require.Equal(t, http.StatusOK, status, "the write function stays in rotation, answering 503 itself")
	require.Equal(t, "unavailable", database)
	time.Sleep(outage / 2)
	_, err = pgcluster.Start(ctx, pgcluster.Options{DataDir: dir, Logf: t.Logf})
	require.NoError(t, err)
	wg.Wait()
	stats := b.Close()
	t.Logf("%s: broker: %+v", p.name, stats)

	require.EqualValues(t, producers*perProducer, stats.Accepted)
	require.Zero(t, stats.Lost, "every delivery the broker gave up on was taken by the dead-letter sink")
	require.Equal(t, stats.Accepted, stats.Delivered+stats.DeadLettered)
	require.Positive(t, stats.Codes[http.StatusServiceUnavailable], "the outage was met")
	require.Zero(t, stats.Codes[http.StatusUnauthorized]+stats.Codes[http.StatusForbidden], "no delivery refused for auth")

	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	ids := make([]uuid.UUID, 0, len(events))
	for id := range events {
		ids = append(ids, id)
	}
	storedCounts := func() map[uuid.UUID]int {
		rows, err := pool.Query(ctx, `SELECT event_id, count(*) FROM audit_events WHERE event_id = ANY($1) GROUP BY event_id`, ids)
		require.NoError(t, err)
		out := map[uuid.UUID]int{}
		for rows.Next() {
			var id uuid.UUID
			var n int
			require.NoError(t, rows.Scan(&id, &n))
			out[id] = n
		}
		require.NoError(t, rows.Err())
		return out
	}

	// Every event is stored once or dead-lettered (or both: a delivery the broker gave up on
	// may have been committed as its connection broke, which the replay finds a duplicate).
	letters := listDeadLetters(t, hs.URL)
	require.Len(t, letters, int(stats.DeadLettered))
	lettered := map[uuid.UUID]string{}
	for _, d := range letters {
		id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(d.source+" "+d.ceID))
		_, ok := events[id]
		require.True(t, ok, "dead letter %s is an event that was sent", d.id)
		require.NotContains(t, lettered, id, "one dead letter per event")
		lettered[id] = d.id
		want := auth.BrokerUnauthenticated
		if p.token != "" {
			want = "broker" // the sink names a verified sender
		}
		require.Equal(t, want, d.submittedBy)
	}
	stored := storedCounts()
	for id, e := range events {
		_, isLetter := lettered[id]
		require.LessOrEqual(t, stored[id], 1, "stored at most once")
		require.True(t, stored[id] == 1 || isLetter, "event %s %s is stored or dead-lettered", e.source, e.ceID)
		if !e.valid {
			require.Zero(t, stored[id], "an invalid event is never stored")
			require.True(t, isLetter)
		}
	}
	storedBefore := len(stored)

	// Replay every dead letter as an administrator: each valid one is stored (once), each
	// invalid one stays dead-lettered; a second replay stores nothing.
	replayed, stillInvalid := replayAll(t, hs.URL, letters, http.StatusOK)
	stored = storedCounts()
	for id, e := range events {
		require.Equal(t, map[bool]int{true: 1, false: 0}[e.valid], stored[id], "event %s %s after the replay", e.source, e.ceID)
	}
	again, _ := replayAll(t, hs.URL, letters, http.StatusConflict)
	require.Equal(t, replayed, again, "a replayed dead letter is marked once: replaying it again is a 409")
	require.Equal(t, stored, storedCounts(), "a second replay stores nothing")
	t.Logf("%s: sent %d (%d invalid), delivered %d, dead-lettered %d (stored before replay %d), replayed %d, still invalid %d, stored %d, lost %d",
		p.name, len(events), len(events)-len(stored), stats.Delivered, stats.DeadLettered, storedBefore, replayed, stillInvalid, len(stored), stats.Lost)
}

func readiness(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/health/readiness")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body["database"]
}

// letter is a dead letter as the API lists it.
type letter struct {
	id, ceID, source, submittedBy string
}

func listDeadLetters(t *testing.T, base string) []letter {
	t.Helper()
	var out []letter
	cursor := ""
	for {
		url := base + "/api/v1/deadletters?limit=1000"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer admin-token")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var page struct {
			Data []struct {
				ID          string  `json:"deadletter_id"`
				CEID        *string `json:"ce_id"`
				CESource    *string `json:"ce_source"`
				SubmittedBy string  `json:"submitted_by"`
			} `json:"data"`
			Pagination struct {
				NextCursor *string `json:"next_cursor"`
			} `json:"pagination"`
		}
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
		resp.Body.Close()
		for _, d := range page.Data {
			require.NotNil(t, d.CEID, "dead letter %s is a CloudEvent", d.ID)
			out = append(out, letter{id: d.ID, ceID: *d.CEID, source: *d.CESource, submittedBy: d.SubmittedBy})
		}
		if page.Pagination.NextCursor == nil {
			return out
		}
		cursor = *page.Pagination.NextCursor
	}
}

// replayAll replays every letter as an administrator, 8 at once: it returns how many were
// answered want and how many 400 (still invalid); any other answer fails the test.
func replayAll(t *testing.T, base string, letters []letter, want int) (ok, invalid int) {
	t.Helper()
	var okN, invalidN atomic.Int64
	work := make(chan letter)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				req, err := http.NewRequest(http.MethodPost, base+"/api/v1/deadletters/"+d.id+"/replay", bytes.NewReader(nil))
				if !assertNoError(t, err) {
					continue
				}
				req.Header.Set("Authorization", "Bearer admin-token")
				resp, err := http.DefaultClient.Do(req)
				if !assertNoError(t, err) {
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case want:
					okN.Add(1)
				case http.StatusBadRequest:
					invalidN.Add(1)
				default:
					t.Errorf("replay of %s: %d", d.id, resp.StatusCode)
				}
			}
		}()
	}
	for _, d := range letters {
		work <- d
	}
	close(work)
	wg.Wait()
	return int(okN.Load()), int(invalidN.Load())
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}
