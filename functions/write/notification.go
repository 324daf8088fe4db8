package write

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
	"github.com/google/uuid"
)

// kubernaut's notification service records each message it sends as a NotificationAudit at
// POST /api/v1/audit/notifications. Here a record is one audit event, written through the same
// path as every other (validation, rate limit, idempotency, group commit): correlation_id is
// the remediation_id, event_type notification.message.<status>, event_data the record, and the
// event_id is derived from notification_id, so a retry is a duplicate and other content a 409.

// shapeNotification is a NotificationAudit record.
const shapeNotification shape = "notification"

// NotificationNamespace is the UUIDv5 namespace (RFC 9562) of the event ids of notification
// records: the event_id of a record is the UUIDv5 of its notification_id in this namespace,
// itself the UUIDv5 of "https://auditstore.dev/ns/notification" in the URL namespace. A
// namespace of its own keeps these ids apart from the ids CloudEvents are given.
var NotificationNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://auditstore.dev/ns/notification"))

// notification is kubernaut's NotificationAudit.
type notification struct {
	RemediationID   string  `json:"remediation_id"`
	NotificationID  string  `json:"notification_id"`
	Recipient       string  `json:"recipient"`
	Channel         string  `json:"channel"`
	MessageSummary  string  `json:"message_summary"`
	Status          string  `json:"status"`
	SentAt          string  `json:"sent_at"`
	DeliveryStatus  *string `json:"delivery_status,omitempty"`
	ErrorMessage    *string `json:"error_message,omitempty"`
	EscalationLevel *int64  `json:"escalation_level,omitempty"`
}

var (
	notificationChannels = []string{"email", "slack", "pagerduty", "teams", "webhook"}
	// notificationOutcomes maps a record's status to its event's outcome.
	notificationOutcomes = map[string]string{"sent": "success", "failed": "failure", "pending": "pending"}
)

func (h *Handler) postNotification(w http.ResponseWriter, r *http.Request) error {
	if mt, err := mediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.metrics.rejected.WithLabelValues("unsupported_media_type").Inc()
		return web.Error(http.StatusUnsupportedMediaType, "a notification record is sent as application/json", err)
	}
	return h.serve(w, r, shapeNotification)
}

// decodeNotification reads a record and maps it to an event, naming every bad member.
func decodeNotification(body []byte) (*audit.Input, []audit.FieldError) {
	var n notification
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil || dec.More() {
		field, msg := "body", "must be one JSON object, a NotificationAudit record"
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			field, msg = typeErr.Field, "must be a JSON "+typeErr.Type.String()+", not "+typeErr.Value
			if typeErr.Type.String() == "int64" {
				msg = "must be an integer, not " + typeErr.Value
			}
		} else if err != nil {
			msg += ": " + err.Error()
		}
		return nil, []audit.FieldError{{Field: field, Message: msg}}
	}
	var errs []audit.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, audit.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{
		{"remediation_id", n.RemediationID, 255}, {"notification_id", n.NotificationID, 255},
		{"recipient", n.Recipient, 1024}, {"message_summary", n.MessageSummary, 4096},
	} {
		if c := utf8.RuneCountInString(f.value); c == 0 || c > f.max {
			bad(f.name, "is required (1 to %d characters)", f.max)
		}
	}
	if !slices.Contains(notificationChannels, n.Channel) {
		bad("channel", "%q is not one of email, slack, pagerduty, teams, webhook", n.Channel)
	}
	outcome, ok := notificationOutcomes[n.Status]
	if !ok {
		bad("status", "%q is not one of sent, failed, pending", n.Status)
	}
	if _, err := time.Parse(time.RFC3339Nano, n.SentAt); err != nil {
		bad("sent_at", "%q is not an RFC 3339 time", n.SentAt)
	}
	if n.EscalationLevel != nil && *n.EscalationLevel < 0 {
		bad("escalation_level", "must be 0 or more")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	record, err := json.Marshal(n)
	if err != nil {
		return nil, []audit.FieldError{{Field: "body", Message: err.Error()}}
	}
	id := uuid.NewSHA1(NotificationNamespace, []byte(n.NotificationID)).String()
	eventType, resourceType := "notification.message."+n.Status, "Notification"
	return &audit.Input{EventID: &id, EventTimestamp: &n.SentAt, EventType: &eventType, EventOutcome: &outcome,
		CorrelationID: &n.RemediationID, ResourceType: &resourceType, ResourceID: &n.NotificationID, EventData: record}, nil
}

// NotificationRecordID is the integer id a notification record is answered with: the first 53
// bits of its event_id, which a retry of the record shares (exact in a JSON number read as a
// double).
func NotificationRecordID(eventID uuid.UUID) int64 {
	return int64(binary.BigEndian.Uint64(eventID[:8]) >> 11)
}

// eventReader reads a stored event back: the answer to a record sent again carries when the
// first copy was stored.
type eventReader interface {
	GetEvent(ctx context.Context, id uuid.UUID) (audit.Event, error)
}

// notificationReply answers a stored record (201, new or a duplicate alike: kubernaut's client
// takes no other success) with the record, its id, and when it was stored.
func (h *Handler) notificationReply(w http.ResponseWriter, r *http.Request, e audit.Event, res store.InsertResult) error {
	stored := e.ReceivedAt
	if res.Status == store.Duplicate && h.events != nil {
		first, err := h.events.GetEvent(r.Context(), res.EventID)
		if err != nil {
			return storeError(err)
		}
		stored = first.ReceivedAt
	}
	var reply map[string]any
	if err := json.Unmarshal(e.EventData, &reply); err != nil {
		return err
	}
	reply["id"] = NotificationRecordID(res.EventID)
	reply["created_at"] = stored.UTC()
	reply["updated_at"] = stored.UTC()
	return web.WriteJSON(w, http.StatusCreated, reply)
}
