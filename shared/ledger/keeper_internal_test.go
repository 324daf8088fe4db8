package ledger

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// A verification's fork is exported apart from its problem count, so an alert can tell lost
// events after a failover from tampering; a verification that could not run changes neither.
func TestObserveVerify_Fork(t *testing.T) {
	t.Parallel()
	m := newKeeperMetrics(prometheus.NewRegistry())
	fork := Report{}
	fork.Add(Problem{Kind: ProblemFork})
	modified := Report{}
	modified.Add(Problem{Kind: ProblemModified})
	modified.Add(Problem{Kind: ProblemModified})
	for _, tc := range []struct {
		name            string
		rep             Report
		err             error
		problems, forks float64
	}{
		{"a fork", fork, nil, 1, 1},
		{"could not run", Report{}, errors.New("database unavailable"), 1, 1},
		{"tampering", modified, nil, 2, 0},
		{"clean", Report{OK: true}, nil, 0, 0},
	} {
		m.observeVerify(tc.rep, tc.err)
		require.Equal(t, tc.problems, testutil.ToFloat64(m.verifyProblems), tc.name)
		require.Equal(t, tc.forks, testutil.ToFloat64(m.verifyFork), tc.name)
	}
}
