// Code generated from parquetColumns (columns.go) by TestRowsGenerated -update. DO NOT EDIT.

package archive

import "time"

// Row is one archived event: one Parquet row per event, every stored column of audit_events.
// Timestamps keep PostgreSQL's microseconds, event_data is the JSON text PostgreSQL returned
// (its jsonb normal form), content_hash is kept so a restored event can still be told apart from
// a retry. Low-cardinality columns are dictionary-encoded and timestamps delta-encoded: with zstd
// over the pages, what is left is mostly the bytes that differ from event to event.
//
// The column names and types are the archive's schema (FormatVersion 1): renaming or retyping
// one is a new format version; adding an optional column is not.
type Row struct {
	EventID        [16]byte  `parquet:"event_id,uuid"`
	EventTimestamp time.Time `parquet:"event_timestamp,timestamp(microsecond),delta"`
	RetentionDays  int32     `parquet:"retention_days"`
	ReceivedAt     time.Time `parquet:"received_at,timestamp(microsecond),delta"`
	DurationMS     *int64    `parquet:"duration_ms,optional"`
	IsSensitive    bool      `parquet:"is_sensitive"`
	// No UUID annotation: parquet-go allows it on [16]byte, not on a pointer.
	ParentEventID *[16]byte `parquet:"parent_event_id,optional"`
	ActorIP       *string   `parquet:"actor_ip,optional,dict"`
	Version       string    `parquet:"version,dict"`
	EventType     string    `parquet:"event_type,dict"`
	EventCategory string    `parquet:"event_category,dict"`
	EventAction   string    `parquet:"event_action,dict"`
	EventOutcome  string    `parquet:"event_outcome,dict"`
	CorrelationID string    `parquet:"correlation_id"`
	ActorType     string    `parquet:"actor_type,dict"`
	ActorID       string    `parquet:"actor_id,dict"`
	ResourceType  *string   `parquet:"resource_type,optional,dict"`
	ResourceID    *string   `parquet:"resource_id,optional"`
	ResourceName  *string   `parquet:"resource_name,optional"`
	TraceID       *string   `parquet:"trace_id,optional"`
	SpanID        *string   `parquet:"span_id,optional"`
	Namespace     *string   `parquet:"namespace,optional,dict"`
	ClusterID     *string   `parquet:"cluster_id,optional,dict"`
	Severity      *string   `parquet:"severity,optional,dict"`
	ErrorCode     *string   `parquet:"error_code,optional,dict"`
	ErrorMessage  *string   `parquet:"error_message,optional"`
	SubmittedBy   string    `parquet:"submitted_by,dict"`
	ContentHash   [32]byte  `parquet:"content_hash"`
	EventData     string    `parquet:"event_data,json"`
	// The hash of a version 2 event needs its salts (or, once a member was erased, what it keeps
	// of its members) beside it: optional columns, absent for version 1 events and in archives
	// made before them.
	HashVersion *int32  `parquet:"hash_version,optional"`
	HashSalt    []byte  `parquet:"hash_salt,optional"`
	HashMembers *string `parquet:"hash_members,optional"`
}

// ColdRow is one event of the cold tier: every stored column of audit_events, including the
// integrity hash written with the event, so an event read cold is the event read hot, member
// for member. Timestamps are UTC microseconds; event_data is PostgreSQL's jsonb text. Its
// schema is ColdSchemaVersion.
type ColdRow struct {
	CorrelationID  string    `parquet:"correlation_id"`
	EventTimestamp time.Time `parquet:"event_timestamp,timestamp(microsecond)"`
	EventID        [16]byte  `parquet:"event_id,uuid"`
	EventType      string    `parquet:"event_type,dict"`
	ActorID        string    `parquet:"actor_id,dict"`
	RetentionDays  int32     `parquet:"retention_days"`
	ReceivedAt     time.Time `parquet:"received_at,timestamp(microsecond)"`
	DurationMS     *int64    `parquet:"duration_ms,optional"`
	IsSensitive    bool      `parquet:"is_sensitive"`
	ParentEventID  *string   `parquet:"parent_event_id,optional"`
	ActorIP        *string   `parquet:"actor_ip,optional,dict"`
	Version        string    `parquet:"version,dict"`
	EventCategory  string    `parquet:"event_category,dict"`
	EventAction    string    `parquet:"event_action,dict"`
	EventOutcome   string    `parquet:"event_outcome,dict"`
	ActorType      string    `parquet:"actor_type,dict"`
	ResourceType   *string   `parquet:"resource_type,optional,dict"`
	ResourceID     *string   `parquet:"resource_id,optional"`
	ResourceName   *string   `parquet:"resource_name,optional"`
	TraceID        *string   `parquet:"trace_id,optional"`
	SpanID         *string   `parquet:"span_id,optional"`
	Namespace      *string   `parquet:"namespace,optional,dict"`
	ClusterID      *string   `parquet:"cluster_id,optional,dict"`
	Severity       *string   `parquet:"severity,optional,dict"`
	ErrorCode      *string   `parquet:"error_code,optional,dict"`
	ErrorMessage   *string   `parquet:"error_message,optional"`
	SubmittedBy    string    `parquet:"submitted_by,dict"`
	ContentHash    []byte    `parquet:"content_hash"`
	EventHash      []byte    `parquet:"event_hash,optional"`
	HashVersion    int32     `parquet:"hash_version"`
	// HashSalt and HashMembers are what a version 2 hash is recomputed from: the event's salt key
	// (gone once a member is erased) and the members an erasure kept as digests.
	HashSalt    []byte  `parquet:"hash_salt,optional"`
	HashMembers *string `parquet:"hash_members,optional"`
	EventData   []byte  `parquet:"event_data,json"`
}
