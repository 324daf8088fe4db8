package maintain

import (
	"errors"
	"testing"

	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// A verification's fork is exported apart from its problem count, so an alert can tell lost
// events after a failover from tampering; a verification that could not run changes neither.
func TestObserveVerify_Fork(t *testing.T) {
	t.Parallel()
	m := newMetrics(prometheus.NewRegistry())
	fork := ledger.Report{}
	fork.Add(ledger.Problem{Kind: ledger.ProblemFork})
	modified := ledger.Report{}
	modified.Add(ledger.Problem{Kind: ledger.ProblemModified})
	modified.Add(ledger.Problem{Kind: ledger.ProblemModified})
	for _, tc := range []struct {
		name            string
		rep             ledger.Report
		err             error
		problems, forks float64
	}{
		{"a fork", fork, nil, 1, 1},
		{"could not run", ledger.Report{}, errors.New("database unavailable"), 1, 1},
		{"tampering", modified, nil, 2, 0},
		{"clean", ledger.Report{OK: true}, nil, 0, 0},
	} {
		m.observeVerify(tc.rep, tc.err)
		require.Equal(t, tc.problems, testutil.ToFloat64(m.verifyProblems), tc.name)
		require.Equal(t, tc.forks, testutil.ToFloat64(m.verifyFork), tc.name)
	}
}
