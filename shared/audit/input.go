package audit

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/google/uuid"
)

// Input is one event as a client sends it (README "Write API", on write). A nil field was absent
// or null; the two mean the same.
type Input struct {
	EventID         *string         `json:"event_id,omitempty"`
	Version         *string         `json:"version,omitempty"`
	EventTimestamp  *string         `json:"event_timestamp,omitempty"`
	EventType       *string         `json:"event_type,omitempty"`
	EventCategory   *string         `json:"event_category,omitempty"`
	EventAction     *string         `json:"event_action,omitempty"`
	EventOutcome    *string         `json:"event_outcome,omitempty"`
	CorrelationID   *string         `json:"correlation_id,omitempty"`
	ActorType       *string         `json:"actor_type,omitempty"`
	ActorID         *string         `json:"actor_id,omitempty"`
	ActorIP         *string         `json:"actor_ip,omitempty"`
	ResourceType    *string         `json:"resource_type,omitempty"`
	ResourceID      *string         `json:"resource_id,omitempty"`
	ResourceName    *string         `json:"resource_name,omitempty"`
	ParentEventID   *string         `json:"parent_event_id,omitempty"`
	TraceID         *string         `json:"trace_id,omitempty"`
	SpanID          *string         `json:"span_id,omitempty"`
	Namespace       *string         `json:"namespace,omitempty"`
	ClusterID       *string         `json:"cluster_id,omitempty"`
	ParentEventDate *string         `json:"parent_event_date,omitempty"`
	Severity        *string         `json:"severity,omitempty"`
	DurationMS      *int64          `json:"duration_ms,omitempty"`
	ErrorCode       *string         `json:"error_code,omitempty"`
	ErrorMessage    *string         `json:"error_message,omitempty"`
	RetentionDays   *int64          `json:"retention_days,omitempty"`
	IsSensitive     *bool           `json:"is_sensitive,omitempty"`
	EventData       json.RawMessage `json:"event_data,omitempty"`

	// service is the service event_data's envelope names, as the last Prepare read it.
	service string
	// data is EventData as SetData was given it read; scanned is the EventData it was read
	// from (nil: not read yet).
	data    integrity.Data
	scanned []byte
}

// SetData sets event_data to raw, as a decoder that read it with integrity.ParseDataIn (within
// MaxDataDepth and MaxDataBytes) in its pass over the request has it: Prepare takes d instead
// of reading raw again, as long as EventData is still raw.
func (in *Input) SetData(raw json.RawMessage, d integrity.Data) {
	in.EventData, in.data, in.scanned = raw, d, raw
}

// eventData is event_data read: what SetData was given, or read now.
func (in *Input) eventData() (integrity.Data, error) {
	if len(in.scanned) > 0 && len(in.EventData) == len(in.scanned) && &in.EventData[0] == &in.scanned[0] {
		return in.data, nil
	}
	return parseData(in.EventData)
}

// Service is the service event_data's envelope names (EnvelopeService), as the last
// successful Prepare read it: the write path's metrics label.
func (in *Input) Service() string { return in.service }

// FieldError names one invalid field of one event. Index is the event's position in a batch
// (nil for a single event).
type FieldError struct {
	Index   *int   `json:"index,omitempty"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Index != nil {
		return fmt.Sprintf("event %d: %s %s", *e.Index, e.Field, e.Message)
	}
	return e.Field + " " + e.Message
}

// Limits are the configurable bounds of validation.
type Limits struct {
	// MaxClockSkew is how far in the future an event_timestamp may lie (MAX_CLOCK_SKEW).
	MaxClockSkew time.Duration
	// MaxEventAge, when set, is how far in the past an event_timestamp may lie (MAX_EVENT_AGE).
	// Whatever it is, an event whose own retention has already passed is refused: it would be
	// deleted as soon as it was stored.
	MaxEventAge time.Duration
}

// DefaultLimits are the contract's defaults: 5 minutes of clock skew, and any age an event's
// retention still covers (a client replaying its buffer after an outage loses nothing).
var DefaultLimits = Limits{MaxClockSkew: 5 * time.Minute}

// Defaults are what the server fills in for an event that leaves a field out.
type Defaults struct {
	// Now is the time the event was received.
	Now time.Time
	// Principal is the authenticated caller: submitted_by, and actor_id when absent.
	Principal string
	// CategoryRetention returns a category's policy retention in days, if it has one.
	CategoryRetention func(category string) (int, bool)
	// RetentionClasses are the stored retention periods in days, ascending.
	RetentionClasses []int
	// TraceID and SpanID come from a W3C traceparent of the request (header or CloudEvents
	// extension). They fill trace_id and span_id when the event has none, and are not part of
	// its content: a retry carries a new traceparent but is still the same event.
	TraceID, SpanID string
	// Hash sets the event hash of the prepared event, from the scan of event_data that checked
	// it: the write path's WRITE_EVENT_HASH.
	Hash bool
	// HashVersion is the encoding Hash uses (0: integrity.HashVersion). Version 2
	// (integrity.HashVersionMembers) gives the event a new random salt key (HashSalt), stored
	// beside it, so its members can be erased later: the write path's WRITE_HASH_VERSION.
	HashVersion int
}

var eventTypePattern = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)+$`)

// isEventType is eventTypePattern.MatchString without the regexp machinery (it is checked for
// every event); TestIsEventType holds the two to one verdict.
func isEventType(s string) bool {
	segments, n := 1, 0 // n: length of the current segment
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if n == 0 {
				return false
			}
			segments, n = segments+1, 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			n++
		default:
			return false
		}
	}
	return segments >= 2 && n > 0
}

// Prepare validates in and returns the Event to store, with defaults applied and its content
// hash set. The errors name every invalid field at once; the Event is valid only when there
// are none.
func (in *Input) Prepare(d Defaults, lim Limits) (Event, []FieldError) {
	return in.prepare(d, lim, false)
}

// prepare is Prepare; strict also requires the payload members a service's builder requires.
func (in *Input) prepare(d Defaults, lim Limits, strict bool) (Event, []FieldError) {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	text := func(field string, v *string, minLen, maxLen int) *string {
		if v == nil {
			if minLen > 0 {
				bad(field, "is required")
			}
			return nil
		}
		switch n := utf8.RuneCountInString(*v); {
		case !utf8.ValidString(*v):
			bad(field, "is not valid UTF-8")
		case strings.IndexByte(*v, 0) >= 0:
			bad(field, "holds U+0000, which cannot be stored")
		case n < max(minLen, 1):
			bad(field, "must not be empty")
		case n > maxLen:
			bad(field, "is %d characters long; at most %d are accepted", n, maxLen)
		default:
			return v
		}
		return nil
	}
	oneOf := func(field string, v *string, allowed []string) {
		if v != nil && !slices.Contains(allowed, *v) {
			bad(field, "%q is not one of %s", *v, strings.Join(allowed, ", "))
		}
	}
	uuidOf := func(field string, v *string) *uuid.UUID {
		if v == nil {
			return nil
		}
		id, err := parseUUID(*v)
		if err != nil {
			bad(field, "%q is not a UUID (8-4-4-4-12 hexadecimal digits)", *v)
			return nil
		}
		return &id
	}

	e := Event{ReceivedAt: d.Now.UTC().Truncate(time.Microsecond), SubmittedBy: d.Principal}
	var hashed []byte // event_data's RFC 8785 form
	var layout integrity.Layout

	if id := uuidOf("event_id", in.EventID); id != nil {
		e.EventID = *id
	} else if in.EventID == nil {
		e.EventID = uuid.Must(uuid.NewV7())
	}
	e.Version = "1.0"
	if v := text("version", in.Version, 0, 32); v != nil {
		e.Version = *v
	}
	e.EventTimestamp = d.Now
	if in.EventTimestamp != nil {
		ts, err := time.Parse(time.RFC3339Nano, *in.EventTimestamp)
		switch {
		case err != nil:
			bad("event_timestamp", "%q is not an RFC 3339 timestamp such as 2026-11-25T10:00:00Z", *in.EventTimestamp)
		case ts.After(d.Now.Add(lim.MaxClockSkew)):
			bad("event_timestamp", "is more than %s in the future", lim.MaxClockSkew)
		case lim.MaxEventAge > 0 && ts.Before(d.Now.Add(-lim.MaxEventAge)):
			bad("event_timestamp", "is more than %s in the past", formatDays(lim.MaxEventAge))
		default:
			e.EventTimestamp = ts
		}
	}
	e.EventTimestamp = e.EventTimestamp.UTC().Truncate(time.Microsecond) // PostgreSQL keeps microseconds

	if v := text("event_type", in.EventType, 1, 100); v != nil {
		if !isEventType(*v) {
			bad("event_type", "%q must be dot-separated segments of a-z, 0-9, _ and -, at least two, e.g. gateway.signal.received", *v)
		} else {
			e.EventType = *v
		}
	}
	e.EventCategory, e.EventAction = categoryAction(e.EventType)
	if v := text("event_category", in.EventCategory, 0, 100); v != nil {
		e.EventCategory = *v
	}
	if v := text("event_action", in.EventAction, 0, 100); v != nil {
		e.EventAction = *v
	}
	if v := text("event_outcome", in.EventOutcome, 1, 100); v != nil {
		oneOf("event_outcome", v, Outcomes)
		e.EventOutcome = *v
	}
	if v := text("correlation_id", in.CorrelationID, 1, 255); v != nil {
		e.CorrelationID = *v
	}
	e.ActorType = "service"
	if v := text("actor_type", in.ActorType, 0, 100); v != nil {
		e.ActorType = *v
	}
	e.ActorID = d.Principal
	if v := text("actor_id", in.ActorID, 0, 255); v != nil {
		e.ActorID = *v
	}
	if in.ActorIP != nil {
		if addr, ok := parseIP(*in.ActorIP); !ok {
			bad("actor_ip", "%q is not an IPv4 or IPv6 address (with or without a port: 10.0.0.1:8080, [2001:db8::1]:8080)", *in.ActorIP)
		} else {
			s := addr.String()
			e.ActorIP = &s
		}
	}
	e.ResourceType = text("resource_type", in.ResourceType, 0, 100)
	e.ResourceID = text("resource_id", in.ResourceID, 0, 255)
	e.ResourceName = text("resource_name", in.ResourceName, 0, 255)
	e.ParentEventID = uuidOf("parent_event_id", in.ParentEventID)
	e.TraceID = text("trace_id", in.TraceID, 0, 255)
	e.SpanID = text("span_id", in.SpanID, 0, 255)
	if in.TraceID == nil && in.SpanID == nil && d.TraceID != "" {
		e.TraceID, e.SpanID = &d.TraceID, &d.SpanID
	}
	e.Namespace = text("namespace", in.Namespace, 0, 253)
	e.ClusterID = text("cluster_id", in.ClusterID, 0, 253)
	if in.ParentEventDate != nil {
		if _, err := time.Parse(time.RFC3339Nano, *in.ParentEventDate); err != nil {
			bad("parent_event_date", "%q is not an RFC 3339 timestamp", *in.ParentEventDate)
		}
	}
	if v := text("severity", in.Severity, 0, 100); v != nil {
		// Matched in any case and stored lower-case: services spell it as their logs do.
		lower := strings.ToLower(*v)
		if !slices.Contains(Severities, lower) {
			bad("severity", "%q is not one of %s (in any case)", *v, strings.Join(Severities, ", "))
		}
		e.Severity = v
		if lower != *v {
			stored := lower // on the heap only when it differs from what was sent
			e.Severity = &stored
		}
	}
	if in.DurationMS != nil {
		if *in.DurationMS < 0 {
			bad("duration_ms", "is %d; it must be 0 or more", *in.DurationMS)
		} else {
			e.DurationMS = in.DurationMS
		}
	}
	e.ErrorCode = text("error_code", in.ErrorCode, 0, 100)
	e.ErrorMessage = text("error_message", in.ErrorMessage, 0, 4096)
	if in.RetentionDays != nil && (*in.RetentionDays < 1 || *in.RetentionDays > MaxRetentionDays) {
		bad("retention_days", "is %d; it must be between 1 and %d (7 years); below the shortest retention class it means that class", *in.RetentionDays, MaxRetentionDays)
	}
	if in.IsSensitive != nil {
		e.IsSensitive = *in.IsSensitive
	}
	if len(in.EventData) == 0 || string(in.EventData) == "null" {
		bad("event_data", "is required (a JSON object)")
	} else if data, err := in.eventData(); err != nil {
		bad("event_data", "%s", err.Error())
	} else {
		e.EventData, hashed, layout = data.Stored, data.Hashed, data.Layout
		var dataErrs []FieldError
		in.service, dataErrs = checkData(data, in.EventData, strict)
		errs = append(errs, dataErrs...)
	}
	if len(errs) > 0 {
		return Event{}, errs
	}

	policy, hasPolicy := 0, false
	if d.CategoryRetention != nil {
		policy, hasPolicy = d.CategoryRetention(e.EventCategory)
	}
	e.RetentionDays = ResolveRetention(in.RetentionDays, policy, hasPolicy, d.RetentionClasses)
	// Its retention decides how old an event may be: one already expired would be deleted by
	// the next maintenance run (and the database's delete guard would allow it), so it is
	// refused. Anything younger is stored, in a month made on demand if need be; maintenance
	// drops a month only once its last day's events have expired too.
	if expires := e.EventTimestamp.AddDate(0, 0, e.RetentionDays); !expires.After(d.Now) {
		return Event{}, []FieldError{{Field: "event_timestamp", Message: fmt.Sprintf(
			"%s is older than its retention of %d days: it expired on %s", e.EventTimestamp.Format(time.RFC3339), e.RetentionDays, expires.Format(time.DateOnly))}}
	}
	// The content hash, event hash and salt key of the event share one allocation.
	sums := new(eventSums)
	sums.content = in.contentHash(e)
	e.ContentHash = sums.content[:]
	if d.Hash {
		// The hash covers what is stored, so it is taken once every field is final; event_data
		// goes in as the scan above wrote it in RFC 8785 form, not read again.
		version := cmp.Or(d.HashVersion, integrity.HashVersion)
		if version == integrity.HashVersionMembers {
			integrity.ReadSaltKey(sums.salt[:])
			e.HashSalt = sums.salt[:]
		}
		rec := e.HashRecord()
		rec.EventData, rec.DataHashed, rec.DataLayout = hashed, true, layout
		h, err := rec.Hash(version)
		if err != nil {
			return Event{}, []FieldError{{Field: "event_data", Message: err.Error()}}
		}
		sums.event = h
		e.EventHash, e.HashVersion = sums.event[:], version
	}
	return e, nil
}

// eventSums holds what Prepare computes of an event's integrity, in one allocation.
type eventSums struct {
	content, event integrity.Hash
	salt           [integrity.SaltKeySize]byte
}

// parseIP reads an IPv4 or IPv6 address, also with a port ("10.0.0.1:8080", "[::1]:8080": a
// server's record of its peer), which is dropped. A zone is refused: it names an interface of
// the sender's host, not an address.
func parseIP(s string) (netip.Addr, bool) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		addr = ap.Addr()
	}
	return addr, addr.Zone() == ""
}

// contentHash is the SHA-256 of what the client sent, in canonical form: fields it left out
// (and parent_event_date, which is not content) are not part of it, so a retry that let the
// server default event_timestamp again hashes the same. Typed fields hash by value (a UUID in
// either case, a timestamp in any RFC 3339 spelling of the same instant); event_data by its
// canonical JSON.
func (in *Input) contentHash(e Event) integrity.Hash {
	c := integrity.NewContent()
	str := func(name string, v *string) {
		if v != nil {
			c.Add(name, *v)
		}
	}
	var buf [64]byte
	if in.EventID != nil {
		c.AddBytes("event_id", AppendUUID(buf[:0], e.EventID))
	}
	str("version", in.Version)
	if in.EventTimestamp != nil {
		c.AddBytes("event_timestamp", e.EventTimestamp.AppendFormat(buf[:0], time.RFC3339Nano))
	}
	str("event_type", in.EventType)
	str("event_category", in.EventCategory)
	str("event_action", in.EventAction)
	str("event_outcome", in.EventOutcome)
	str("correlation_id", in.CorrelationID)
	str("actor_type", in.ActorType)
	str("actor_id", in.ActorID)
	str("actor_ip", e.ActorIP)
	str("resource_type", in.ResourceType)
	str("resource_id", in.ResourceID)
	str("resource_name", in.ResourceName)
	if e.ParentEventID != nil {
		c.AddBytes("parent_event_id", AppendUUID(buf[:0], *e.ParentEventID))
	}
	str("trace_id", in.TraceID)
	str("span_id", in.SpanID)
	str("namespace", in.Namespace)
	str("cluster_id", in.ClusterID)
	str("severity", e.Severity) // lower-case: a retry spelled in another case is the same event
	if in.DurationMS != nil {
		c.AddBytes("duration_ms", strconv.AppendInt(buf[:0], *in.DurationMS, 10))
	}
	str("error_code", in.ErrorCode)
	str("error_message", in.ErrorMessage)
	if in.RetentionDays != nil {
		c.AddBytes("retention_days", strconv.AppendInt(buf[:0], *in.RetentionDays, 10))
	}
	if in.IsSensitive != nil {
		c.AddBytes("is_sensitive", strconv.AppendBool(buf[:0], *in.IsSensitive))
	}
	c.AddBytes("event_data", e.EventData)
	return c.Sum()
}

// parseUUID accepts only the 36-character hyphenated form, in either case.
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, fmt.Errorf("not a UUID")
	}
	return uuid.Parse(s)
}

// categoryAction derives the default event_category (first segment) and event_action (last
// segment) of an event type.
func categoryAction(eventType string) (category, action string) {
	if eventType == "" {
		return "", ""
	}
	first, _, _ := strings.Cut(eventType, ".")
	return first, eventType[strings.LastIndexByte(eventType, '.')+1:]
}

func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
