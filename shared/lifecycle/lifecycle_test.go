package lifecycle_test

import (
	"testing"
	"time"

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
