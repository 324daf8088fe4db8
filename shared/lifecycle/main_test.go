package lifecycle_test

import (
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/test/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testConfig is a run's configuration in the service's tests.
var testConfig = lifecycle.Config{PremakeMonths: 3, LockTimeout: 2 * time.Second, IdempotencyWindow: 7 * 24 * time.Hour}
