package kubernaut_test

import (
	"strings"
	"testing"

	"github.com/auditstore/auditstore/test/kubernaut"
	"github.com/stretchr/testify/require"
)

// TestDecode: the decoder refuses what kubernaut's generated client refuses, and only that.
func TestDecode(t *testing.T) {
	t.Parallel()
	const event = `{"event_id":"0192f0c4-6e4f-7b3a-9c1d-2e3f4a5b6c7d","version":"1.0","event_type":"gateway.signal.received",
		"event_timestamp":"2026-01-02T03:04:05Z","event_category":"gateway","event_action":"received","event_outcome":"success",
		"correlation_id":"rr-1","event_data":{"a":1},"event_date":null,"unknown_member":[1]}`
	page := func(e string) string {
		return `{"data":[` + e + `],"pagination":{"limit":1,"offset":0,"has_more":false}}`
	}
	for name, tc := range map[string]struct {
		body, err string
	}{
		"valid, unknown members skipped, a nullable member null": {body: page(event)},
		"a non-nullable member null": {body: page(strings.Replace(event, `"version"`, `"actor_ip":null,"version"`, 1)),
			err: `decode field "data[0].actor_ip": unexpected byte 110 'n'`},
		"a required member missing": {body: page(strings.Replace(event, `"correlation_id":"rr-1",`, ``, 1)),
			err: `decode field "data[0].correlation_id": required member missing`},
		"a required member null": {body: page(strings.Replace(event, `"rr-1"`, `null`, 1)),
			err: `decode field "data[0].correlation_id": unexpected byte 110 'n'`},
		"a category outside the enum": {body: page(strings.Replace(event, `"gateway",`, `"auditstore",`, 1)),
			err: `decode field "data[0].event_category": invalid value: "auditstore"`},
		"an outcome outside the enum": {body: page(strings.Replace(event, `"success"`, `"unknown"`, 1)),
			err: `decode field "data[0].event_outcome": invalid value`},
		"event_data no object": {body: page(strings.Replace(event, `{"a":1}`, `[1]`, 1)),
			err: `decode field "data[0].event_data": not an object`},
		"a wrong type": {body: page(strings.Replace(event, `"1.0"`, `1`, 1)),
			err: `decode: json: cannot unmarshal number`},
		"pagination missing": {body: `{"data":[]}`, err: `decode field "pagination": required member missing`},
	} {
		var out kubernaut.QueryResponse
		err := kubernaut.Decode([]byte(tc.body), &out)
		if tc.err == "" {
			require.NoError(t, err, name)
			require.Equal(t, "rr-1", out.Data[0].CorrelationID, name)
			require.Contains(t, out.Data[0].Raw, "unknown_member", name)
			continue
		}
		require.ErrorContains(t, err, tc.err, name)
	}
}
