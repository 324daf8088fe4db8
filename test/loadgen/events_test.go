package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// request is one request of t for the events first.., as the server reads it.
func (t *template) request(first int) (body []byte, header http.Header) {
	raw := t.appendRequest(nil, "127.0.0.1:1", "/api/v1/audit/events", first)
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		panic(err)
	}
	if body, err = io.ReadAll(req.Body); err != nil {
		panic(err)
	}
	if req.ContentLength != int64(len(body)) {
		panic("Content-Length is not the body's length")
	}
	return body, req.Header
}

// prepare validates a decoded event as the write function would.
func prepare(t *testing.T, in *audit.Input) audit.Event {
	t.Helper()
	e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "anonymous", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	require.Empty(t, errs)
	return e
}

// requireSameEvent checks that a sent event is the generator's event n but for its id.
func requireSameEvent(t *testing.T, n int, got *audit.Input) {
	t.Helper()
	want := input(n, *got.EventID, correlationID(n))
	require.Equal(t, want.CorrelationID, got.CorrelationID)
	require.Equal(t, want.ResourceID, got.ResourceID)
	we, ge := prepare(t, want), prepare(t, got)
	require.Equal(t, we.ContentHash, ge.ContentHash, "the same content as the ceiling's event %d", n)
	require.JSONEq(t, string(we.EventData), string(ge.EventData))
}

func TestJSONTemplates(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 1, 100} {
		tps, err := jsonTemplates(3, size)
		require.NoError(t, err)
		seen := map[string]bool{}
		for k, tp := range tps {
			for _, first := range []int{0, 1234567} {
				body, header := tp.request(first)
				require.Equal(t, "application/json", header.Get("Content-Type"))
				var inputs []*audit.Input
				if size == 0 {
					var in audit.Input
					require.NoError(t, json.Unmarshal(body, &in))
					inputs = []*audit.Input{&in}
				} else {
					require.NoError(t, json.Unmarshal(body, &inputs))
				}
				require.Len(t, inputs, max(size, 1))
				for j, in := range inputs {
					_, err := uuid.Parse(*in.EventID)
					require.NoError(t, err)
					require.False(t, seen[*in.EventID], "every event gets a fresh id")
					seen[*in.EventID] = true
					require.Equal(t, correlationID(first+j), *in.CorrelationID)
					require.Contains(t, string(in.EventData), correlationID(first+j))
					if k == 0 && first == 0 {
						// Numbered from 0, the first template's events are the ceiling's.
						requireSameEvent(t, j, in)
					}
				}
			}
		}
	}
}

func TestCETemplates(t *testing.T) {
	t.Parallel()
	tps, err := ceTemplates(2)
	require.NoError(t, err)
	body, header := tps[1].request(50)
	require.Equal(t, "1.0", header.Get("Ce-Specversion"))
	_, err = uuid.Parse(header.Get("Ce-Id"))
	require.NoError(t, err)
	require.Equal(t, correlationID(50), header.Get("Ce-Correlationid"))
	require.Equal(t, "fp-1", header.Get("Ce-Subject"))
	require.True(t, json.Valid(body))
	require.Contains(t, string(body), correlationID(50))
	require.False(t, strings.Contains(string(body), "#"), "no placeholder left")
	body2, header2 := tps[1].request(50)
	require.NotEqual(t, header.Get("Ce-Id"), header2.Get("Ce-Id"))
	require.Equal(t, body, body2)
}

func TestCeilingEvents(t *testing.T) {
	t.Parallel()
	events, err := ceilingEvents(60)
	require.NoError(t, err)
	require.Equal(t, correlationID(59), events[59].CorrelationID)
	require.Equal(t, "rr-0000000002", events[59].CorrelationID)
	require.NotEqual(t, events[0].EventID, events[1].EventID)
	require.Greater(t, len(events[0].EventData), 700)
}
