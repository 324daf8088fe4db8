package archive_test

import (
	"testing"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

// notArchived are the stored columns an archive row leaves out: it has no column for the event
// hash (the leaves of the integrity log are archived apart, in leaves.bin). hash_version,
// hash_salt and hash_members are archived for a version 2 event, whose hash needs them.
var notArchived = map[string]bool{"event_hash": true}

// The archive's row is a file format (FormatVersion) and so keeps a schema of its own, but a
// column added to the store's row (store.EventColumns, the one description of audit_events)
// must be archived or named in notArchived: an archive silently missing it would lose it.
func TestRow_EveryStoredColumn(t *testing.T) {
	t.Parallel()
	archived := map[string]bool{}
	for _, f := range parquet.SchemaOf(archive.Row{}).Fields() {
		archived[f.Name()] = true
	}
	for _, c := range store.EventColumns() {
		require.True(t, archived[c.Name] != notArchived[c.Name], "column %s: archived %t, listed as not archived %t", c.Name, archived[c.Name], notArchived[c.Name])
		delete(archived, c.Name)
	}
	require.Empty(t, archived, "archive columns that are no column of audit_events")
}
