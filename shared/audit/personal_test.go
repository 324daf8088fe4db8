package audit_test

import (
	"testing"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/stretchr/testify/require"
)

func TestPersonalData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		service string
		want    [][]string
	}{
		{"gateway", [][]string{{"source_payload"}, {"payload", "annotations"}}},
		{"execution", [][]string{{"source_payload"}, {"payload", "action_command"}}},
		{"aianalysis", [][]string{{"source_payload"}}},
		{"billing", [][]string{{"source_payload"}}}, // no schema: the envelope's only
	} {
		require.Equal(t, tc.want, audit.PersonalData(tc.service), tc.service)
	}
}
