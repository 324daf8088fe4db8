package audit_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func defaults() audit.Defaults {
	return audit.Defaults{Now: now, Principal: "gateway-sa", RetentionClasses: audit.DefaultRetentionClasses}
}

func TestPrepare_Defaults(t *testing.T) {
	t.Parallel()
	in := audittest.Input(t, nil)
	in.EventID, in.ActorType, in.ActorID = nil, nil, nil
	e, errs := in.Prepare(defaults(), audit.DefaultLimits)
	require.Empty(t, errs)
	require.EqualValues(t, 7, e.EventID.Version())
	require.Equal(t, "1.0", e.Version)
	require.Equal(t, now, e.EventTimestamp)
	require.Equal(t, "gateway", e.EventCategory)
	require.Equal(t, "received", e.EventAction)
	require.Equal(t, "service", e.ActorType)
	require.Equal(t, "gateway-sa", e.ActorID)
	require.Equal(t, "gateway-sa", e.SubmittedBy)
	require.Equal(t, 2557, e.RetentionDays)
	require.Len(t, e.ContentHash, 32)
}

func TestPrepare_EveryErrorAtOnce(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	i := func(v int64) *int64 { return &v }
	in := &audit.Input{
		EventID:        s("not-a-uuid"),
		EventTimestamp: s(now.Add(10 * time.Minute).Format(time.RFC3339)),
		EventType:      s("Gateway"),
		EventOutcome:   s("ok"),
		CorrelationID:  s(strings.Repeat("c", 256)),
		ActorIP:        s("10.0.0.300"),
		ParentEventID:  s("{123}"),
		Severity:       s("fatal"),
		DurationMS:     i(-1),
		RetentionDays:  i(0),
		ResourceName:   s("a\x00b"),
		Namespace:      s(strings.Repeat("n", 254)),
		EventData:      json.RawMessage(`[1]`),
	}
	_, errs := in.Prepare(defaults(), audit.DefaultLimits)
	fields := map[string]string{}
	for _, e := range errs {
		fields[e.Field] = e.Message
	}
	require.Equal(t, []string{"actor_ip", "correlation_id", "duration_ms", "event_data", "event_id", "event_outcome", "event_timestamp",
		"event_type", "namespace", "parent_event_id", "resource_name", "retention_days", "severity"}, sortedKeys(fields))
	require.Equal(t, `"ok" is not one of success, failure, pending, unknown`, fields["event_outcome"])
	require.Contains(t, fields["event_timestamp"], "in the future")
	require.Contains(t, fields["retention_days"], "between 1 and 2557")
	require.Contains(t, fields["resource_name"], "U+0000")
	require.Equal(t, "must be a JSON object", fields["event_data"])

	_, errs = (&audit.Input{}).Prepare(defaults(), audit.DefaultLimits)
	require.Len(t, errs, 4, "event_type, event_outcome, correlation_id and event_data are required: %v", errs)
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

func TestPrepare_TimestampWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ts string
		ok bool
	}{
		{now.Add(4 * time.Minute).Format(time.RFC3339), true},
		{now.Add(6 * time.Minute).Format(time.RFC3339), false},
		// Any age its retention (2557 days here) still covers.
		{now.Add(-31 * 24 * time.Hour).Format(time.RFC3339), true},
		{now.AddDate(0, 0, -2556).Format(time.RFC3339), true},
		{now.AddDate(0, 0, -2557).Format(time.RFC3339), false},
		{"2026-11-25 12:00:00", false},
		{"2026-11-25T12:00:00.123456789+01:00", true},
	} {
		in := audittest.Input(t, nil)
		in.EventTimestamp = &tc.ts
		_, errs := in.Prepare(defaults(), audit.DefaultLimits)
		require.Equal(t, tc.ok, len(errs) == 0, "%s: %v", tc.ts, errs)
	}
}

// TestPrepare_AgeByRetention: without MAX_EVENT_AGE an event is refused only when its own
// retention (its class) has already passed; MAX_EVENT_AGE, when set, is a tighter bound.
func TestPrepare_AgeByRetention(t *testing.T) {
	t.Parallel()
	prepare := func(age time.Duration, retention int64, lim audit.Limits) []audit.FieldError {
		in := audittest.Input(t, nil)
		ts := now.Add(-age).Format(time.RFC3339)
		in.EventTimestamp, in.RetentionDays = &ts, &retention
		_, errs := in.Prepare(defaults(), lim)
		return errs
	}
	day := 24 * time.Hour
	require.Empty(t, prepare(89*day, 30, audit.DefaultLimits), "30 days is stored as 90, which still covers it")
	errs := prepare(91*day, 30, audit.DefaultLimits)
	require.Len(t, errs, 1)
	require.Equal(t, "event_timestamp", errs[0].Field)
	require.Contains(t, errs[0].Message, "older than its retention of 90 days")
	require.Empty(t, prepare(179*day, 100, audit.DefaultLimits), "100 days is the 180-day class")
	require.NotEmpty(t, prepare(2*day, 30, audit.Limits{MaxClockSkew: time.Minute, MaxEventAge: day}), "an explicit MAX_EVENT_AGE is tighter")
	require.Empty(t, prepare(2*day, 30, audit.Limits{MaxClockSkew: time.Minute, MaxEventAge: 3 * day}))
}

// TestPrepare_Lenient: values kubernaut's services send are stored as the contract says.
func TestPrepare_Lenient(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	for _, tc := range []struct{ sent, stored string }{
		{"10.1.2.3:54321", "10.1.2.3"},
		{"[::1]:5", "::1"},
		{"[2001:db8::1]:8080", "2001:db8::1"},
		{"10.1.2.3", "10.1.2.3"},
		{"2001:db8::1", "2001:db8::1"},
	} {
		in := audittest.Input(t, nil)
		in.ActorIP = s(tc.sent)
		e, errs := in.Prepare(defaults(), audit.DefaultLimits)
		require.Empty(t, errs, tc.sent)
		require.Equal(t, tc.stored, *e.ActorIP)
	}
	for _, bad := range []string{"10.1.2.3:", "10.1.2.3:99999", "[::1]", "fe80::1%eth0", "[fe80::1%eth0]:5", "host:80"} {
		in := audittest.Input(t, nil)
		in.ActorIP = s(bad)
		_, errs := in.Prepare(defaults(), audit.DefaultLimits)
		require.Len(t, errs, 1, bad)
		require.Equal(t, "actor_ip", errs[0].Field)
	}

	for _, tc := range []struct {
		sent   int64
		stored int
	}{{1, 90}, {30, 90}, {90, 90}, {91, 180}, {2555, 2557}, {2557, 2557}} {
		in := audittest.Input(t, nil)
		in.RetentionDays = &tc.sent
		e, errs := in.Prepare(defaults(), audit.DefaultLimits)
		require.Empty(t, errs, tc.sent)
		require.Equal(t, tc.stored, e.RetentionDays, "retention_days %d", tc.sent)
	}
	for _, bad := range []int64{0, -1, 2558} {
		in := audittest.Input(t, nil)
		in.RetentionDays = &bad
		_, errs := in.Prepare(defaults(), audit.DefaultLimits)
		require.Len(t, errs, 1, bad)
		require.Equal(t, "retention_days", errs[0].Field)
	}

	var hashes [][]byte
	base := audittest.Input(t, nil)
	for _, sent := range []string{"HIGH", "High", "high"} {
		in := *base
		in.Severity = s(sent)
		e, errs := in.Prepare(defaults(), audit.DefaultLimits)
		require.Empty(t, errs, sent)
		require.Equal(t, "high", *e.Severity)
		hashes = append(hashes, e.ContentHash)
	}
	require.Equal(t, hashes[0], hashes[2], "a retry spelled in another case is the same event")
	in := audittest.Input(t, nil)
	in.Severity = s("Fatal")
	_, errs := in.Prepare(defaults(), audit.DefaultLimits)
	require.Len(t, errs, 1)
	require.Equal(t, `"Fatal" is not one of debug, info, low, medium, warning, high, error, critical (in any case)`, errs[0].Message)
}

func TestContentHash_SameContentSameHash(t *testing.T) {
	t.Parallel()
	hash := func(in *audit.Input, d audit.Defaults) []byte {
		e, errs := in.Prepare(d, audit.DefaultLimits)
		require.Empty(t, errs)
		return e.ContentHash
	}
	in := audittest.Input(t, &audittest.EventOpts{EventData: json.RawMessage(`{"b": [1.0, {"y":true,"x":null}], "a": "é"}`)})
	h := hash(in, defaults())

	reordered := *in
	reordered.EventData = json.RawMessage("{\"a\":\"é\",\n \"b\":[1,{\"x\":null,\"y\":true}]}")
	later := defaults()
	later.Now = now.Add(time.Hour) // a retry the server timestamps again
	require.Equal(t, h, hash(&reordered, later))

	upper := *in
	id := strings.ToUpper(*in.EventID)
	upper.EventID = &id
	date := "2026-11-01T00:00:00Z"
	upper.ParentEventDate = &date // not content
	require.Equal(t, h, hash(&upper, defaults()))

	changed := *in
	changed.EventData = json.RawMessage(`{"a":"é","b":[2,{"x":null,"y":true}]}`)
	require.NotEqual(t, h, hash(&changed, defaults()))
	withNull := *in
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	withNull.TraceID = &trace
	require.Equal(t, hash(&withNull, defaults()), hash(&withNull, defaults()))
	require.NotEqual(t, h, hash(&withNull, defaults()), "a field the first copy did not send is other content")
}

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32)
	tooDeep := strings.Repeat(`[`, 33) + strings.Repeat("]", 33)
	for _, tc := range []struct{ in, want, err string }{
		{`{"b":1,"a":[1.50,1e2,-0,12345678901234567890123]}`, `{"a":[1.5,100,0,12345678901234567890123],"b":1}`, ""},
		{`{"s":"\u003c\/\"\n"}`, `{"s":"</\"\n"}`, ""},
		{deep, deep, ""},
		{`{"x":` + tooDeep + `}`, "", "deeper than 32"},
		{`{"s":"a\u0000"}`, "", "U+0000"},
		{"{\"s\":\"\xff\"}", "", "UTF-8"},
		{`{"a":1} {}`, "", "after the value"},
		{`{"a":`, "", "not valid JSON"},
		{`"x"`, "", "must be a JSON object"},
		{`{"x":"` + strings.Repeat("a", audit.MaxDataBytes) + `"}`, "", "256 KiB"},
	} {
		got, err := audit.CanonicalJSON([]byte(tc.in))
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in[:min(len(tc.in), 40)])
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, string(got))
	}
}

func TestRetention(t *testing.T) {
	t.Parallel()
	i := func(v int64) *int64 { return &v }
	classes := audit.DefaultRetentionClasses
	require.Equal(t, 2557, audit.ResolveRetention(nil, 0, false, classes))
	require.Equal(t, 180, audit.ResolveRetention(i(100), 0, false, classes))
	require.Equal(t, 365, audit.ResolveRetention(nil, 200, true, classes))
	require.Equal(t, 365, audit.ResolveRetention(i(90), 365, true, classes), "an event may not shorten its policy")
	require.Equal(t, 730, audit.ResolveRetention(i(400), 365, true, classes), "but may lengthen it")
	require.Equal(t, 90, audit.RoundRetention(90, classes))
	require.Equal(t, 2557, audit.RoundRetention(1826, classes))

	got, err := audit.ParseRetentionClasses("90, 365,2557")
	require.NoError(t, err)
	require.Equal(t, []int{90, 365, 2557}, got)
	for _, bad := range []string{"30,2557", "365,90,2557", "90,365", "x,2557", "90,90,2557"} {
		_, err := audit.ParseRetentionClasses(bad)
		require.Error(t, err, bad)
	}
}

func TestPrepare_Envelope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		data   string
		fields []string
	}{
		{`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"a":1},"attempt":2,"retry_reason":"timeout","source_payload":[1]}`, nil},
		{`{"anything":"goes","version":1}`, nil}, // no service: not an envelope
		{`{"version":"1.0","service":"gateway"}`, []string{"event_data.operation", "event_data.status"}},
		{`{"version":"1.0","service":"","operation":7,"status":"ok","payload":[],"attempt":0,"retry_reason":false}`,
			[]string{"event_data.service", "event_data.operation", "event_data.payload", "event_data.attempt", "event_data.retry_reason"}},
		{`{"version":"1.0","service":"s","operation":"o","status":"ok","attempt":1.5}`, []string{"event_data.attempt"}},
	} {
		in := audittest.Input(t, &audittest.EventOpts{EventData: json.RawMessage(tc.data)})
		_, errs := in.Prepare(defaults(), audit.DefaultLimits)
		var fields []string
		for _, e := range errs {
			fields = append(fields, e.Field)
		}
		require.Equal(t, tc.fields, fields, tc.data)
	}
}
