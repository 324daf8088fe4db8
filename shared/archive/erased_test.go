package archive_test

import (
	"bytes"
	"testing"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

// An erased event keeps its members' digests in hash_members: both file formats must carry
// the value through Parquet (an optional column of the json logical type was written as
// null by parquet-go, so a file holding an erased event failed its own read-back).
func TestRow_KeptMembersRoundTrip(t *testing.T) {
	t.Parallel()
	kept := `{"/actor_id":{"digest":"q83vEjRWeJA"}}`
	cold, err := roundTrip([]archive.ColdRow{{HashMembers: &kept, EventData: []byte(`{}`)}, {EventData: []byte(`{}`)}})
	require.NoError(t, err)
	require.Equal(t, kept, *cold[0].HashMembers)
	require.Nil(t, cold[1].HashMembers)
	rows, err := roundTrip([]archive.Row{{HashMembers: &kept, EventData: `{}`}, {EventData: `{}`}})
	require.NoError(t, err)
	require.Equal(t, kept, *rows[0].HashMembers)
	require.Nil(t, rows[1].HashMembers)
}

func roundTrip[T any](rows []T) ([]T, error) {
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows); err != nil {
		return nil, err
	}
	return parquet.Read[T](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
}
