package archive

import (
	"flag"
	"os"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "write rows_gen.go from parquetColumns")

// Row and ColdRow are declared from parquetColumns, their one description: rows_gen.go must be
// what it generates.
func TestRowsGenerated(t *testing.T) {
	want, err := generateRows()
	require.NoError(t, err)
	if *update {
		require.NoError(t, os.WriteFile("rows_gen.go", want, 0o644))
	}
	got, err := os.ReadFile("rows_gen.go")
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "rows_gen.go is stale: go test ./shared/archive -run TestRowsGenerated -update")
}

// The files' schemas are file formats: testdata/schemas.golden holds them as they were
// released, so a change to parquetColumns that alters one fails here, not in a reader.
func TestRowSchemasUnchanged(t *testing.T) {
	golden, err := os.ReadFile("testdata/schemas.golden")
	require.NoError(t, err)
	got := parquet.SchemaOf(Row{}).String() + "\n" + parquet.SchemaOf(ColdRow{}).String() + "\n"
	require.Equal(t, string(golden), got)
}
