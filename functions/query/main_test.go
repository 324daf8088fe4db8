package query_test

import (
	"testing"

	"github.com/auditstore/auditstore/test/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
