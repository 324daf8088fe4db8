package query_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

type kubernautFixture struct {
	url    string
	pool   *pgxpool.Pool
	st     *store.Store
	sealer *ledger.Sealer
	events []audit.Event // of correlation rr-chain, in timeline order
}

// setupKubernaut stores a correlation of five events, the first four sealed, behind a query
// function that signs exports with the checkpoint key.
func setupKubernaut(t *testing.T, signing bool) *kubernautFixture {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte("tokens:\n  - {principal: auditor, roles: [reader], token: reader-token}\n"), 0o600))
	az, err := auth.NewStatic(tokens)
	require.NoError(t, err)
	cfg := query.Config{Timeout: 10 * time.Second, CursorSecret: "s"}
	if signing {
		cfg.SigningKey = base64.StdEncoding.EncodeToString(priv.Seed())
	}
	h, err := query.New(st, cfg, prometheus.NewRegistry(), query.WithIntegrity(st, []integrity.PublicKey{pub}), query.WithAuthorizer(az, nil))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f := &kubernautFixture{url: srv.URL, pool: pool, st: st, sealer: &ledger.Sealer{Store: st, Signer: integrity.NewSigner(priv), Limit: 100}}

	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ip := "10.1.2.3"
	for i := range 5 {
		opts := &audittest.EventOpts{CorrelationID: "rr-chain", EventTimestamp: base.Add(time.Duration(i) * time.Minute)}
		if i == 1 {
			opts.EventType = "gateway.signal.received"
			opts.EventData = json.RawMessage(`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success",
				"payload":{"signal_type":"prometheus","fingerprint":"fp-1","annotations":{"summary":"paged Jane Doe"}}}`)
		}
		e := audittest.Event(t, opts)
		if i == 1 {
			e.ActorIP = &ip
		}
		if i == 2 {
			e.ActorID = "jane"
		}
		require.NoError(t, ledger.Hash(&e))
		f.events = append(f.events, e)
	}
	f.events[3].ActorID = f.events[0].ActorID
	require.NoError(t, ledger.Hash(&f.events[3]))
	other := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-other", EventTimestamp: base})
	require.NoError(t, ledger.Hash(&other))
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: append(append([]audit.Event{}, f.events[:4]...), other)})
	require.NoError(t, err)
	_, err = f.sealer.SealAll(ctx)
	require.NoError(t, err)
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: f.events[4:]})
	require.NoError(t, err)
	return f
}

// do sends a request as the reader and checks the exchange against the OpenAPI document.
func (f *kubernautFixture) do(t *testing.T, method, path string, body []byte, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer reader-token")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return openapitest.Do(t, req, body)
}

// tamper changes a stored event behind the guards, as a superuser who switches them off.
func (f *kubernautFixture) tamper(t *testing.T, sql string, args ...any) {
	t.Helper()
	pgtest.Tamper(t, f.pool, sql, args...)
}

func TestKubernautVerifyChain(t *testing.T) {
	t.Parallel()
	f := setupKubernaut(t, true)
	verify := func() kubernaut.ChainVerification {
		t.Helper()
		resp, body := f.do(t, http.MethodPost, "/api/v1/audit/verify-chain", []byte(`{"correlation_id":"rr-chain"}`))
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		var c kubernaut.ChainVerification
		require.NoError(t, kubernaut.Decode(body, &c))
		return c
	}

	// Four sealed and proven, the fifth awaiting its seal: valid, not yet verified.
	c := verify()
	require.True(t, c.IsValid, c.Message)
	require.Equal(t, 5, c.TotalEvents)
	require.Equal(t, 4, c.VerifiedEvents)
	require.Empty(t, c.TamperedEvents)

	// An event changed behind the guards is named, with the hashes around it.
	victim := f.events[2]
	f.tamper(t, `UPDATE audit_events SET event_outcome = 'failure' WHERE event_id = $1`, victim.EventID)
	c = verify()
	require.False(t, c.IsValid)
	require.Equal(t, 3, c.VerifiedEvents)
	require.Len(t, c.TamperedEvents, 1)
	te := c.TamperedEvents[0]
	require.Equal(t, victim.EventID.String(), te.EventID)
	require.Equal(t, victim.EventTimestamp, te.EventTimestamp)
	require.Equal(t, hex.EncodeToString(victim.EventHash), te.ExpectedHash, "the hash sealed for it")
	require.NotEqual(t, te.ExpectedHash, te.ActualHash)
	require.Len(t, te.ActualHash, 64)
	require.Equal(t, hex.EncodeToString(f.events[1].EventHash), te.PreviousHash)
	require.NotEmpty(t, te.Message)

	// Changing its stored hash along with it does not help: the log keeps the sealed one.
	e := f.events[2]
	e.EventOutcome = "failure"
	require.NoError(t, ledger.Hash(&e))
	f.tamper(t, `UPDATE audit_events SET event_hash = $2 WHERE event_id = $1`, victim.EventID, []byte(e.EventHash))
	c = verify()
	require.False(t, c.IsValid)
	require.Len(t, c.TamperedEvents, 1)

	// Once sealed, the fifth is verified too.
	_, err := f.sealer.SealAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, verify().VerifiedEvents)

	resp, body := f.do(t, http.MethodPost, "/api/v1/audit/verify-chain", []byte(`{"correlation_id":"rr-none"}`))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, kubernaut.Decode(body, &c))
	require.True(t, c.IsValid)
	require.Zero(t, c.TotalEvents)
	for _, bad := range []string{`{}`, `{"correlation_id":""}`, `{"correlation_id":"rr-chain","x":1}`, `[]`, `{"correlation_id":5}`} {
		resp, _ = f.do(t, http.MethodPost, "/api/v1/audit/verify-chain", []byte(bad))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
	}
}

func TestKubernautExport_Signed(t *testing.T) {
	t.Parallel()
	f := setupKubernaut(t, true)
	resp, body := f.do(t, http.MethodGet, "/api/v1/audit/integrity/public-key", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	published := publishedKey(t, body)
	_, err := f.st.PlaceHold(context.Background(), store.LegalHold{CorrelationID: &f.events[0].CorrelationID, Reason: "subpoena", PlacedBy: "legal"})
	require.NoError(t, err)

	resp, body = f.do(t, http.MethodGet, "/api/v1/audit/export?format=json&correlation_id=rr-chain&include_detached_signature=true", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var x kubernaut.Export
	require.NoError(t, kubernaut.Decode(body, &x))

	// The detached signature verifies with the published key, and fails after any one byte changes.
	require.NoError(t, kubernaut.VerifyExport(body, published))
	for _, at := range []int{len(`{"detached_signature":"`) + 90, len(body) / 2, len(body) - 2} {
		changed := bytes.Clone(body)
		changed[at] ^= 0x01
		require.Error(t, kubernaut.VerifyExport(changed, published), "byte %d changed", at)
	}
	// The signed bytes are also the canonical form of the body without detached_signature.
	signed, err := integrity.Canonicalize(body, "detached_signature")
	require.NoError(t, err)
	require.Equal(t, "{"+string(body[len(`{"detached_signature":"`+*x.DetachedSignature+`",`):]), string(signed))
	// export_metadata.signature covers the events member's bytes.
	var members map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &members))
	sig, err := base64.StdEncoding.DecodeString(x.ExportMetadata.Signature)
	require.NoError(t, err)
	require.True(t, ed25519.Verify(published, members["events"], sig))
	require.Equal(t, "Ed25519", x.ExportMetadata.SignatureAlgorithm)
	require.Equal(t, integrity.KeyID(published), x.ExportMetadata.CertificateFingerprint)
	require.Equal(t, "auditor", x.ExportMetadata.ExportedBy)
	require.Equal(t, "json", x.ExportMetadata.ExportFormat)
	require.Equal(t, map[string]any{"correlation_id": "rr-chain", "offset": 0.0, "limit": 1000.0}, x.ExportMetadata.QueryFilters)

	// The events in timeline order, with the log's verdicts.
	require.Equal(t, 5, x.ExportMetadata.TotalEvents)
	require.Len(t, x.Events, 5)
	for i, e := range x.Events {
		require.Equal(t, f.events[i].EventID.String(), e.EventID)
		require.Equal(t, i < 4, e.HashChainValid, "event %d: the fifth awaits its seal", i)
		require.True(t, e.LegalHold)
		require.Equal(t, hex.EncodeToString(f.events[i].EventHash), e.EventHash)
		if i > 0 {
			require.Equal(t, x.Events[i-1].EventHash, e.PreviousEventHash)
		} else {
			require.Empty(t, e.PreviousEventHash)
		}
	}
	v := x.HashChainVerification
	require.Equal(t, []int{4, 4, 0}, []int{v.TotalEventsVerified, v.ValidChainEvents, v.BrokenChainEvents})
	require.Equal(t, 100.0, v.ChainIntegrityPercentage)
	require.Empty(t, v.TamperedEventIDs)

	// A tampered event is flagged in the export too.
	f.tamper(t, `UPDATE audit_events SET event_data = '{"n": 2}' WHERE event_id = $1`, f.events[0].EventID)
	resp, body = f.do(t, http.MethodGet, "/api/v1/audit/export?format=json&correlation_id=rr-chain", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	x = kubernaut.Export{}
	require.NoError(t, kubernaut.Decode(body, &x))
	require.Nil(t, x.DetachedSignature)
	require.False(t, x.Events[0].HashChainValid)
	require.Equal(t, []string{f.events[0].EventID.String()}, x.HashChainVerification.TamperedEventIDs)
	require.Equal(t, 1, x.HashChainVerification.BrokenChainEvents)
	require.Equal(t, 75.0, x.HashChainVerification.ChainIntegrityPercentage)
}

func TestKubernautExport_Window(t *testing.T) {
	t.Parallel()
	f := setupKubernaut(t, false)
	export := func(query string, headers ...string) (int, kubernaut.Export, []byte) {
		t.Helper()
		resp, body := f.do(t, http.MethodGet, "/api/v1/audit/export"+query, nil, headers...)
		var x kubernaut.Export
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			require.NoError(t, kubernaut.Decode(body, &x))
		}
		return resp.StatusCode, x, body
	}
	// Accept: application/json alone asks for the JSON export; without it, NDJSON as before.
	status, x, _ := export("?correlation_id=rr-chain", "Accept", "application/json")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, x.Events, 5)
	require.Empty(t, x.ExportMetadata.Signature, "no signing key: no signature")
	resp, body := f.do(t, http.MethodGet, "/api/v1/audit/export?correlation_id=rr-chain", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	require.Equal(t, 5, bytes.Count(body, []byte("\n")))

	// offset and limit page through the window; start_time and end_time bound it, both inclusive.
	status, x, _ = export("?format=json&correlation_id=rr-chain&offset=1&limit=2")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []string{f.events[1].EventID.String(), f.events[2].EventID.String()}, []string{x.Events[0].EventID, x.Events[1].EventID})
	start, end := f.events[1].EventTimestamp.Format(time.RFC3339Nano), f.events[3].EventTimestamp.Format(time.RFC3339Nano)
	status, x, _ = export("?format=json&start_time=" + start + "&end_time=" + end)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, x.Events, 3)

	status, _, _ = export("?format=json&limit=10001")
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	for _, bad := range []string{"limit=0", "offset=-1", "start_time=yesterday", "since=1h", "redact_pii=maybe", "correlation_id=a&correlation_id=b"} {
		status, _, _ = export("?format=json&" + bad)
		require.Equal(t, http.StatusBadRequest, status, bad)
	}
	status, _, _ = export("?format=json&include_detached_signature=true")
	require.Equal(t, http.StatusNotImplemented, status, "no signing key configured")
}

func TestKubernautExport_RedactPII(t *testing.T) {
	t.Parallel()
	f := setupKubernaut(t, true)
	resp, body := f.do(t, http.MethodGet, "/api/v1/audit/export?format=json&correlation_id=rr-chain&redact_pii=true", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var x kubernaut.Export
	require.NoError(t, kubernaut.Decode(body, &x))
	require.NotContains(t, string(body), "Jane Doe")
	require.NotContains(t, string(body), "10.1.2.3")
	require.NotContains(t, string(body), `"jane"`)

	pseudonyms := map[string]string{}
	for i, e := range x.Events {
		require.True(t, strings.HasPrefix(e.ActorID, "pseudonym:"), e.ActorID)
		// One actor, one pseudonym within the export; another actor, another.
		if p, seen := pseudonyms[f.events[i].ActorID]; seen {
			require.Equal(t, p, e.ActorID)
		}
		pseudonyms[f.events[i].ActorID] = e.ActorID
	}
	require.Len(t, pseudonyms, 2, "two actors")
	require.Equal(t, x.Events[0].ActorID, x.Events[3].ActorID)
	require.NotEqual(t, x.Events[0].ActorID, x.Events[2].ActorID)
	require.True(t, strings.HasPrefix(*x.Events[1].ActorIP, "pseudonym:"))

	// The marked payload member is replaced, the rest of event_data kept.
	var data struct {
		Service string `json:"service"`
		Payload struct {
			SignalType  string `json:"signal_type"`
			Fingerprint string `json:"fingerprint"`
			Annotations string `json:"annotations"`
		} `json:"payload"`
	}
	require.NoError(t, json.Unmarshal(x.Events[1].EventData, &data))
	require.Equal(t, "gateway", data.Service)
	require.Equal(t, "prometheus", data.Payload.SignalType)
	require.Equal(t, "fp-1", data.Payload.Fingerprint)
	require.True(t, strings.HasPrefix(data.Payload.Annotations, "pseudonym:"))

	// Another export pseudonymises with another key: pseudonyms do not link exports.
	_, again := f.do(t, http.MethodGet, "/api/v1/audit/export?format=json&correlation_id=rr-chain&redact_pii=true", nil)
	var y kubernaut.Export
	require.NoError(t, kubernaut.Decode(again, &y))
	require.NotEqual(t, x.Events[0].ActorID, y.Events[0].ActorID)
}
