package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// quickValues are member values to try against every property of every schema: around each
// bound, of every JSON type, and date-times the library accepts or refuses.
func quickValues() []string {
	var vs []string
	for _, n := range []int{0, 1, 99, 100, 101, 252, 253, 254, 255, 256} {
		vs = append(vs, fmt.Sprintf("%q", strings.Repeat("a", n)), fmt.Sprintf("%q", strings.Repeat("é", n)))
	}
	vs = append(vs, `-1`, `0`, `-0`, `1`, `40`, `99`, `100`, `101`, `1.0`, `1.5`, `1e2`, `-1e-2`,
		`99999999999999999999`, `true`, `false`, `null`, `{}`, `[]`, `["x"]`, `[1]`, `[null]`, `{"a":"b"}`,
		`{"a":1}`, `{"a":null}`, `{"a":{"b":"c"}}`, `"prometheus"`, `"success"`, `"failure"`, `"critical"`,
		`"2026-11-25T10:00:00Z"`, `"2026-11-25t10:00:00z"`, `"2026-11-25T10:00:00.123456+01:00"`,
		`"2026-11-25T10:00:00-23:59"`, `"2024-02-29T00:00:00Z"`, `"2026-02-29T00:00:00Z"`, `"2026-04-31T00:00:00Z"`,
		`"2026-12-31T23:59:60Z"`, `"2026-13-01T00:00:00Z"`, `"2026-11-25T24:00:00Z"`, `"2026-11-25 10:00:00Z"`,
		`"2026-11-25T10:00:00"`, `"2026-11-25T10:00:00.Z"`, `"2026-11-25T10:00:00+0100"`, `"2026-11-25T10:00:00,5Z"`,
		`"20261125T100000Z"`, `"2026-11-25"`, `"x"`)
	return vs
}

// TestQuickSchema_NeverMoreLenient holds the quick validator to the library: for every
// registered service it compiles, takes the schema's examples, and never calls a payload valid
// that the library refuses.
func TestQuickSchema_NeverMoreLenient(t *testing.T) {
	t.Parallel()
	values := quickValues()
	for _, service := range Services() {
		ps := compiledSchemas().payloads[service]
		require.NotNil(t, ps.quick, "%s: the quick validator cannot take this schema", service)
		raw, _ := Schema(service)
		var doc map[string]any
		d := json.NewDecoder(strings.NewReader(string(raw)))
		d.UseNumber()
		require.NoError(t, d.Decode(&doc))
		examples, _ := doc["examples"].([]any)
		require.NotEmpty(t, examples, service)
		props, _ := doc["properties"].(map[string]any)
		names := []string{"not_in_the_schema"}
		for name := range props {
			names = append(names, name)
		}
		agree, total := 0, 0
		check := func(payload string) {
			d, err := parseData([]byte(`{"p":` + payload + `}`))
			require.NoError(t, err, payload)
			v := d.Value["p"]
			libOK := ps.types.Validate(v) == nil
			// The stored form of {"p":payload}, from the payload on.
			quickOK := d.NumbersAsSent && ps.quick.validPayload(d.Stored[len(`{"p":`):len(d.Stored)-1])
			require.False(t, quickOK && !libOK, "%s: quick calls valid what the library refuses: %s", service, payload)
			total++
			if quickOK == libOK {
				agree++
			}
		}
		for _, ex := range examples {
			b, err := json.Marshal(ex)
			require.NoError(t, err)
			d, err := parseData(b)
			require.NoError(t, err)
			require.True(t, d.NumbersAsSent && ps.quick.validPayload(d.Stored), "%s: the quick validator does not take the example %s", service, b)
			for _, name := range names {
				for _, val := range values {
					m := map[string]json.RawMessage{}
					require.NoError(t, json.Unmarshal(b, &m))
					m[name] = json.RawMessage(val)
					p, err := json.Marshal(m)
					require.NoError(t, err)
					check(string(p))
				}
			}
		}
		for _, val := range values {
			check(val)
		}
		t.Logf("%s: the quick validator agreed with the library on %d of %d payloads", service, agree, total)
	}
}

func TestIsDateTime(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"2026-11-25T10:00:00Z": true, "2026-11-25T10:00:00.5+01:00": true, "2024-02-29T23:59:59z": true,
		"2026-02-29T00:00:00Z": false, "2026-11-25T10:00:60Z": false, "2026-11-25T10:00:00": false,
		"2026-11-25T10:00:00+1:00": false, "2026-11-25T10:00:00.Z": false, "2026-11-25X10:00:00Z": false,
	} {
		require.Equal(t, want, isDateTime(s), s)
	}
}

func TestIsEventType(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", ".", "a", "a.", ".a", "a.b", "a..b", "gateway.signal.received", "A.b", "a.b-c_d.9",
		"a.b.", "a b.c", "a.é", "a.b\n", "-._", "x.y.z.w"} {
		require.Equal(t, eventTypePattern.MatchString(s), isEventType(s), "%q", s)
	}
}

// TestAppendUUID is not parallel: AllocsPerRun refuses to run in a parallel test.
func TestAppendUUID(t *testing.T) {
	for range 20 {
		id := uuid.New()
		var b [36]byte
		require.Equal(t, id.String(), string(AppendUUID(b[:0], id)))
	}
	require.Zero(t, testing.AllocsPerRun(100, func() {
		var b [36]byte
		_ = AppendUUID(b[:0], uuid.UUID{})
	}))
}

// TestQuickEnvelope_NeverMoreLenient holds quickEnvelope to validateEnvelope: whatever event_data
// it calls valid, validateEnvelope finds nothing wrong with, and both name the same service.
func TestQuickEnvelope_NeverMoreLenient(t *testing.T) {
	t.Parallel()
	base := map[string]string{"version": `"1.0"`, "service": `"gateway"`, "operation": `"signal.received"`,
		"status": `"success"`, "payload": `{"signal_type":"prometheus","alert_name":"A","fingerprint":"f"}`}
	values := append(quickValues(), `" "`, `"\u0020"`, `"a\"b"`, `"2.0"`, `"1"`, `"1.x"`, `"unregistered"`, `"aianalysis"`,
		`"gateway"`, `0`, `-1`, `1.0`, `2`, `1e0`, strings.Repeat(`"x`, 1)+strings.Repeat("y", 300)+`"`)
	taken := 0
	for _, member := range []string{"version", "service", "operation", "status", "payload", "attempt", "retry_reason", "other"} {
		for _, val := range append(values, "") {
			var b strings.Builder
			b.WriteByte('{')
			for name, v := range base {
				if name == member {
					continue
				}
				fmt.Fprintf(&b, "%q:%s,", name, v)
			}
			if val != "" {
				fmt.Fprintf(&b, "%q:%s,", member, val)
			}
			raw := strings.TrimSuffix(b.String(), ",") + "}"
			if checkQuickEnvelope(t, []byte(raw)) {
				taken++
			}
		}
	}
	require.Positive(t, taken)
}

func FuzzQuickEnvelope(f *testing.F) {
	f.Add([]byte(`{"version":"1.0","service":"gateway","operation":"o","status":"s","attempt":2,"payload":{"risk_score":4}}`))
	f.Add([]byte(`{"version":"1","service":"aianalysis","operation":"o","status":"s","payload":{"confidence":0.5}}`))
	f.Fuzz(func(t *testing.T, raw []byte) { checkQuickEnvelope(t, raw) })
}

// checkQuickEnvelope checks quickEnvelope on raw and reports whether it took it.
func checkQuickEnvelope(t *testing.T, raw []byte) bool {
	t.Helper()
	d, err := parseData(raw)
	if err != nil || !d.NumbersAsSent {
		return false
	}
	service, ok := quickEnvelope(d.Stored)
	if ok {
		require.Empty(t, validateEnvelope(d.Value, false), "quickEnvelope took %s", raw)
		require.Equal(t, EnvelopeService(d.Value), service, "%s", raw)
	}
	return ok
}
