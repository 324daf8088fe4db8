package ledger_test

import (
	"testing"

	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/kelseyhightower/envconfig"
	"github.com/stretchr/testify/require"
)

// TestConfig_SealBatchDefault: SEAL_BATCH's default and a Sealer's own are one number.
func TestConfig_SealBatchDefault(t *testing.T) {
	t.Parallel()
	var c ledger.Config
	require.NoError(t, envconfig.Process("", &c))
	require.Equal(t, ledger.DefaultSealBatch, c.SealBatch)
}
