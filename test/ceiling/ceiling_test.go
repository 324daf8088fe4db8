package ceiling_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/test/ceiling"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		batch int
		write ceiling.WriteFunc
	}{
		{"copy", 100, ceiling.Copy},
		// 250 rows in batches of 120: statements of 100 and 20 rows, and a short last batch.
		{"insert", 120, ceiling.Insert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewPool(t)
			now := time.Now()
			events := make([]audit.Event, 250)
			for i := range events {
				events[i] = audittest.Event(t, &audittest.EventOpts{Now: now})
			}
			rate, err := ceiling.Run(context.Background(), pool, events, 3, tc.batch, tc.write)
			require.NoError(t, err)
			require.Positive(t, rate)
			var n int
			require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_events").Scan(&n))
			require.Equal(t, len(events), n)

			// A failing write stops the run with its error.
			_, err = ceiling.Run(context.Background(), pool, events[:10], 2, 5, tc.write)
			require.Error(t, err, "the same event ids again violate the primary key")
		})
	}
}
