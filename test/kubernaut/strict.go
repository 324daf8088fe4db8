// Package kubernaut is a client of auditstore's audit API shaped as kubernaut's generated one
// (ogen, from its Data Storage OpenAPI document) and its buffered audit store behave, as
// strictly, so tests show that a kubernaut deployment pointed at auditstore keeps every event
// and every read (README "kubernaut compatibility"):
//   - every answer is decoded by Decode: a required member missing or null, an optional member
//     the client declares non-nullable sent as null (an event's actor_type, actor_id, actor_ip,
//     resource_type, resource_id), a member of the wrong type, or a value outside one of their
//     enums (event_category, event_outcome) fails the whole answer, as it fails theirs;
//   - a problem's field_errors is an object of strings;
//   - every 4xx but 401 and 403 is permanent: the buffered store drops the batch (429 included),
//     and retries only 5xx, 401, 403 and network errors.
package kubernaut

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Categories are the event_category values the client decodes: kubernaut's enum and the
// services whose payload schemas auditstore registers. auditstore's own category is not one.
var Categories = []string{"gateway", "notification", "analysis", "aianalysis", "aiagent",
	"signalprocessing", "workflow", "workflowexecution", "orchestration", "remediationorchestrator",
	"remediation", "approval", "effectiveness", "actiontype", "apifrontend", "webhook",
	"execution", "contextapi", "datastorage"}

// Outcomes are kubernaut's event_outcome enum.
var Outcomes = []string{"success", "failure", "pending"}

// enums are the enums a kn tag names with enum=<name>.
var enums = map[string][]string{"category": Categories, "outcome": Outcomes}

// Decode decodes body into v (a pointer to a struct) as strictly as kubernaut's generated
// client. The struct's json tags name the members; a kn tag says what the client demands of
// one, as a comma-separated list:
//   - required: present and not null;
//   - nonnull: optional, but never null;
//   - enum=<category|outcome>: a string of that enum (when present);
//   - object: a JSON object (when present).
//
// Nested structs (embedded ones too), pointers to them and slices of them are checked the same
// way. Members the client does not know are skipped, as its decoder skips them.
func Decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return check(json.RawMessage(body), reflect.TypeOf(v).Elem(), "")
}

func check(raw json.RawMessage, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[json.RawMessage]() {
		return nil // any JSON value
	}
	switch t.Kind() {
	case reflect.Slice:
		if isNull(raw) {
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("decode field %q: %w", path, err)
		}
		for i, item := range items {
			if err := check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		if t.PkgPath() == "time" {
			return nil
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(raw, &members); err != nil {
			return fmt.Errorf("decode field %q: %w", path, err)
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous && name == "" {
				if err := check(raw, f.Type, path); err != nil {
					return err
				}
				continue
			}
			if name == "" || name == "-" {
				continue
			}
			if err := checkMember(members, name, f, join(path, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkMember(members map[string]json.RawMessage, name string, f reflect.StructField, path string) error {
	rules := strings.Split(f.Tag.Get("kn"), ",")
	m, ok := members[name]
	switch {
	case !ok && slices.Contains(rules, "required"):
		return fmt.Errorf("decode field %q: required member missing", path)
	case !ok:
		return nil
	case isNull(m) && (slices.Contains(rules, "required") || slices.Contains(rules, "nonnull")):
		return fmt.Errorf("decode field %q: unexpected byte 110 'n' (null where the client refuses null)", path)
	case isNull(m):
		return nil
	case slices.Contains(rules, "object") && !bytes.HasPrefix(bytes.TrimSpace(m), []byte("{")):
		return fmt.Errorf("decode field %q: not an object", path)
	}
	for _, r := range rules {
		enum, ok := strings.CutPrefix(r, "enum=")
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(m, &s); err != nil || !slices.Contains(enums[enum], s) {
			return fmt.Errorf("decode field %q: invalid value: %s", path, m)
		}
	}
	return check(m, f.Type, path)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// Event is an event as kubernaut's services send it (AuditEventRequest). retention_days is
// what their services add to it.
type Event struct {
	Version        string          `json:"version" kn:"required"`
	EventType      string          `json:"event_type" kn:"required"`
	EventTimestamp time.Time       `json:"event_timestamp" kn:"required"`
	EventCategory  string          `json:"event_category" kn:"required,enum=category"`
	EventAction    string          `json:"event_action" kn:"required"`
	EventOutcome   string          `json:"event_outcome" kn:"required,enum=outcome"`
	ActorType      string          `json:"actor_type,omitempty" kn:"nonnull"`
	ActorID        string          `json:"actor_id,omitempty" kn:"nonnull"`
	ActorIP        string          `json:"actor_ip,omitempty" kn:"nonnull"`
	ResourceType   string          `json:"resource_type,omitempty" kn:"nonnull"`
	ResourceID     string          `json:"resource_id,omitempty" kn:"nonnull"`
	CorrelationID  string          `json:"correlation_id" kn:"required"`
	ParentEventID  *string         `json:"parent_event_id,omitempty"`
	Namespace      *string         `json:"namespace,omitempty"`
	Severity       *string         `json:"severity,omitempty"`
	DurationMS     *int64          `json:"duration_ms,omitempty"`
	RetentionDays  *int64          `json:"retention_days,omitempty"`
	EventData      json.RawMessage `json:"event_data" kn:"required,object"`
}

// AuditEvent is an event as kubernaut's client reads it back (its allOf: the request's members,
// event_id and the optional integrity members). Members it does not know are skipped, as
// ogen's decoder skips them; Raw keeps them all for a test to look at.
type AuditEvent struct {
	Event
	EventID   uuid.UUID                  `json:"event_id" kn:"required"`
	EventDate *string                    `json:"event_date"`
	EventHash *string                    `json:"event_hash"`
	LegalHold *bool                      `json:"legal_hold"`
	Raw       map[string]json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the event's members and keeps them all in Raw.
func (e *AuditEvent) UnmarshalJSON(b []byte) error {
	type members AuditEvent // without this method
	if err := json.Unmarshal(b, (*members)(e)); err != nil {
		return err
	}
	return json.Unmarshal(b, &e.Raw)
}

// DecodeEvent decodes one event as strictly as kubernaut's client.
func DecodeEvent(raw []byte) (AuditEvent, error) {
	var e AuditEvent
	err := Decode(raw, &e)
	return e, err
}

// EventResponse is kubernaut's AuditEventResponse, the answer to one event.
type EventResponse struct {
	EventID        uuid.UUID `json:"event_id" kn:"required"`
	EventTimestamp time.Time `json:"event_timestamp" kn:"required"`
	Message        string    `json:"message" kn:"required"`
}

// BatchResponse is kubernaut's BatchAuditEventResponse.
type BatchResponse struct {
	EventIDs []uuid.UUID `json:"event_ids" kn:"required"`
	Message  string      `json:"message" kn:"required"`
}

// QueryResponse is kubernaut's AuditEventsQueryResponse.
type QueryResponse struct {
	Data       []AuditEvent `json:"data" kn:"required"`
	Pagination struct {
		Limit   int  `json:"limit"`
		Offset  int  `json:"offset"`
		Total   *int `json:"total"`
		HasMore bool `json:"has_more"`
	} `json:"pagination" kn:"required"`
}

// Problem is kubernaut's RFC 7807 problem: field_errors maps each field to its message.
type Problem struct {
	Type        string            `json:"type"`
	Title       string            `json:"title"`
	Status      int               `json:"status"`
	Detail      string            `json:"detail"`
	FieldErrors map[string]string `json:"field_errors"`
}

// ChainVerification is kubernaut's answer to verify-chain.
type ChainVerification struct {
	CorrelationID    string          `json:"correlation_id" kn:"required"`
	IsValid          bool            `json:"is_valid" kn:"required"`
	TotalEvents      int             `json:"total_events" kn:"required"`
	VerifiedEvents   int             `json:"verified_events" kn:"required"`
	TamperedEvents   []TamperedEvent `json:"tampered_events" kn:"nonnull"`
	VerificationTime time.Time       `json:"verification_time" kn:"required"`
	Message          string          `json:"message" kn:"required"`
}

// TamperedEvent is one event verify-chain found changed.
type TamperedEvent struct {
	EventID        string    `json:"event_id" kn:"required"`
	EventTimestamp time.Time `json:"event_timestamp" kn:"required"`
	ExpectedHash   string    `json:"expected_hash" kn:"required"`
	ActualHash     string    `json:"actual_hash" kn:"required"`
	PreviousHash   string    `json:"previous_hash" kn:"required"`
	Message        string    `json:"message" kn:"required"`
}

// LegalHold is kubernaut's answer to placing a legal hold, and one hold of the list.
type LegalHold struct {
	CorrelationID  string    `json:"correlation_id" kn:"required"`
	EventsAffected int       `json:"events_affected" kn:"required"`
	PlacedBy       string    `json:"placed_by" kn:"required"`
	PlacedAt       time.Time `json:"placed_at" kn:"required"`
	Reason         string    `json:"reason" kn:"required"`
}

// LegalHoldList is kubernaut's list of active legal holds.
type LegalHoldList struct {
	Holds []LegalHold `json:"holds" kn:"required"`
	Total int         `json:"total" kn:"required"`
}

// LegalHoldRelease is kubernaut's answer to releasing a legal hold.
type LegalHoldRelease struct {
	CorrelationID  string    `json:"correlation_id" kn:"required"`
	EventsReleased int       `json:"events_released" kn:"required"`
	ReleasedBy     string    `json:"released_by" kn:"required"`
	ReleasedAt     time.Time `json:"released_at" kn:"required"`
}

// Export is kubernaut's JSON export.
type Export struct {
	ExportMetadata struct {
		ExportTimestamp        time.Time      `json:"export_timestamp" kn:"required"`
		ExportFormat           string         `json:"export_format" kn:"required"`
		QueryFilters           map[string]any `json:"query_filters" kn:"nonnull"`
		TotalEvents            int            `json:"total_events" kn:"required"`
		Signature              string         `json:"signature" kn:"required"`
		SignatureAlgorithm     string         `json:"signature_algorithm" kn:"nonnull"`
		CertificateFingerprint string         `json:"certificate_fingerprint" kn:"nonnull"`
		ExportedBy             string         `json:"exported_by" kn:"nonnull"`
	} `json:"export_metadata" kn:"required"`
	Events                []ExportEvent `json:"events" kn:"required"`
	HashChainVerification struct {
		TotalEventsVerified      int       `json:"total_events_verified" kn:"required"`
		ValidChainEvents         int       `json:"valid_chain_events" kn:"required"`
		BrokenChainEvents        int       `json:"broken_chain_events" kn:"required"`
		ChainIntegrityPercentage float64   `json:"chain_integrity_percentage" kn:"nonnull"`
		VerificationTimestamp    time.Time `json:"verification_timestamp" kn:"required"`
		TamperedEventIDs         []string  `json:"tampered_event_ids" kn:"nonnull"`
	} `json:"hash_chain_verification" kn:"required"`
	DetachedSignature *string `json:"detached_signature" kn:"nonnull"`
}

// ExportEvent is one event of an export.
type ExportEvent struct {
	EventID           string          `json:"event_id" kn:"required"`
	Version           string          `json:"version" kn:"required"`
	EventType         string          `json:"event_type" kn:"required"`
	EventTimestamp    time.Time       `json:"event_timestamp" kn:"required"`
	EventCategory     string          `json:"event_category" kn:"required"`
	EventAction       string          `json:"event_action" kn:"required"`
	EventOutcome      string          `json:"event_outcome" kn:"required"`
	CorrelationID     string          `json:"correlation_id" kn:"required"`
	EventData         json.RawMessage `json:"event_data" kn:"required"`
	EventHash         string          `json:"event_hash" kn:"nonnull"`
	PreviousEventHash string          `json:"previous_event_hash" kn:"nonnull"`
	HashChainValid    bool            `json:"hash_chain_valid" kn:"required"`
	LegalHold         bool            `json:"legal_hold" kn:"required"`
	// auditstore's members besides kubernaut's, which redact_pii changes.
	ActorID string  `json:"actor_id"`
	ActorIP *string `json:"actor_ip"`
}

// Notification is kubernaut's NotificationAudit record.
type Notification struct {
	RemediationID   string    `json:"remediation_id" kn:"required"`
	NotificationID  string    `json:"notification_id" kn:"required"`
	Recipient       string    `json:"recipient" kn:"required"`
	Channel         string    `json:"channel" kn:"required"`
	MessageSummary  string    `json:"message_summary" kn:"required"`
	Status          string    `json:"status" kn:"required"`
	SentAt          time.Time `json:"sent_at" kn:"required"`
	DeliveryStatus  *string   `json:"delivery_status,omitempty"`
	ErrorMessage    *string   `json:"error_message,omitempty"`
	EscalationLevel *int      `json:"escalation_level,omitempty"`
}

// NotificationResponse is kubernaut's NotificationAuditResponse: the record as stored.
type NotificationResponse struct {
	ID int64 `json:"id" kn:"required"`
	Notification
	CreatedAt time.Time `json:"created_at" kn:"required"`
	UpdatedAt time.Time `json:"updated_at" kn:"required"`
}
