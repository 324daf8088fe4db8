// Package audit is auditstore's event model: the stored Event, the Input a client sends, their
// validation and defaults, and the canonical form that tells a retry from a conflict. It imports
// no other package of auditstore, so clients and offline verifiers can use it alone.
package audit

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

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
