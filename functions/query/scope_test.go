package query_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
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
	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// rbacAPIServer answers TokenReviews and SubjectAccessReviews as a Kubernetes API server with
// these RBAC grants would: a token is its user's name; a right is a verb (/subresource),
// cluster-wide (a ClusterRoleBinding, which also allows in every namespace) or after an @ in
// one namespace (a RoleBinding).
func rbacAPIServer(t *testing.T, rights map[string][]string) auth.KubeClients {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/apis/authentication.k8s.io/v1/tokenreviews":
			var tr authnv1.TokenReview
			require.NoError(t, json.NewDecoder(r.Body).Decode(&tr))
			if _, ok := rights[tr.Spec.Token]; ok {
				tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: tr.Spec.Token}, Audiences: tr.Spec.Audiences}
			}
			_ = json.NewEncoder(w).Encode(tr)
		case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
			var sar authzv1.SubjectAccessReview
			require.NoError(t, json.NewDecoder(r.Body).Decode(&sar))
			ra := sar.Spec.ResourceAttributes
			want := ra.Verb
			if ra.Subresource != "" {
				want += "/" + ra.Subresource
			}
			for _, v := range rights[sar.Spec.User] {
				if ra.Group == auth.ResourceGroup && ra.Resource == auth.Resource &&
					(v == want || ra.Namespace != "" && v == want+"@"+ra.Namespace) {
					sar.Status.Allowed = true
				}
			}
			_ = json.NewEncoder(w).Encode(sar)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, ContentConfig: rest.ContentConfig{
		ContentType: "application/json", AcceptContentTypes: "application/json"}})
	require.NoError(t, err)
	return c
}

// reader is one row of the matrix: what a reader may see.
type reader struct {
	token     string
	cluster   bool
	sensitive bool
	named     string // the namespace parameter it sends on list and export ("": none)
}

// sees reports whether r may read an event of namespace ns at all.
func (r reader) sees(ns string) bool { return r.cluster || ns == "team-a" }

// The matrix of README "Identity and limits": readers (cluster reader, sensitive reader,
// namespace-scoped reader through AUTH_NAMESPACES and by naming its namespace, admin) ×
// sensitive and ordinary events × events of two namespaces and of none, over every read
// endpoint: list (with total and cursor paging), get, export as NDJSON, CSV and kubernaut's
// JSON, proof and proofs, verify-chain. A reader sees exactly the events of its scope; a
// sensitive event without the right withholds event_data, error_message and resource_name (and
// still decodes as kubernaut's strict client decodes); the read audit names the sensitive
// events read whole.
func TestRead_ScopeMatrix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	st := store.New(pool)
	clients := rbacAPIServer(t, map[string][]string{
		"cluster-reader":   {"list"},
		"sensitive-reader": {"list", "get/sensitive"},
		"team-a-reader":    {"list@team-a"},
		"sre-admin":        {"create", "list", "update", "get/sensitive"},
	})
	az := auth.NewKubernetes(clients, nil, time.Minute).WithNamespaces([]string{"team-a", "team-b"})
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	rec := query.NewReadRecorder(st, "auditstore-query", reg)
	h, err := query.New(st, query.Config{Timeout: 10 * time.Second, ExportTimeout: time.Minute, CursorSecret: "s",
		SigningKey: base64.StdEncoding.EncodeToString(priv.Seed())}, reg,
		query.WithAuthorizer(az, auth.NewMetrics(reg)), query.WithIntegrity(st, []integrity.PublicKey{pub}), query.WithReadAudit(rec))
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	web.Metrics(mux, reg)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	// Every combination, twice, in one correlation.
	type kind struct {
		ns        string
		sensitive bool
	}
	kinds := map[uuid.UUID]kind{}
	var events []audit.Event
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	for i := range 12 {
		k := kind{ns: []string{"team-a", "team-b", ""}[i%3], sensitive: i%6 < 3}
		e := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-scope", EventTimestamp: start.Add(time.Duration(i) * time.Second)})
		e.Namespace = nil
		if k.ns != "" {
			e.Namespace = &k.ns
		}
		secret := "secret-" + e.EventID.String()
		e.IsSensitive, e.ErrorMessage, e.ResourceName = k.sensitive, &secret, &secret
		require.NoError(t, ledger.Hash(&e))
		events, kinds[e.EventID] = append(events, e), k
	}
	_, _, err = st.InsertEvents(ctx, store.InsertParams{Events: events})
	require.NoError(t, err)
	_, err = (&ledger.Sealer{Store: st, Signer: integrity.NewSigner(priv)}).SealAll(ctx)
	require.NoError(t, err)

	do := func(r reader, method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+r.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, b := openapitest.Do(t, req, body)
		return resp.StatusCode, b
	}
	// check holds one event as served to r: its scope, and withheld exactly when it must be.
	check := func(r reader, where string, raw json.RawMessage) uuid.UUID {
		t.Helper()
		var e map[string]any
		require.NoError(t, json.Unmarshal(raw, &e), where)
		id := uuid.MustParse(e["event_id"].(string))
		k := kinds[id]
		require.True(t, r.sees(k.ns), "%s: %s read an event of namespace %q", where, r.token, k.ns)
		secret := "secret-" + id.String()
		if k.sensitive && !r.sensitive {
			require.Equal(t, []any{"event_data", "error_message", "resource_name"}, e["withheld"], where)
			require.Equal(t, map[string]any{}, e["event_data"], where)
			require.NotContains(t, string(raw), secret, where)
			_, err := kubernaut.DecodeEvent(raw)
			require.NoError(t, err, "%s: kubernaut's client decodes a withheld event", where)
		} else {
			require.NotContains(t, e, "withheld", where)
			require.Equal(t, secret, e["error_message"], where)
			require.Equal(t, secret, e["resource_name"], where)
			require.NotEmpty(t, e["event_data"], where)
		}
		return id
	}
	visibleIDs := func(r reader) []uuid.UUID {
		var ids []uuid.UUID
		for _, e := range events {
			if r.sees(kinds[e.EventID].ns) {
				ids = append(ids, e.EventID)
			}
		}
		return ids
	}

	readers := []reader{
		{token: "cluster-reader", cluster: true},
		{token: "sensitive-reader", cluster: true, sensitive: true},
		{token: "sre-admin", cluster: true, sensitive: true},
		{token: "team-a-reader"},                  // its namespace from AUTH_NAMESPACES
		{token: "team-a-reader", named: "team-a"}, // and named
	}
	for _, r := range readers {
		want := visibleIDs(r)
		filter := "correlation_id=rr-scope"
		if r.named != "" {
			filter += "&namespace=" + r.named
		}

		// List: a page at a time by cursor, with the total.
		var got []uuid.UUID
		cursor := ""
		for {
			status, body := do(r, "GET", "/api/v1/audit/events?"+filter+"&limit=3&include_total=true"+cursor, nil)
			require.Equal(t, http.StatusOK, status, string(body))
			var page struct {
				Data       []json.RawMessage
				Pagination struct {
					Total      int     `json:"total"`
					NextCursor *string `json:"next_cursor"`
				}
			}
			require.NoError(t, json.Unmarshal(body, &page))
			require.Equal(t, len(want), page.Pagination.Total, r.token)
			for _, raw := range page.Data {
				got = append(got, check(r, "list", raw))
			}
			if page.Pagination.NextCursor == nil {
				break
			}
			cursor = "&cursor=" + *page.Pagination.NextCursor
		}
		require.Equal(t, want, got, "list of %s", r.token)

		// Get, proof: each event, a 404 outside the scope.
		for _, e := range events {
			status, body := do(r, "GET", "/api/v1/audit/events/"+e.EventID.String(), nil)
			proofStatus, _ := do(r, "GET", "/api/v1/audit/events/"+e.EventID.String()+"/proof", nil)
			if !r.sees(kinds[e.EventID].ns) {
				require.Equal(t, http.StatusNotFound, status, "%s gets %s", r.token, e.EventID)
				require.Equal(t, http.StatusNotFound, proofStatus)
				continue
			}
			require.Equal(t, http.StatusOK, status, string(body))
			check(r, "get", body)
			require.Equal(t, http.StatusOK, proofStatus)
		}
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.EventID.String()
		}
		body, _ := json.Marshal(map[string]any{"event_ids": ids})
		status, raw := do(r, "POST", "/api/v1/audit/integrity/proofs", body)
		require.Equal(t, http.StatusOK, status, string(raw))
		var proofs struct {
			Proofs map[string]*struct {
				Members *json.RawMessage `json:"members"`
			}
		}
		require.NoError(t, json.Unmarshal(raw, &proofs))
		for _, e := range events {
			p := proofs.Proofs[e.EventID.String()]
			require.Equal(t, r.sees(kinds[e.EventID].ns), p != nil, "proof of %s for %s", e.EventID, r.token)
			if p != nil {
				// Salts and digests only for a reader the event is not withheld from.
				require.Equal(t, !kinds[e.EventID].sensitive || r.sensitive, p.Members != nil, "members of %s for %s", e.EventID, r.token)
			}
		}

		// Exports: NDJSON, CSV, kubernaut's JSON.
		status, raw = do(r, "GET", "/api/v1/audit/export?"+filter, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		got = nil
		for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
			if len(line) > 0 {
				got = append(got, check(r, "ndjson", line))
			}
		}
		require.Equal(t, want, got, "NDJSON export of %s", r.token)

		status, raw = do(r, "GET", "/api/v1/audit/export?format=csv&"+filter, nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
		require.NoError(t, err)
		col := func(name string) int { return slices.Index(rows[0], name) }
		got = nil
		for _, row := range rows[1:] {
			id := uuid.MustParse(row[col("event_id")])
			got = append(got, id)
			k := kinds[id]
			require.True(t, r.sees(k.ns))
			if k.sensitive && !r.sensitive {
				require.Equal(t, "{}", row[col("event_data")])
				require.Equal(t, `["event_data","error_message","resource_name"]`, row[col("withheld")])
				require.NotContains(t, strings.Join(row, ","), "secret-")
			} else {
				require.Equal(t, "secret-"+id.String(), row[col("error_message")])
				require.Empty(t, row[col("withheld")])
			}
		}
		require.Equal(t, want, got, "CSV export of %s", r.token)

		status, raw = do(r, "GET", "/api/v1/audit/export?format=json&correlation_id=rr-scope", nil)
		require.Equal(t, http.StatusOK, status, string(raw))
		var export struct {
			Events       []json.RawMessage
			Verification struct {
				Valid int `json:"valid_chain_events"`
			} `json:"hash_chain_verification"`
		}
		require.NoError(t, json.Unmarshal(raw, &export))
		got = nil
		for _, raw := range export.Events {
			got = append(got, check(r, "json export", raw))
		}
		require.Equal(t, want, got, "JSON export of %s", r.token)
		require.Equal(t, len(want), export.Verification.Valid, "withheld events still verify: the verdict is of the stored row")

		status, raw = do(r, "POST", "/api/v1/audit/verify-chain", []byte(`{"correlation_id":"rr-scope"}`))
		require.Equal(t, http.StatusOK, status, string(raw))
		var chain struct {
			TotalEvents int  `json:"total_events"`
			IsValid     bool `json:"is_valid"`
		}
		require.NoError(t, json.Unmarshal(raw, &chain))
		require.Equal(t, len(want), chain.TotalEvents, r.token)
		require.True(t, chain.IsValid)
	}

	// A cursor made in the cluster scope does not continue in a namespace's.
	status, body := do(readers[0], "GET", "/api/v1/audit/events?correlation_id=rr-scope&namespace=team-a&limit=1", nil)
	require.Equal(t, http.StatusOK, status)
	var page struct {
		Pagination struct {
			NextCursor string `json:"next_cursor"`
		}
	}
	require.NoError(t, json.Unmarshal(body, &page))
	status, _ = do(readers[4], "GET", "/api/v1/audit/events?correlation_id=rr-scope&namespace=team-a&limit=1&cursor="+page.Pagination.NextCursor, nil)
	require.Equal(t, http.StatusBadRequest, status)
	// A namespace outside the scope, named: 403.
	status, _ = do(readers[3], "GET", "/api/v1/audit/events?namespace=team-b", nil)
	require.Equal(t, http.StatusForbidden, status)

	// No metric label carries a reader.
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	require.Contains(t, families, "audit_query_duration_seconds")
	for name, fam := range families {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, who := range []string{"reader", "admin", "team"} {
					require.NotContains(t, l.GetValue(), who, "%s{%s}", name, l.GetName())
				}
			}
		}
	}

	// The read audit names every sensitive event read whole, and only those.
	rec.Close()
	recorded, err := st.QueryEvents(ctx, store.QueryParams{Filter: store.Filter{EventTypes: []string{"auditstore.query.executed"}}, Order: store.Ascending, Limit: 1000})
	require.NoError(t, err)
	named := map[string]map[string]bool{}
	withheld := map[string]int{}
	for _, e := range recorded.Events {
		var d struct {
			Payload struct {
				Principal         string   `json:"principal"`
				SensitiveEventIDs []string `json:"sensitive_event_ids"`
				Withheld          int      `json:"withheld"`
			}
		}
		require.NoError(t, json.Unmarshal(e.EventData, &d))
		if named[d.Payload.Principal] == nil {
			named[d.Payload.Principal] = map[string]bool{}
		}
		for _, id := range d.Payload.SensitiveEventIDs {
			named[d.Payload.Principal][id] = true
		}
		withheld[d.Payload.Principal] += d.Payload.Withheld
	}
	sensitiveIDs := map[string]bool{}
	for _, e := range events {
		if kinds[e.EventID].sensitive {
			sensitiveIDs[e.EventID.String()] = true
		}
	}
	require.Equal(t, sensitiveIDs, named["sensitive-reader"])
	require.Equal(t, sensitiveIDs, named["sre-admin"])
	require.Empty(t, named["cluster-reader"])
	require.Empty(t, named["team-a-reader"])
	require.Positive(t, withheld["cluster-reader"])
	require.Positive(t, withheld["team-a-reader"])
}
