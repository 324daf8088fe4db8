package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// HashVersion is the version of the event encoding new events are hashed with; it is stored
// with every hash so that a later encoding does not invalidate history (Event.Hash takes the
// version to recompute).
const HashVersion = 1

// ExcludedFields are the members of an event's JSON form that its hash does not cover: the
// integrity fields themselves.
var ExcludedFields = []string{"event_hash", "hash_version", "integrity"}

// OptionalFields are the members of an event's JSON form that are left out when the event has
// no value for them. Version 1 of the event encoding hashes each absent one as null (the API
// returned them so when the encoding was defined), so an event hashes the same whether its JSON
// form leaves them out or spells them null.
var OptionalFields = []string{"actor_ip", "cluster_id", "duration_ms", "error_code", "error_message",
	"namespace", "parent_event_id", "resource_id", "resource_name", "resource_type", "severity",
	"span_id", "trace_id"}

// EventHash is the hash of version 1 of the event encoding: SHA-256 over the RFC 8785
// canonical form of the event's JSON object as the API returns it (every stored field,
// timestamps in RFC 3339 UTC with at most microseconds, absent OptionalFields as null),
// without ExcludedFields. Anyone holding an exported or archived event can recompute it.
func EventHash(eventJSON []byte) (Hash, error) {
	s := scanner{src: view(eventJSON), jcs: true, decode: true, maxDepth: maxDocumentDepth}
	v, err := s.document()
	if err != nil {
		return Hash{}, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return Hash{}, errors.New("an event is a JSON object")
	}
	for _, k := range ExcludedFields {
		delete(obj, k)
	}
	for _, k := range OptionalFields {
		if _, ok := obj[k]; !ok {
			obj[k] = nil
		}
	}
	c, err := appendValue(nil, obj)
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(c), nil
}

// Event is what an event hash covers: every stored field of an event (audit.Event's, which
// fills it in). A nil pointer is an absent optional field.
type Event struct {
	EventID        [16]byte
	Version        string
	EventTimestamp time.Time
	EventType      string
	EventCategory  string
	EventAction    string
	EventOutcome   string
	CorrelationID  string
	ActorType      string
	ActorID        string
	ActorIP        *string
	ResourceType   *string
	ResourceID     *string
	ResourceName   *string
	ParentEventID  *[16]byte
	TraceID        *string
	SpanID         *string
	Namespace      *string
	ClusterID      *string
	Severity       *string
	DurationMS     *int64
	ErrorCode      *string
	ErrorMessage   *string
	RetentionDays  int
	IsSensitive    bool
	// EventData is the event's JSON object as stored (any spelling; empty: null).
	EventData []byte
	// DataHashed says EventData is already its RFC 8785 form (Data.Hashed, from the scan that
	// checked it), so it is hashed as it is instead of being read again.
	DataHashed bool
	// DataLayout is Data.Layout of EventData when DataHashed (the zero Layout: unknown).
	DataLayout  Layout
	ReceivedAt  time.Time
	SubmittedBy string
	// HashSalt is a version 2 event's salt key; nil for version 1, and once a member was
	// erased (Members then keeps the salts of the members still present).
	HashSalt []byte
	// Members is what a version 2 event keeps of its members once one was erased: the JSON of
	// a Members (hash_members as stored); nil until then.
	Members []byte
}

// Hash returns e's event hash in the given version of the encoding. A version this build does
// not know is an error: a verifier must not call an event it cannot check tampered.
func (e *Event) Hash(version int) (Hash, error) {
	switch version {
	case HashVersion:
		return e.hashV1()
	case HashVersionMembers:
		return e.hashV2()
	}
	return Hash{}, fmt.Errorf("hash version %d is not one this build knows (1..%d)", version, HashVersionMembers)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// hashV1 is EventHash of e's JSON form, which it writes in RFC 8785 form directly (the members
// in their sorted order) instead of marshalling and parsing it: the write path pays this for
// every event. TestEventHashMatchesTheJSONForm holds the two together.
func (e *Event) hashV1() (Hash, error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	b := (*buf)[:0]
	str := func(b []byte, name, v string) []byte {
		b = append(append(append(b, '"'), name...), '"', ':')
		return AppendString(b, v)
	}
	opt := func(b []byte, name string, v *string) []byte {
		if v == nil {
			return append(append(append(b, '"'), name...), `":null`...)
		}
		return str(b, name, *v)
	}
	num := func(b []byte, name string, v int64) []byte {
		b = append(append(append(b, '"'), name...), '"', ':')
		if v >= -1<<53 && v <= 1<<53 {
			return strconv.AppendInt(b, v, 10) // exact as a double: ECMAScript spells it so
		}
		return append(b, FormatNumber(float64(v))...)
	}
	id := func(b []byte, name string, v [16]byte) []byte {
		b = append(append(append(b, '"'), name...), `":"`...)
		return append(AppendUUID(b, v), '"')
	}
	ts := func(b []byte, name string, t time.Time) []byte {
		b = append(append(append(b, '"'), name...), '"', ':', '"')
		return append(t.UTC().AppendFormat(b, time.RFC3339Nano), '"')
	}
	b = append(b, '{')
	b = str(b, "actor_id", e.ActorID)
	b = opt(append(b, ','), "actor_ip", e.ActorIP)
	b = str(append(b, ','), "actor_type", e.ActorType)
	b = opt(append(b, ','), "cluster_id", e.ClusterID)
	b = str(append(b, ','), "correlation_id", e.CorrelationID)
	if e.DurationMS == nil {
		b = append(b, `,"duration_ms":null`...)
	} else {
		b = num(append(b, ','), "duration_ms", *e.DurationMS)
	}
	b = opt(append(b, ','), "error_code", e.ErrorCode)
	b = opt(append(b, ','), "error_message", e.ErrorMessage)
	b = str(append(b, ','), "event_action", e.EventAction)
	b = str(append(b, ','), "event_category", e.EventCategory)
	b = append(b, `,"event_data":`...)
	switch {
	case len(e.EventData) == 0:
		b = append(b, "null"...)
	case e.DataHashed:
		b = append(b, e.EventData...)
	default:
		var err error
		if b, err = AppendCanonical(b, e.EventData); err != nil {
			return Hash{}, fmt.Errorf("event_data: %w", err)
		}
	}
	b = id(append(b, ','), "event_id", e.EventID)
	b = str(append(b, ','), "event_outcome", e.EventOutcome)
	b = ts(append(b, ','), "event_timestamp", e.EventTimestamp)
	b = str(append(b, ','), "event_type", e.EventType)
	b = append(append(b, `,"is_sensitive":`...), strconv.FormatBool(e.IsSensitive)...)
	b = opt(append(b, ','), "namespace", e.Namespace)
	if e.ParentEventID == nil {
		b = append(b, `,"parent_event_id":null`...)
	} else {
		b = id(append(b, ','), "parent_event_id", *e.ParentEventID)
	}
	b = ts(append(b, ','), "received_at", e.ReceivedAt)
	b = opt(append(b, ','), "resource_id", e.ResourceID)
	b = opt(append(b, ','), "resource_name", e.ResourceName)
	b = opt(append(b, ','), "resource_type", e.ResourceType)
	b = num(append(b, ','), "retention_days", int64(e.RetentionDays))
	b = opt(append(b, ','), "severity", e.Severity)
	b = opt(append(b, ','), "span_id", e.SpanID)
	b = str(append(b, ','), "submitted_by", e.SubmittedBy)
	b = opt(append(b, ','), "trace_id", e.TraceID)
	b = str(append(b, ','), "version", e.Version)
	b = append(b, '}')
	*buf = b
	return sha256.Sum256(b), nil
}

// AppendUUID appends id in its canonical 36-character form (a uuid.UUID converts), allocating
// nothing into a buffer of room enough: the one UUID writer of the hashes and the served JSON.
func AppendUUID(b []byte, id [16]byte) []byte {
	b = hex.AppendEncode(b, id[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, id[10:16])
}

// Content is the record an event's content hash covers: what its client sent, field by
// field, each as name=<length>:<value>; after a version tag. Fields the client left out are
// not in it, so a retry that let the server default a field again hashes the same; the caller
// (audit.Input) decides which fields and in which spelling. The content hash tells a retry
// from a conflict, and stored ones are compared with new ones: its encoding never changes.
type Content struct {
	b []byte
}

// contentPool recycles records: a new one for each event was a quarter of the bytes a single
// event's decoding allocated.
var contentPool = sync.Pool{New: func() any { return &Content{b: make([]byte, 0, 2048)} }}

// NewContent starts a content record; Sum ends it.
func NewContent() *Content {
	c := contentPool.Get().(*Content)
	c.b = append(c.b[:0], "auditstore.content.v1;"...)
	return c
}

// Add appends a field given as a string.
func (c *Content) Add(name, value string) {
	c.head(name, len(value))
	c.b = append(append(c.b, value...), ';')
}

// AddBytes appends a field given as bytes (event_data, which is not copied into a string).
func (c *Content) AddBytes(name string, value []byte) {
	c.head(name, len(value))
	c.b = append(append(c.b, value...), ';')
}

func (c *Content) head(name string, n int) {
	c.b = append(append(c.b, name...), '=')
	c.b = append(strconv.AppendInt(c.b, int64(n), 10), ':')
}

// Sum returns the content hash and releases the record, which must not be used after.
func (c *Content) Sum() Hash {
	sum := sha256.Sum256(c.b)
	if cap(c.b) <= 1<<20 { // a record one huge event_data grew is let go
		contentPool.Put(c)
	}
	return sum
}
