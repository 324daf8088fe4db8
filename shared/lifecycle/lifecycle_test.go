package lifecycle_test

import (
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/stretchr/testify/require"
)

func TestPartition_Expiry(t *testing.T) {
	t.Parallel()
	p := lifecycle.Partition{Class: 90, Month: lifecycle.Month{Year: 2026, Month: time.January}}
	// The last event of January (Jan 31, 23:59) expires on May 1 (90 days later); the leaf
	// goes then, a month at most after its first event (Jan 1 + 90 days = Apr 1) expired.
	require.Equal(t, time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC), p.ExpiresAt())
	require.False(t, p.Expired(time.Date(2026, 5, 1, 23, 59, 0, 0, time.UTC)))
	require.True(t, p.Expired(time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)))
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 90)
	require.LessOrEqual(t, p.ExpiresAt().Sub(first), 32*24*time.Hour)
	last := time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC).AddDate(0, 0, 90)
	require.False(t, p.ExpiresAt().Before(last), "never before the last event's expiry")
}

func TestPlanPartitions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	m := func(y int, mo time.Month) lifecycle.Month { return lifecycle.Month{Year: y, Month: mo} }
	existing := []lifecycle.Partition{
		{90, m(2026, 7)},  // expired: Aug 1 + 90 days = Oct 30
		{90, m(2026, 8)},  // alive until Nov 30
		{90, m(2026, 11)}, // current
		{90, m(2027, 1)},  // ahead, with a gap in December
		{365, m(2026, 11)},
	}
	plan := lifecycle.PlanPartitions(now, existing, lifecycle.Policy{Classes: []int{90, 365}, PremakeMonths: 3})
	require.Equal(t, []lifecycle.Partition{{90, m(2026, 7)}}, plan.Expired)
	var want []lifecycle.Partition
	for _, mo := range []lifecycle.Month{m(2026, 9), m(2026, 10), m(2026, 12), m(2027, 2)} {
		want = append(want, lifecycle.Partition{Class: 90, Month: mo})
	}
	for _, mo := range []lifecycle.Month{m(2026, 12), m(2027, 1), m(2027, 2)} {
		want = append(want, lifecycle.Partition{Class: 365, Month: mo})
	}
	got := map[lifecycle.Partition]bool{}
	for _, p := range plan.Create {
		got[p] = true
	}
	require.Len(t, plan.Create, len(want))
	for _, p := range want {
		require.True(t, got[p], "%s is created", p)
	}
	require.Equal(t, 0, lifecycle.MonthsAhead(now, existing, []int{90, 365}))
	require.Equal(t, 3, lifecycle.MonthsAhead(now, append(existing, plan.Create...), []int{90, 365}))
}

// TestPartition_AcceptedEventIsNotDropped: the write path takes an event of any age its
// retention still covers, making its month on demand; maintenance must not then drop that
// month as expired, for any class, at the edge of what is accepted.
func TestPartition_AcceptedEventIsNotDropped(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	d := audit.Defaults{Now: now, Principal: "p", RetentionClasses: audit.DefaultRetentionClasses}
	for _, class := range audit.DefaultRetentionClasses {
		for _, age := range []time.Duration{0, 24 * time.Hour, time.Duration(class)*24*time.Hour - time.Second, time.Duration(class) * 24 * time.Hour} {
			in := audittest.Input(t, nil)
			ts, days := now.Add(-age).Format(time.RFC3339), int64(class)
			in.EventTimestamp, in.RetentionDays = &ts, &days
			e, errs := in.Prepare(d, audit.DefaultLimits)
			if age == time.Duration(class)*24*time.Hour {
				require.NotEmpty(t, errs, "class %d: an event whose retention has passed is refused", class)
				continue
			}
			require.Empty(t, errs, "class %d, age %s", class, age)
			p := lifecycle.Partition{Class: e.RetentionDays, Month: lifecycle.MonthOf(e.EventTimestamp)}
			require.False(t, p.Expired(now), "class %d, age %s: %s would be dropped", class, age, p)
			plan := lifecycle.PlanPartitions(now, []lifecycle.Partition{p}, lifecycle.Policy{Classes: audit.DefaultRetentionClasses, PremakeMonths: 3})
			require.Empty(t, plan.Expired)
		}
	}
}
