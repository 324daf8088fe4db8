package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/openapitest"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// specFixture is a query handler over a real store with a few events, every exchange with it
// checked against the OpenAPI document.
type specFixture struct {
	url    string
	events []audit.Event // oldest first
}

func newSpecFixture(t *testing.T) *specFixture {
	t.Helper()
	pool := pgtest.NewPool(t)
	s := store.New(pool)
	now := time.Now().UTC().Add(-time.Hour)
	var events []audit.Event
	for i, typ := range []string{"gateway.signal.received", "gateway.crd.created", "aianalysis.analysis.completed", "workflow.execution.completed"} {
		events = append(events, audittest.Event(t, &audittest.EventOpts{
			CorrelationID: "rr-spec", EventType: typ, EventTimestamp: now.Add(time.Duration(i) * time.Minute),
		}))
	}
	// The optional fields set, so a read shows them as values, not only as null.
	child := &events[3]
	ip, trace, span, code, msg, dur := "2001:db8::1", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "E42", "it failed", int64(1500)
	child.ParentEventID, child.ActorIP, child.TraceID, child.SpanID = &events[0].EventID, &ip, &trace, &span
	child.ErrorCode, child.ErrorMessage, child.DurationMS, child.IsSensitive = &code, &msg, &dur, true
	_, _, err := s.InsertEvents(context.Background(), store.InsertParams{Events: events})
	require.NoError(t, err)
	return &specFixture{url: specServe(t, s), events: events}
}

func specServe(t *testing.T, s query.Store) string {
	t.Helper()
	h, err := query.New(s, query.Config{CursorSecret: "x", Timeout: 10 * time.Second}, nil)
	require.NoError(t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// specGet sends GET path?params and fails t when the exchange does not match the document.
func specGet(t *testing.T, base, path string, params url.Values) (int, []byte) {
	t.Helper()
	target := base + path
	if len(params) > 0 {
		target += "?" + params.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	require.NoError(t, err)
	resp, body := openapitest.Do(t, req, nil)
	return resp.StatusCode, body
}

func TestOpenAPI_List(t *testing.T) {
	t.Parallel()
	f := newSpecFixture(t)

	status, body := specGet(t, f.url, "/api/v1/audit/events", nil)
	require.Equal(t, http.StatusOK, status, string(body))

	filters := url.Values{
		"correlation_id": {"rr-spec", "rr-other"},
		"event_type":     {"gateway.*", "workflow.execution.completed"},
		"event_outcome":  {"success"},
		"actor_type":     {"service"},
		"actor_id":       {"gateway"},
		"namespace":      {"production"},
		"severity":       {"info"},
		"submitted_by":   {"test-writer"},
		"since":          {"1d"},
		"until":          {time.Now().UTC().Add(time.Hour).Format(time.RFC3339)},
		"data":           {`{"service":"gateway"}`},
		"data_path":      {"$.payload.retries >= 0"},
		"order":          {"asc"},
		"limit":          {"2"},
		"include_total":  {"true"},
	}
	status, body = specGet(t, f.url, "/api/v1/audit/events", filters)
	require.Equal(t, http.StatusOK, status, string(body))
	var page struct {
		Data       []audit.Event `json:"data"`
		Pagination struct {
			HasMore    bool    `json:"has_more"`
			NextCursor *string `json:"next_cursor"`
			Total      *int64  `json:"total"`
		} `json:"pagination"`
	}
	require.NoError(t, json.Unmarshal(body, &page))
	require.Len(t, page.Data, 2)
	require.True(t, page.Pagination.HasMore)
	require.NotNil(t, page.Pagination.NextCursor)
	require.EqualValues(t, 3, *page.Pagination.Total, "gateway.* and workflow.execution.completed")

	filters.Set("cursor", *page.Pagination.NextCursor)
	filters.Del("include_total")
	status, body = specGet(t, f.url, "/api/v1/audit/events", filters)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &page))
	require.Len(t, page.Data, 1)
	require.False(t, page.Pagination.HasMore)
	require.Nil(t, page.Pagination.NextCursor)

	status, body = specGet(t, f.url, "/api/v1/audit/events", url.Values{
		"resource_id": {*f.events[3].ResourceID, *f.events[2].ResourceID},
		"since":       {time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)},
		"offset":      {"1"},
		"limit":       {"1"},
		"order":       {"desc"},
	})
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &page))
	require.Len(t, page.Data, 1)
	require.Equal(t, f.events[2].EventID, page.Data[0].EventID)
}

func TestOpenAPI_Get(t *testing.T) {
	t.Parallel()
	f := newSpecFixture(t)
	for _, e := range []audit.Event{f.events[0], f.events[3]} {
		status, body := specGet(t, f.url, "/api/v1/audit/events/"+e.EventID.String(), nil)
		require.Equal(t, http.StatusOK, status, string(body))
	}
	status, body := specGet(t, f.url, "/api/v1/audit/events/"+uuid.NewString(), nil)
	require.Equal(t, http.StatusNotFound, status, string(body))
	status, body = specGet(t, f.url, "/api/v1/audit/events/not-a-uuid", nil)
	require.Equal(t, http.StatusBadRequest, status, string(body))
}

func TestOpenAPI_Export(t *testing.T) {
	t.Parallel()
	f := newSpecFixture(t)
	status, body := specGet(t, f.url, "/api/v1/audit/export", url.Values{"correlation_id": {"rr-spec"}, "order": {"asc"}})
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = specGet(t, f.url, "/api/v1/audit/export", url.Values{"correlation_id": {"rr-none"}})
	require.Equal(t, http.StatusOK, status, string(body))
	require.Empty(t, body)
	status, body = specGet(t, f.url, "/api/v1/audit/export", url.Values{"limit": {"10"}})
	require.Equal(t, http.StatusBadRequest, status, string(body))
}

func TestOpenAPI_BadParameters(t *testing.T) {
	t.Parallel()
	f := newSpecFixture(t)
	for _, params := range []url.Values{
		{"limit": {"0"}},
		{"colour": {"red"}},
		{"offset": {"1"}, "cursor": {"abc"}},
		{"since": {"last tuesday"}},
		{"event_type": {"Gateway Signal"}},
		{"data": {`[1]`}},
		{"data_path": {"$$ nonsense (("}}, // refused by the database
	} {
		status, body := specGet(t, f.url, "/api/v1/audit/events", params)
		require.Equal(t, http.StatusBadRequest, status, "%v: %s", params, body)
	}
}

// failingReadStore fails every read with err.
type failingReadStore struct {
	query.Store
	err error
}

func (s failingReadStore) QueryEvents(context.Context, store.QueryParams) (store.Page, error) {
	return store.Page{}, s.err
}

func (s failingReadStore) GetEvent(context.Context, uuid.UUID) (audit.Event, error) {
	return audit.Event{}, s.err
}

func (s failingReadStore) StreamEvents(context.Context, store.StreamParams, func(*audit.Event) error) (int64, error) {
	return 0, s.err
}

func TestOpenAPI_StoreFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		status int
	}{
		{fmt.Errorf("query: %w", store.ErrUnavailable), http.StatusServiceUnavailable},
		{fmt.Errorf("query: %w", store.ErrTimeout), http.StatusGatewayTimeout},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		base := specServe(t, failingReadStore{err: tc.err})
		for _, path := range []string{"/api/v1/audit/events", "/api/v1/audit/events/" + uuid.NewString(), "/api/v1/audit/export"} {
			status, body := specGet(t, base, path, nil)
			require.Equal(t, tc.status, status, "%s: %s", path, body)
		}
	}
}
