// Package coldtest holds what the tests of the cold tier share: a maintenance runner that moves
// months to a tier, and one run of it under the maintenance lock.
package coldtest

import (
	"context"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/stretchr/testify/require"
)

// Runner returns a maintenance runner over the default retention classes at the clock now,
// which keeps hot (HOT_MONTHS' syntax, e.g. "2557=2") months in PostgreSQL and moves older
// ones through mover.
func Runner(t testing.TB, st *store.Store, mover lifecycle.ColdMover, hot string, now func() time.Time) *lifecycle.Runner {
	t.Helper()
	var months lifecycle.HotMonths
	require.NoError(t, months.Decode(hot))
	return &lifecycle.Runner{Store: st, Classes: audit.DefaultRetentionClasses, Now: now,
		Config: lifecycle.Config{PremakeMonths: 1, LockTimeout: 2 * time.Second, IdempotencyWindow: 168 * time.Hour, HotMonths: months},
		Cold:   mover}
}

// Run runs r once under the maintenance lock of st and returns its report.
func Run(t testing.TB, st *store.Store, r *lifecycle.Runner) lifecycle.Report {
	t.Helper()
	ctx := context.Background()
	m, err := st.BeginMaintenance(ctx)
	require.NoError(t, err)
	defer m.End()
	rep, err := r.Run(ctx, m)
	require.NoError(t, err)
	return rep
}
