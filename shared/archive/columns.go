package archive

import (
	"bytes"
	"fmt"
	"go/format"
	"slices"
	"strings"
)

// The two Parquet layouts of an event — the expired-month archive's Row (FormatVersion) and the
// cold tier's ColdRow (ColdSchemaVersion) — are described once, here: parquetColumns lists
// every column with its Go field, its type and tag options in each layout, and its place in the
// cold layout (the archive's is the list's order). rows_gen.go, which declares both structs,
// is generated from it (go test ./shared/archive -run TestRowsGenerated -update), and the test
// fails when the two disagree. The layouts differ where a file format fixed them differently
// (delta timestamps, a fixed or variable content_hash, parent_event_id as bytes or text); both
// schemas are versioned file formats, so changing an existing column's type or order here is
// a new format version, while adding an optional column is not.

// parquetColumn is one column of an event in the two layouts.
type parquetColumn struct {
	field, name string
	// row and cold are the Go type and tag options ("type opt,opt") in Row and ColdRow; ""
	// when the layout has no such column.
	row, cold string
	// coldAt is the column's place in ColdRow: the lookup columns lead.
	coldAt int
	// rowDoc and coldDoc are comments written above the field in each struct.
	rowDoc, coldDoc string
}

var parquetColumns = []parquetColumn{
	{field: "EventID", name: "event_id", row: "[16]byte uuid", cold: "[16]byte uuid", coldAt: 2},
	{field: "EventTimestamp", name: "event_timestamp", row: "time.Time timestamp(microsecond),delta", cold: "time.Time timestamp(microsecond)", coldAt: 1},
	{field: "RetentionDays", name: "retention_days", row: "int32", cold: "int32", coldAt: 5},
	{field: "ReceivedAt", name: "received_at", row: "time.Time timestamp(microsecond),delta", cold: "time.Time timestamp(microsecond)", coldAt: 6},
	{field: "DurationMS", name: "duration_ms", row: "*int64 optional", cold: "*int64 optional", coldAt: 7},
	{field: "IsSensitive", name: "is_sensitive", row: "bool", cold: "bool", coldAt: 8},
	{field: "ParentEventID", name: "parent_event_id", row: "*[16]byte optional", cold: "*string optional", coldAt: 9,
		rowDoc: "No UUID annotation: parquet-go allows it on [16]byte, not on a pointer."},
	{field: "ActorIP", name: "actor_ip", row: "*string optional,dict", cold: "*string optional,dict", coldAt: 10},
	{field: "Version", name: "version", row: "string dict", cold: "string dict", coldAt: 11},
	{field: "EventType", name: "event_type", row: "string dict", cold: "string dict", coldAt: 3},
	{field: "EventCategory", name: "event_category", row: "string dict", cold: "string dict", coldAt: 12},
	{field: "EventAction", name: "event_action", row: "string dict", cold: "string dict", coldAt: 13},
	{field: "EventOutcome", name: "event_outcome", row: "string dict", cold: "string dict", coldAt: 14},
	{field: "CorrelationID", name: "correlation_id", row: "string", cold: "string", coldAt: 0},
	{field: "ActorType", name: "actor_type", row: "string dict", cold: "string dict", coldAt: 15},
	{field: "ActorID", name: "actor_id", row: "string dict", cold: "string dict", coldAt: 4},
	{field: "ResourceType", name: "resource_type", row: "*string optional,dict", cold: "*string optional,dict", coldAt: 16},
	{field: "ResourceID", name: "resource_id", row: "*string optional", cold: "*string optional", coldAt: 17},
	{field: "ResourceName", name: "resource_name", row: "*string optional", cold: "*string optional", coldAt: 18},
	{field: "TraceID", name: "trace_id", row: "*string optional", cold: "*string optional", coldAt: 19},
	{field: "SpanID", name: "span_id", row: "*string optional", cold: "*string optional", coldAt: 20},
	{field: "Namespace", name: "namespace", row: "*string optional,dict", cold: "*string optional,dict", coldAt: 21},
	{field: "ClusterID", name: "cluster_id", row: "*string optional,dict", cold: "*string optional,dict", coldAt: 22},
	{field: "Severity", name: "severity", row: "*string optional,dict", cold: "*string optional,dict", coldAt: 23},
	{field: "ErrorCode", name: "error_code", row: "*string optional,dict", cold: "*string optional,dict", coldAt: 24},
	{field: "ErrorMessage", name: "error_message", row: "*string optional", cold: "*string optional", coldAt: 25},
	{field: "SubmittedBy", name: "submitted_by", row: "string dict", cold: "string dict", coldAt: 26},
	{field: "ContentHash", name: "content_hash", row: "[32]byte", cold: "[]byte", coldAt: 27},
	// The archive keeps the integrity log's leaves apart (leaves.bin); a cold event carries the
	// hash written with it.
	{field: "EventHash", name: "event_hash", cold: "[]byte optional", coldAt: 28},
	{field: "EventData", name: "event_data", row: "string json", cold: "[]byte json", coldAt: 32},
	{field: "HashVersion", name: "hash_version", row: "*int32 optional", cold: "int32", coldAt: 29,
		rowDoc: "The hash of a version 2 event needs its salts (or, once a member was erased, what it keeps of its members) beside it: optional columns, absent for version 1 events and in archives made before them."},
	{field: "HashSalt", name: "hash_salt", row: "[]byte optional", cold: "[]byte optional", coldAt: 30,
		coldDoc: "HashSalt and HashMembers are what a version 2 hash is recomputed from: the event's salt key (gone once a member is erased) and the members an erasure kept as digests."},
	{field: "HashMembers", name: "hash_members", row: "*string optional", cold: "*string optional", coldAt: 31},
}

// generateRows returns rows_gen.go: the declarations of Row and ColdRow from parquetColumns.
func generateRows() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("// Code generated from parquetColumns (columns.go) by TestRowsGenerated -update. DO NOT EDIT.\n\npackage archive\n\nimport \"time\"\n\n")
	b.WriteString(rowDoc)
	writeStruct(&b, "Row", parquetColumns, func(c *parquetColumn) (string, string) { return c.row, c.rowDoc })
	cold := slices.Clone(parquetColumns)
	slices.SortFunc(cold, func(a, c parquetColumn) int { return a.coldAt - c.coldAt })
	for i := range cold {
		if cold[i].coldAt != i {
			return nil, fmt.Errorf("parquetColumns: no column or two at cold place %d", i)
		}
	}
	b.WriteString("\n" + coldRowDoc)
	writeStruct(&b, "ColdRow", cold, func(c *parquetColumn) (string, string) { return c.cold, c.coldDoc })
	return format.Source(b.Bytes())
}

func writeStruct(b *bytes.Buffer, name string, cols []parquetColumn, of func(*parquetColumn) (string, string)) {
	fmt.Fprintf(b, "type %s struct {\n", name)
	for i := range cols {
		spec, doc := of(&cols[i])
		if spec == "" {
			continue
		}
		line := "\t//"
		for _, w := range strings.Fields(doc) {
			if len(line)+1+len(w) > 96 {
				b.WriteString(line + "\n")
				line = "\t//"
			}
			line += " " + w
		}
		if doc != "" {
			b.WriteString(line + "\n")
		}
		typ, opts, _ := strings.Cut(spec, " ")
		tag := cols[i].name
		if opts != "" {
			tag += "," + opts
		}
		fmt.Fprintf(b, "\t%s %s `parquet:%q`\n", cols[i].field, typ, tag)
	}
	b.WriteString("}\n")
}

const rowDoc = `// Row is one archived event: one Parquet row per event, every stored column of audit_events.
// Timestamps keep PostgreSQL's microseconds, event_data is the JSON text PostgreSQL returned
// (its jsonb normal form), content_hash is kept so a restored event can still be told apart from
// a retry. Low-cardinality columns are dictionary-encoded and timestamps delta-encoded: with zstd
// over the pages, what is left is mostly the bytes that differ from event to event.
//
// The column names and types are the archive's schema (FormatVersion 1): renaming or retyping
// one is a new format version; adding an optional column is not.
`

const coldRowDoc = `// ColdRow is one event of the cold tier: every stored column of audit_events, including the
// integrity hash written with the event, so an event read cold is the event read hot, member
// for member. Timestamps are UTC microseconds; event_data is PostgreSQL's jsonb text. Its
// schema is ColdSchemaVersion.
`
