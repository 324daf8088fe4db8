package archive

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
)

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
	ParentEventID  *[16]byte `parquet:"parent_event_id,optional"` // no UUID annotation: parquet-go allows it on [16]byte, not on a pointer
	ActorIP        *string   `parquet:"actor_ip,optional,dict"`
	Version        string    `parquet:"version,dict"`
	EventType      string    `parquet:"event_type,dict"`
	EventCategory  string    `parquet:"event_category,dict"`
	EventAction    string    `parquet:"event_action,dict"`
	EventOutcome   string    `parquet:"event_outcome,dict"`
	CorrelationID  string    `parquet:"correlation_id"`
	ActorType      string    `parquet:"actor_type,dict"`
	ActorID        string    `parquet:"actor_id,dict"`
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
	ContentHash    [32]byte  `parquet:"content_hash"`
	EventData      string    `parquet:"event_data,json"`
	// The hash of a version 2 event needs its salts (or, once a member was erased, what it
	// keeps of its members) beside it: optional columns, absent for version 1 events and in
	// archives made before them.
	HashVersion *int32  `parquet:"hash_version,optional"`
	HashSalt    []byte  `parquet:"hash_salt,optional"`
	HashMembers *string `parquet:"hash_members,optional"`
}

// RowOf returns the archive row of a stored event.
func RowOf(e *audit.Event) (Row, error) {
	if len(e.ContentHash) != 32 {
		return Row{}, fmt.Errorf("event %s: content_hash has %d bytes, not 32", e.EventID, len(e.ContentHash))
	}
	r := Row{
		EventID:        e.EventID,
		EventTimestamp: e.EventTimestamp.UTC(),
		RetentionDays:  int32(e.RetentionDays),
		ReceivedAt:     e.ReceivedAt.UTC(),
		DurationMS:     e.DurationMS,
		IsSensitive:    e.IsSensitive,
		ActorIP:        e.ActorIP,
		Version:        e.Version,
		EventType:      e.EventType,
		EventCategory:  e.EventCategory,
		EventAction:    e.EventAction,
		EventOutcome:   e.EventOutcome,
		CorrelationID:  e.CorrelationID,
		ActorType:      e.ActorType,
		ActorID:        e.ActorID,
		ResourceType:   e.ResourceType,
		ResourceID:     e.ResourceID,
		ResourceName:   e.ResourceName,
		TraceID:        e.TraceID,
		SpanID:         e.SpanID,
		Namespace:      e.Namespace,
		ClusterID:      e.ClusterID,
		Severity:       e.Severity,
		ErrorCode:      e.ErrorCode,
		ErrorMessage:   e.ErrorMessage,
		SubmittedBy:    e.SubmittedBy,
		EventData:      string(e.EventData),
	}
	if e.ParentEventID != nil {
		p := [16]byte(*e.ParentEventID)
		r.ParentEventID = &p
	}
	copy(r.ContentHash[:], e.ContentHash)
	if e.HashVersion >= 2 {
		v := int32(e.HashVersion)
		r.HashVersion, r.HashSalt = &v, e.HashSalt
		if e.HashMembers != nil {
			m := string(e.HashMembers)
			r.HashMembers = &m
		}
	}
	return r, nil
}

// Event returns the stored event the row holds.
func (r *Row) Event() audit.Event {
	e := audit.Event{
		EventID:        uuid.UUID(r.EventID),
		Version:        r.Version,
		EventTimestamp: r.EventTimestamp.UTC(),
		EventType:      r.EventType,
		EventCategory:  r.EventCategory,
		EventAction:    r.EventAction,
		EventOutcome:   r.EventOutcome,
		CorrelationID:  r.CorrelationID,
		ActorType:      r.ActorType,
		ActorID:        r.ActorID,
		ActorIP:        r.ActorIP,
		ResourceType:   r.ResourceType,
		ResourceID:     r.ResourceID,
		ResourceName:   r.ResourceName,
		TraceID:        r.TraceID,
		SpanID:         r.SpanID,
		Namespace:      r.Namespace,
		ClusterID:      r.ClusterID,
		Severity:       r.Severity,
		DurationMS:     r.DurationMS,
		ErrorCode:      r.ErrorCode,
		ErrorMessage:   r.ErrorMessage,
		RetentionDays:  int(r.RetentionDays),
		IsSensitive:    r.IsSensitive,
		EventData:      json.RawMessage(r.EventData),
		ReceivedAt:     r.ReceivedAt.UTC(),
		SubmittedBy:    r.SubmittedBy,
		ContentHash:    append([]byte(nil), r.ContentHash[:]...),
	}
	if r.ParentEventID != nil {
		p := uuid.UUID(*r.ParentEventID)
		e.ParentEventID = &p
	}
	if r.HashVersion != nil {
		e.HashVersion, e.HashSalt = int(*r.HashVersion), r.HashSalt
		if r.HashMembers != nil {
			e.HashMembers = json.RawMessage(*r.HashMembers)
			e.Erased = audit.ErasedMembers(e.HashMembers)
		}
	}
	return e
}

// AppendCanonical appends the row's canonical encoding, what a file's rows_sha256 is computed
// over: every column in the order of Row, a null as the byte 0 and a present optional value
// after the byte 1, integers and timestamps (microseconds since 1970, UTC) as 8 bytes big
// endian, booleans as one byte, strings and bytes after their length as 4 bytes big endian. It
// depends on the values only, not on how Parquet encoded them, so a digest written before the
// upload and one computed from the rows read back agree only if every value came back.
func (r *Row) AppendCanonical(b []byte) []byte {
	u64 := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	str := func(s string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	opt := func(s *string) {
		if s == nil {
			b = append(b, 0)
			return
		}
		b = append(b, 1)
		str(*s)
	}
	b = append(b, r.EventID[:]...)
	u64(uint64(r.EventTimestamp.UnixMicro()))
	u64(uint64(int64(r.RetentionDays)))
	u64(uint64(r.ReceivedAt.UnixMicro()))
	if r.DurationMS == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		u64(uint64(*r.DurationMS))
	}
	if r.IsSensitive {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	if r.ParentEventID == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = append(b, r.ParentEventID[:]...)
	}
	opt(r.ActorIP)
	str(r.Version)
	str(r.EventType)
	str(r.EventCategory)
	str(r.EventAction)
	str(r.EventOutcome)
	str(r.CorrelationID)
	str(r.ActorType)
	str(r.ActorID)
	for _, s := range []*string{r.ResourceType, r.ResourceID, r.ResourceName, r.TraceID, r.SpanID,
		r.Namespace, r.ClusterID, r.Severity, r.ErrorCode, r.ErrorMessage} {
		opt(s)
	}
	str(r.SubmittedBy)
	b = append(b, r.ContentHash[:]...)
	str(r.EventData)
	if r.HashVersion != nil {
		// Only then, so the digest of a row without them is what it was before they existed.
		u64(uint64(int64(*r.HashVersion)))
		str(string(r.HashSalt))
		opt(r.HashMembers)
	}
	return b
}
