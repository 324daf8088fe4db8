// Package audit is auditstore's event model: the stored Event, the Input a client sends, their
// validation and defaults. The canonical forms and hashes of an event (its content hash, which
// tells a retry from a conflict, and its event hash) are shared/integrity's, which audit feeds
// with the event's fields; of auditstore it imports integrity alone, which imports nothing of
// it, so clients and offline verifiers can use the two without the store.
package audit

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/google/uuid"
)

// OwnCategory is the event_category of auditstore's own events (auditstore.query.executed,
// auditstore.maintenance.run, ...). A query returns them only when it asks for them: a client
// that decodes event_data as one of its own payloads would fail on them.
const OwnCategory = "auditstore"

// Outcomes accepted in event_outcome.
var Outcomes = []string{"success", "failure", "pending", "unknown"}

// Severities accepted in severity.
var Severities = []string{"debug", "info", "low", "medium", "warning", "high", "error", "critical"}

// Event is one stored audit event, as it is read back (README "Write API"): an absent optional
// field is nil and is left out of the JSON form, never null (kubernaut's generated client
// refuses null for actor_ip, resource_type and resource_id).
type Event struct {
	EventID        uuid.UUID       `json:"event_id"`
	Version        string          `json:"version"`
	EventTimestamp time.Time       `json:"event_timestamp"`
	EventType      string          `json:"event_type"`
	EventCategory  string          `json:"event_category"`
	EventAction    string          `json:"event_action"`
	EventOutcome   string          `json:"event_outcome"`
	CorrelationID  string          `json:"correlation_id"`
	ActorType      string          `json:"actor_type"`
	ActorID        string          `json:"actor_id"`
	ActorIP        *string         `json:"actor_ip,omitempty"`
	ResourceType   *string         `json:"resource_type,omitempty"`
	ResourceID     *string         `json:"resource_id,omitempty"`
	ResourceName   *string         `json:"resource_name,omitempty"`
	ParentEventID  *uuid.UUID      `json:"parent_event_id,omitempty"`
	TraceID        *string         `json:"trace_id,omitempty"`
	SpanID         *string         `json:"span_id,omitempty"`
	Namespace      *string         `json:"namespace,omitempty"`
	ClusterID      *string         `json:"cluster_id,omitempty"`
	Severity       *string         `json:"severity,omitempty"`
	DurationMS     *int64          `json:"duration_ms,omitempty"`
	ErrorCode      *string         `json:"error_code,omitempty"`
	ErrorMessage   *string         `json:"error_message,omitempty"`
	RetentionDays  int             `json:"retention_days"`
	IsSensitive    bool            `json:"is_sensitive"`
	EventData      json.RawMessage `json:"event_data"`
	ReceivedAt     time.Time       `json:"received_at"`
	SubmittedBy    string          `json:"submitted_by"`

	// EventHash is the SHA-256 of the canonical form of every stored field above (the
	// integrity encoding of version HashVersion), set when the event is written; nil (and left
	// out of the JSON form) for an event stored before tamper evidence existed.
	EventHash Digest `json:"event_hash,omitempty"`
	// HashVersion is the version of EventHash's encoding; 0 (left out) when EventHash is nil.
	HashVersion int `json:"hash_version,omitempty"`

	// HashSalt is the salt key of a version 2 event's member digests (stored beside the event,
	// never shown); nil for version 1, and once a member was erased (HashMembers then keeps
	// the salts of the members still present).
	HashSalt []byte `json:"-"`
	// HashMembers is what a version 2 event keeps of its members once one was erased: each
	// member's digest, and the salts of those still present (JSON, by JSON Pointer; see
	// integrity.Members). Never shown here: proofs serve it.
	HashMembers json.RawMessage `json:"-"`
	// Erased names the members erased from the event (JSON Pointers such as
	// "/event_data/payload/annotations"), nil when none. Never hashed.
	Erased []string `json:"erased,omitempty"`

	// Withheld names the members a sensitive event withholds from a reader without the right
	// to read it (Withhold); nil for an event read whole. Never stored, never hashed.
	Withheld []string `json:"withheld,omitempty"`

	// ContentHash is the SHA-256 of the canonical form of what the client sent (see
	// Input.ContentHash). It is stored, never shown: it decides duplicate versus conflict.
	ContentHash []byte `json:"-"`
}

// Digest is a hash, hexadecimal in JSON (null when empty).
type Digest []byte

// MarshalJSON encodes the digest as a hexadecimal string, or null.
func (d Digest) MarshalJSON() ([]byte, error) {
	if d == nil {
		return []byte("null"), nil
	}
	out := make([]byte, 0, 2+2*len(d))
	out = append(out, '"')
	out = hex.AppendEncode(out, d)
	return append(out, '"'), nil
}

// UnmarshalJSON decodes a hexadecimal string or null.
func (d *Digest) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("digest %q is not hexadecimal", s)
	}
	*d = v
	return nil
}

// WithheldMembers are the members a sensitive event (is_sensitive) withholds from a reader
// without the right to read sensitive events: the payload and the two free-text fields.
var WithheldMembers = []string{"event_data", "error_message", "resource_name"}

// Withhold removes what e withholds from a reader without the right to read sensitive events,
// and names it in Withheld. event_data becomes the empty object, not absent: every client
// (kubernaut's among them) requires the member and an object in it. The same three members
// are named whether e had values in them or not, so the marker tells nothing of what it hides.
// event_hash stays: it commits to the withheld content, and proves the event unchanged.
func (e *Event) Withhold() {
	e.EventData = json.RawMessage("{}")
	e.ErrorMessage, e.ResourceName = nil, nil
	e.Withheld = WithheldMembers
}

// HashRecord is what e's event hash covers, for integrity to hash.
func (e *Event) HashRecord() integrity.Event {
	r := integrity.Event{EventID: e.EventID, Version: e.Version, EventTimestamp: e.EventTimestamp,
		EventType: e.EventType, EventCategory: e.EventCategory, EventAction: e.EventAction,
		EventOutcome: e.EventOutcome, CorrelationID: e.CorrelationID, ActorType: e.ActorType,
		ActorID: e.ActorID, ActorIP: e.ActorIP, ResourceType: e.ResourceType, ResourceID: e.ResourceID,
		ResourceName: e.ResourceName, TraceID: e.TraceID, SpanID: e.SpanID, Namespace: e.Namespace,
		ClusterID: e.ClusterID, Severity: e.Severity, DurationMS: e.DurationMS, ErrorCode: e.ErrorCode,
		ErrorMessage: e.ErrorMessage, RetentionDays: e.RetentionDays, IsSensitive: e.IsSensitive,
		EventData: e.EventData, ReceivedAt: e.ReceivedAt, SubmittedBy: e.SubmittedBy,
		HashSalt: e.HashSalt, Members: e.HashMembers}
	if e.ParentEventID != nil {
		id := [16]byte(*e.ParentEventID)
		r.ParentEventID = &id
	}
	return r
}

// ComputeHash returns e's event hash in the given version of the encoding, from its fields as
// they are now: what a verifier compares with the hash sealed when e was written.
func (e *Event) ComputeHash(version int) (integrity.Hash, error) {
	r := e.HashRecord()
	return r.Hash(version)
}

// SetHash sets e's event hash in the current version (integrity.HashVersion), as the write
// path does before storing it (Defaults.Hash does it within Prepare). It fails only for
// event_data that has no RFC 8785 form (a number beyond the double range).
func (e *Event) SetHash() error { return e.SetHashVersion(integrity.HashVersion) }

// SetHashVersion is SetHash in the given version of the encoding. Version 2
// (integrity.HashVersionMembers) gives e a new random salt key (HashSalt), stored beside it.
func (e *Event) SetHashVersion(version int) error {
	e.EventHash, e.HashVersion, e.HashSalt, e.HashMembers, e.Erased = nil, 0, nil, nil, nil
	if version == integrity.HashVersionMembers {
		e.HashSalt = integrity.NewSaltKey()
	}
	h, err := e.ComputeHash(version)
	if err != nil {
		e.HashSalt = nil
		return err
	}
	e.EventHash, e.HashVersion = h[:], version
	return nil
}

// ErasedMembers lists the erased members an event's hash_members names (those kept without a
// salt), sorted; nil when it cannot be read (verification then names the event).
func ErasedMembers(members []byte) []string {
	var m map[string]struct {
		Salt *string `json:"salt"`
	}
	if json.Unmarshal(members, &m) != nil {
		return nil
	}
	var out []string
	for p, v := range m {
		if v.Salt == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
