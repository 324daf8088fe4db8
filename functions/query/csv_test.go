package query_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/stretchr/testify/require"
)

// jsonKeys returns the member names of a JSON object in the order they appear.
func jsonKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	_, err := dec.Token() // {
	require.NoError(t, err)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}

// cellOf is what a CSV cell must hold for a value of the NDJSON export.
func cellOf(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if raw == nil {
		return "" // left out of the JSON form
	}
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return ts.UTC().Format(time.RFC3339Nano)
		}
		return v
	case map[string]any:
		return string(raw)
	}
	return string(raw) // numbers and booleans as JSON writes them
}

func TestExport_CSV(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	now := time.Now().UTC().Add(-time.Hour)
	plain := audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-csv", EventTimestamp: now})
	// The awkward one: quotes, commas and a line break where CSV must quote, formula starts
	// where a spreadsheet would run them, and every optional field set.
	tricky := audittest.Event(t, &audittest.EventOpts{
		CorrelationID: "rr-csv", EventTimestamp: now.Add(time.Second), ActorID: "=cmd|' /C calc'!A0", ResourceID: "-2+3",
		EventData: json.RawMessage(`{"note":"a \"quoted\", comma\nand a new line","n":12345678901234567890}`),
	})
	name, msg, code, dur, ip, other := "@SUM(1+1)", "line one,\n\"line two\"", "E42", int64(1500), "10.0.0.7", "x"
	tricky.ResourceName, tricky.ErrorMessage, tricky.ErrorCode, tricky.DurationMS, tricky.ActorIP = &name, &msg, &code, &dur, &ip
	tricky.TraceID, tricky.SpanID, tricky.ClusterID = &other, &other, &other
	tricky.EventHash, tricky.HashVersion = bytes.Repeat([]byte{0xab}, 32), 1
	tricky.ParentEventID = &plain.EventID
	f.insert(t, plain, tricky)

	status, ndjson := f.get(t, "/api/v1/audit/export?correlation_id=rr-csv")
	require.Equal(t, http.StatusOK, status, string(ndjson))
	resp, err := http.Get(f.url + "/api/v1/audit/export?correlation_id=rr-csv&format=csv")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/csv; charset=utf-8; header=present", resp.Header.Get("Content-Type"))
	require.Contains(t, resp.Header.Get("Content-Disposition"), `filename="audit-events.csv"`)
	rows, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)

	lines := bytes.Split(bytes.TrimSpace(ndjson), []byte("\n"))
	require.Len(t, rows, 1+len(lines), "a header and one row per event")
	header := rows[0]
	// Every field is a column, also those an event leaves out of its JSON form (the plain one).
	// erased and withheld are last: only an event members of were erased, and a sensitive
	// event read without the right to read it, have them.
	require.Equal(t, append(jsonKeys(t, lines[1]), "erased", "withheld"), header, "the columns are the event's fields in the order JSON shows them")
	require.Less(t, len(jsonKeys(t, lines[0])), len(header))
	for i, line := range lines {
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(line, &fields))
		for j, col := range header {
			want := cellOf(t, fields[col])
			if want != "" && strings.ContainsRune("=+-@\t\r", rune(want[0])) {
				want = "'" + want
			}
			require.Equal(t, want, rows[1+i][j], "row %d column %s", i, col)
		}
	}
	row := rows[2]
	col := func(name string) string {
		for j, h := range header {
			if h == name {
				return row[j]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	require.Equal(t, "'=cmd|' /C calc'!A0", col("actor_id"))
	require.Equal(t, "'@SUM(1+1)", col("resource_name"))
	require.Equal(t, "'-2+3", col("resource_id"))
	require.Equal(t, msg, col("error_message"), "quotes, commas and line breaks survive")
	require.Equal(t, "1500", col("duration_ms"))
	require.Equal(t, plain.EventID.String(), col("parent_event_id"))
	require.Contains(t, col("event_data"), "12345678901234567890", "event_data is its JSON text, numbers exact")
	require.Empty(t, rows[1][slicesIndex(header, "duration_ms")], "an absent field is an empty cell")

	// No match: the header alone.
	resp2, err := http.Get(f.url + "/api/v1/audit/export?correlation_id=rr-none&format=csv")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	require.Equal(t, http.StatusOK, resp2.StatusCode)
	require.Equal(t, strings.Join(header, ",")+"\n", string(body))
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestExport_FormatParameter(t *testing.T) {
	t.Parallel()
	f := newQueryFixture(t, query.Config{})
	f.insert(t, audittest.Event(t, &audittest.EventOpts{CorrelationID: "rr-format"}))
	for _, tc := range []struct{ path, field string }{
		{"/api/v1/audit/export?format=xml", "format"},
		{"/api/v1/audit/export?format=csv&format=ndjson", "format"},
		{"/api/v1/audit/events?format=csv", "format"}, // a list is JSON only
	} {
		status, b := f.get(t, tc.path)
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", tc.path, b)
		require.Contains(t, string(b), `"field":"`+tc.field+`"`, tc.path)
	}
	status, b := f.get(t, "/api/v1/audit/export?format=ndjson&correlation_id=rr-format")
	require.Equal(t, http.StatusOK, status, string(b))
	n := 0
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); n++ {
		var e audit.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
	}
	require.Equal(t, 1, n)
}

func TestOpenAPI_ExportCSV(t *testing.T) {
	t.Parallel()
	f := newSpecFixture(t)
	status, body := specGet(t, f.url, "/api/v1/audit/export", url.Values{"correlation_id": {"rr-spec"}, "format": {"csv"}})
	require.Equal(t, http.StatusOK, status, string(body))
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1+len(f.events), fmt.Sprintf("%q", body))
	status, body = specGet(t, f.url, "/api/v1/audit/export", url.Values{"format": {"pdf"}})
	require.Equal(t, http.StatusBadRequest, status, string(body))
}
