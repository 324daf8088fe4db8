package main

import (
	"strconv"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/stretchr/testify/require"
)

// TestChunkEventsAreValid checks that generated events are ones the write function would
// have stored: each, sent as a client would, passes validation and comes back the same.
func TestChunkEventsAreValid(t *testing.T) {
	t.Parallel()
	to := time.Now().Add(-time.Hour)
	from := to.Add(-time.Hour)
	events := newGenerator(7, 3).chunk(2000, from, to, 0)
	require.Len(t, events, 2000)
	types := map[string]bool{}
	correlations := map[string]int{}
	for i := range events {
		e := &events[i]
		types[e.EventType] = true
		correlations[e.CorrelationID]++
		require.False(t, e.EventTimestamp.Before(from), "event %d before its window", i)
		require.True(t, e.EventTimestamp.Before(to.Add(15*time.Minute)), "event %d too late", i)
		require.Contains(t, []int{90, 365, 2557}, e.RetentionDays)
		require.InDelta(t, 800, len(e.EventData), 120, "event_data of event %d is %d bytes", i, len(e.EventData))

		s := func(v string) *string { return &v }
		days := int64(e.RetentionDays)
		in := audit.Input{
			EventID: s(e.EventID.String()), EventTimestamp: s(e.EventTimestamp.Format(time.RFC3339Nano)),
			EventType: &e.EventType, EventOutcome: &e.EventOutcome, CorrelationID: &e.CorrelationID,
			ActorType: &e.ActorType, ActorID: &e.ActorID, ActorIP: e.ActorIP, ResourceType: e.ResourceType,
			ResourceID: e.ResourceID, ResourceName: e.ResourceName, TraceID: e.TraceID, SpanID: e.SpanID,
			Namespace: e.Namespace, ClusterID: e.ClusterID, Severity: e.Severity, DurationMS: e.DurationMS,
			ErrorCode: e.ErrorCode, ErrorMessage: e.ErrorMessage, RetentionDays: &days,
			IsSensitive: &e.IsSensitive, EventData: e.EventData,
		}
		if e.ParentEventID != nil {
			in.ParentEventID = s(e.ParentEventID.String())
		}
		got, errs := in.Prepare(audit.Defaults{Now: e.EventTimestamp, Principal: e.SubmittedBy,
			RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
		require.Empty(t, errs, "event %d (%s)", i, e.EventType)
		require.Equal(t, e.EventCategory, got.EventCategory)
		require.Equal(t, e.EventAction, got.EventAction)
		require.Equal(t, e.RetentionDays, got.RetentionDays)
		require.Equal(t, e.EventID[6]>>4, byte(7), "event id is not a UUIDv7")
	}
	for id, n := range correlations {
		require.True(t, n >= 10 && n <= 30, "correlation %s has %d events", id, n)
	}
	require.Greater(t, len(types), 60, "too few event types in 2000 events")
}

// TestChunkIsDeterministic checks that a seed and chunk number make the same events, and
// other chunks other ids.
func TestChunkIsDeterministic(t *testing.T) {
	t.Parallel()
	to := time.Now()
	a := newGenerator(1, 5).chunk(300, to.Add(-time.Hour), to, 0)
	b := newGenerator(1, 5).chunk(300, to.Add(-time.Hour), to, 0)
	c := newGenerator(1, 6).chunk(300, to.Add(-time.Hour), to, 0)
	require.Equal(t, a, b)
	ids := map[string]bool{}
	for i := range a {
		ids[a[i].EventID.String()] = true
	}
	for i := range c {
		require.False(t, ids[c[i].EventID.String()], "chunk 6 repeats an id of chunk 5")
	}
}

func TestEveryServiceHasTypes(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range services {
		require.NotEmpty(t, s.types, s.name)
		n += len(s.types)
	}
	require.Equal(t, 100, n, "event types: "+strconv.Itoa(n))
	require.Equal(t, "datastorage", services[datastorage].name)
}
