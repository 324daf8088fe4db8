package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
)

// The audit_events row is described once, here: eventColumns drives the binary COPY of the
// write path (copyColumns, appendEventRow), the values pgx sends (eventValues: a restore's
// CopyFrom, the ceiling benchmark), the INSERT of the slow path (insertSQL, insertArgs) and
// every SELECT (selectColumns, eventColumnNames, scanEventWith). Adding a column is one entry
// here and one migration; TestCopyEncoding checks each entry's binary encoding against pgx's.

// Column is one column of audit_events: its name and SQL type, and how each statement of the
// store writes or reads it for an event.
type Column struct {
	// Name is the column's name.
	Name string
	// Type is its SQL type, as the migration declares it.
	Type string

	// selectExpr reads it in a SELECT (default Name): host(actor_ip) prints an inet without
	// the /32 or /128 a plain cast to text would add.
	selectExpr string
	// inputType is the element type of the array the INSERT unnests it from (default Type);
	// the INSERT casts it to Type.
	inputType string
	// value is the value pgx sends for it (CopyFrom, a multi-row INSERT).
	value func(e *audit.Event) (any, error)
	// array is the array of events[idx]'s values the INSERT sends for it.
	array func(events []audit.Event, idx []int) any
	// scan is where a SELECT of selectExpr is read into.
	scan func(e *audit.Event) any
	// scanned, if set, completes e from what scan read (Erased from hash_members).
	scanned func(e *audit.Event)
	// appendBinary appends its field of a binary COPY tuple (length, then PostgreSQL's binary
	// form), in the encoding of Type.
	appendBinary func(b []byte, e *audit.Event) ([]byte, error)
}

// Value is the value pgx sends for the column of e.
func (c Column) Value(e *audit.Event) (any, error) { return c.value(e) }

// EventColumns describes the audit_events row, in the order COPY writes it. A caller that
// writes or reads the row outside the store (the ceiling benchmark, an encoder that walks the
// stored fields) takes the names and values from here; the slice is shared: do not change it.
func EventColumns() []Column { return eventColumns }

// EventValues returns e's values in EventColumns' order, as pgx takes them.
func EventValues(e *audit.Event) ([]any, error) {
	row := make([]any, len(eventColumns))
	return row, eventValues(row, e)
}

var eventColumns = []Column{
	{Name: "event_id", Type: "uuid",
		value:        func(e *audit.Event) (any, error) { return [16]byte(e.EventID), nil },
		array:        arrayOf(func(e *audit.Event) uuid.UUID { return e.EventID }),
		scan:         func(e *audit.Event) any { return &e.EventID },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) { return appendUUID(b, e.EventID), nil }},
	timestamptz("event_timestamp", func(e *audit.Event) *time.Time { return &e.EventTimestamp }),
	{Name: "retention_days", Type: "integer",
		value:        func(e *audit.Event) (any, error) { return int32(e.RetentionDays), nil },
		array:        arrayOf(func(e *audit.Event) int32 { return int32(e.RetentionDays) }),
		scan:         func(e *audit.Event) any { return &e.RetentionDays },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) { return appendInt4(b, int32(e.RetentionDays)), nil }},
	timestamptz("received_at", func(e *audit.Event) *time.Time { return &e.ReceivedAt }),
	{Name: "duration_ms", Type: "bigint",
		value: func(e *audit.Event) (any, error) { return e.DurationMS, nil },
		array: arrayOf(func(e *audit.Event) *int64 { return e.DurationMS }),
		scan:  func(e *audit.Event) any { return &e.DurationMS },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.DurationMS == nil {
				return appendNull(b), nil
			}
			return binary.BigEndian.AppendUint64(append(b, 0, 0, 0, 8), uint64(*e.DurationMS)), nil
		}},
	{Name: "is_sensitive", Type: "boolean",
		value: func(e *audit.Event) (any, error) { return e.IsSensitive, nil },
		array: arrayOf(func(e *audit.Event) bool { return e.IsSensitive }),
		scan:  func(e *audit.Event) any { return &e.IsSensitive },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.IsSensitive {
				return append(b, 0, 0, 0, 1, 1), nil
			}
			return append(b, 0, 0, 0, 1, 0), nil
		}},
	{Name: "parent_event_id", Type: "uuid",
		value: func(e *audit.Event) (any, error) {
			if e.ParentEventID == nil {
				return nil, nil
			}
			return [16]byte(*e.ParentEventID), nil
		},
		array: arrayOf(func(e *audit.Event) *uuid.UUID { return e.ParentEventID }),
		scan:  func(e *audit.Event) any { return &e.ParentEventID },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.ParentEventID == nil {
				return appendNull(b), nil
			}
			return appendUUID(b, *e.ParentEventID), nil
		}},
	{Name: "actor_ip", Type: "inet", inputType: "text", selectExpr: "host(actor_ip)",
		value: func(e *audit.Event) (any, error) {
			if e.ActorIP == nil {
				return nil, nil
			}
			addr, err := actorIP(e)
			return netip.PrefixFrom(addr, addr.BitLen()), err
		},
		array: arrayOf(func(e *audit.Event) *string { return e.ActorIP }),
		scan:  func(e *audit.Event) any { return &e.ActorIP },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.ActorIP == nil {
				return appendNull(b), nil
			}
			addr, err := actorIP(e)
			if err != nil {
				return nil, err
			}
			return appendInet(b, addr.WithZone("")), nil
		}},
	text("version", func(e *audit.Event) *string { return &e.Version }),
	text("event_type", func(e *audit.Event) *string { return &e.EventType }),
	text("event_category", func(e *audit.Event) *string { return &e.EventCategory }),
	text("event_action", func(e *audit.Event) *string { return &e.EventAction }),
	text("event_outcome", func(e *audit.Event) *string { return &e.EventOutcome }),
	text("correlation_id", func(e *audit.Event) *string { return &e.CorrelationID }),
	text("actor_type", func(e *audit.Event) *string { return &e.ActorType }),
	text("actor_id", func(e *audit.Event) *string { return &e.ActorID }),
	optText("resource_type", func(e *audit.Event) **string { return &e.ResourceType }),
	optText("resource_id", func(e *audit.Event) **string { return &e.ResourceID }),
	optText("resource_name", func(e *audit.Event) **string { return &e.ResourceName }),
	optText("trace_id", func(e *audit.Event) **string { return &e.TraceID }),
	optText("span_id", func(e *audit.Event) **string { return &e.SpanID }),
	optText("namespace", func(e *audit.Event) **string { return &e.Namespace }),
	optText("cluster_id", func(e *audit.Event) **string { return &e.ClusterID }),
	optText("severity", func(e *audit.Event) **string { return &e.Severity }),
	optText("error_code", func(e *audit.Event) **string { return &e.ErrorCode }),
	optText("error_message", func(e *audit.Event) **string { return &e.ErrorMessage }),
	text("submitted_by", func(e *audit.Event) *string { return &e.SubmittedBy }),
	{Name: "content_hash", Type: "bytea",
		value:        func(e *audit.Event) (any, error) { return e.ContentHash, nil },
		array:        arrayOf(func(e *audit.Event) []byte { return e.ContentHash }),
		scan:         func(e *audit.Event) any { return &e.ContentHash },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) { return appendBytes(b, e.ContentHash), nil }},
	{Name: "event_data", Type: "jsonb", inputType: "text",
		value: func(e *audit.Event) (any, error) { return e.EventData, nil },
		array: arrayOf(func(e *audit.Event) string { return string(e.EventData) }),
		scan:  func(e *audit.Event) any { return (*[]byte)(&e.EventData) },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			// jsonb's binary form is a version byte (1) and the JSON text.
			b = binary.BigEndian.AppendUint32(b, uint32(1+len(e.EventData)))
			return append(append(b, 1), e.EventData...), nil
		}},
	// event_hash and hash_version are both NULL for an event written without its hash.
	{Name: "event_hash", Type: "bytea",
		value: func(e *audit.Event) (any, error) {
			if e.EventHash == nil {
				return nil, nil
			}
			return []byte(e.EventHash), nil
		},
		array: arrayOf(func(e *audit.Event) []byte { return e.EventHash }),
		scan:  func(e *audit.Event) any { return (*[]byte)(&e.EventHash) },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.EventHash == nil {
				return appendNull(b), nil
			}
			return appendBytes(b, e.EventHash), nil
		}},
	{Name: "hash_version", Type: "smallint", selectExpr: "coalesce(hash_version, 0)",
		value: func(e *audit.Event) (any, error) {
			if e.EventHash == nil {
				return nil, nil
			}
			return int16(e.HashVersion), nil
		},
		array: arrayOf(func(e *audit.Event) *int16 {
			if e.EventHash == nil {
				return nil
			}
			v := int16(e.HashVersion)
			return &v
		}),
		scan: func(e *audit.Event) any { return &e.HashVersion },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.EventHash == nil {
				return appendNull(b), nil
			}
			return binary.BigEndian.AppendUint16(append(b, 0, 0, 0, 2), uint16(e.HashVersion)), nil
		}},
	// hash_salt is a version 2 event's salt key: NULL for version 1, and once a member was
	// erased (hash_members then keeps the salts of the members still present).
	{Name: "hash_salt", Type: "bytea",
		value: func(e *audit.Event) (any, error) {
			if e.HashSalt == nil {
				return nil, nil
			}
			return e.HashSalt, nil
		},
		array: arrayOf(func(e *audit.Event) []byte { return e.HashSalt }),
		scan:  func(e *audit.Event) any { return &e.HashSalt },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.HashSalt == nil {
				return appendNull(b), nil
			}
			return appendBytes(b, e.HashSalt), nil
		}},
	// hash_members is what an erased version 2 event keeps of its members; NULL until then.
	{Name: "hash_members", Type: "jsonb", inputType: "text",
		value: func(e *audit.Event) (any, error) {
			if e.HashMembers == nil {
				return nil, nil
			}
			return e.HashMembers, nil
		},
		array: arrayOf(func(e *audit.Event) *string {
			if e.HashMembers == nil {
				return nil
			}
			s := string(e.HashMembers)
			return &s
		}),
		scan: func(e *audit.Event) any { return (*[]byte)(&e.HashMembers) },
		scanned: func(e *audit.Event) {
			if e.HashMembers != nil {
				e.Erased = audit.ErasedMembers(e.HashMembers)
			}
		},
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if e.HashMembers == nil {
				return appendNull(b), nil
			}
			b = binary.BigEndian.AppendUint32(b, uint32(1+len(e.HashMembers)))
			return append(append(b, 1), e.HashMembers...), nil
		}},
}

// text is a NOT NULL text column at *field(e).
func text(name string, field func(e *audit.Event) *string) Column {
	return Column{Name: name, Type: "text",
		value:        func(e *audit.Event) (any, error) { return *field(e), nil },
		array:        arrayOf(field),
		scan:         func(e *audit.Event) any { return field(e) },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) { return appendText(b, *field(e)), nil }}
}

// optText is a text column at *field(e), NULL when that is nil.
func optText(name string, field func(e *audit.Event) **string) Column {
	return Column{Name: name, Type: "text",
		value: func(e *audit.Event) (any, error) { return *field(e), nil },
		array: arrayOf(func(e *audit.Event) *string { return *field(e) }),
		scan:  func(e *audit.Event) any { return field(e) },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) {
			if v := *field(e); v != nil {
				return appendText(b, *v), nil
			}
			return appendNull(b), nil
		}}
}

// timestamptz is a NOT NULL timestamptz column at *field(e).
func timestamptz(name string, field func(e *audit.Event) *time.Time) Column {
	return Column{Name: name, Type: "timestamptz",
		value:        func(e *audit.Event) (any, error) { return *field(e), nil },
		array:        arrayOf(func(e *audit.Event) time.Time { return *field(e) }),
		scan:         func(e *audit.Event) any { return field(e) },
		appendBinary: func(b []byte, e *audit.Event) ([]byte, error) { return appendTimestamptz(b, *field(e)), nil }}
}

// arrayOf makes a column's INSERT array from get.
func arrayOf[T any](get func(e *audit.Event) T) func(events []audit.Event, idx []int) any {
	return func(events []audit.Event, idx []int) any {
		a := make([]T, len(idx))
		for r, i := range idx {
			a[r] = get(&events[i])
		}
		return a
	}
}

func actorIP(e *audit.Event) (netip.Addr, error) {
	addr, err := netip.ParseAddr(*e.ActorIP)
	if err != nil {
		return addr, fmt.Errorf("event %s: actor_ip %q: %w", e.EventID, *e.ActorIP, err)
	}
	return addr, nil
}

// columnList joins f of every column with ", ".
func columnList(f func(c Column) string) string {
	parts := make([]string, len(eventColumns))
	for i, c := range eventColumns {
		parts[i] = f(c)
	}
	return strings.Join(parts, ", ")
}

func columnName(c Column) string { return c.Name }

// columnIndex is the position of the column named name.
func columnIndex(name string) int {
	for i, c := range eventColumns {
		if c.Name == name {
			return i
		}
	}
	panic("store: no column " + name)
}

var (
	// copyColumns are the audit_events columns COPY writes, in appendEventRow's order.
	copyColumns = func() []string {
		names := make([]string, len(eventColumns))
		for i, c := range eventColumns {
			names[i] = c.Name
		}
		return names
	}()
	// selectColumns reads a row into scanEventWith's order.
	selectColumns = columnList(func(c Column) string {
		if c.selectExpr != "" {
			return c.selectExpr
		}
		return c.Name
	})
	// eventColumnNames name selectColumns' outputs, for a subquery that joins on them.
	eventColumnNames = columnList(columnName)
)

// appendEventRow appends e as one tuple in copyColumns' order.
func appendEventRow(b []byte, e *audit.Event) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, uint16(len(eventColumns)))
	var err error
	for i := range eventColumns {
		if b, err = eventColumns[i].appendBinary(b, e); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// eventValues fills row (len(copyColumns)) with e's values in copyColumns' order, as pgx's
// CopyFrom takes them: RestoreEvents streams a restore with it, and TestCopyEncoding checks
// appendEventRow's bytes against pgx's encoding of these values.
func eventValues(row []any, e *audit.Event) error {
	var err error
	for i := range eventColumns {
		if row[i], err = eventColumns[i].value(e); err != nil {
			return err
		}
	}
	return nil
}

// scanEventWith reads a row of selectColumns into e, and the columns after the event's into
// extra.
func scanEventWith(row interface{ Scan(dest ...any) error }, e *audit.Event, extra ...any) error {
	dest := make([]any, len(eventColumns), len(eventColumns)+len(extra))
	for i := range eventColumns {
		dest[i] = eventColumns[i].scan(e)
	}
	err := row.Scan(append(dest, extra...)...)
	for i := range eventColumns {
		if eventColumns[i].scanned != nil {
			eventColumns[i].scanned(e)
		}
	}
	e.EventTimestamp = e.EventTimestamp.UTC()
	e.ReceivedAt = e.ReceivedAt.UTC()
	return err
}

// insertArgs are the arrays insertSQL unnests: events[idx]'s values, a column each.
func insertArgs(events []audit.Event, idx []int) []any {
	args := make([]any, len(eventColumns))
	for i := range eventColumns {
		args[i] = eventColumns[i].array(events, idx)
	}
	return args
}

// insertSQL serves small groups in one round trip (pathSingle), and is the slow path when COPY
// met a stored event whose key had been pruned: it claims the ids like claimSQL and inserts
// with ON CONFLICT DO NOTHING in the same statement, over the column arrays of insertArgs,
// so the primary key of audit_events turns that event into a reported row, not an error.
//
// It reads nothing of audit_event_keys: pgx keeps it prepared, and PostgreSQL's generic plan,
// made when the table was small, joined the keys by a sequential scan of the whole table for
// every statement from then on (700 us of database CPU an event at 20k keys). Ids it neither
// stored nor claimed are looked up by rereadKeys, planned with its values each time.
var insertSQL = func() string {
	param := func(name string) string {
		i := columnIndex(name)
		c := eventColumns[i]
		return "$" + strconv.Itoa(i+1) + "::" + c.Type + "[]"
	}
	arrays := make([]string, len(eventColumns))
	for i, c := range eventColumns {
		arrays[i] = "$" + strconv.Itoa(i+1) + "::" + cmp.Or(c.inputType, c.Type) + "[]"
	}
	return `
WITH input AS (
    SELECT * FROM unnest(` + param("event_id") + `, ` + param("event_timestamp") + `, ` + param("retention_days") + `, ` + param("content_hash") + `, ` + param("event_hash") + `)
        AS t(event_id, event_timestamp, retention_days, content_hash, event_hash)
), claimed AS (
    INSERT INTO audit_event_keys AS k (event_id, event_timestamp, retention_days, content_hash, event_hash)
    SELECT event_id, event_timestamp, retention_days, content_hash, event_hash FROM input
    ON CONFLICT (event_id) DO NOTHING
    RETURNING k.event_id
), stored AS (
    INSERT INTO audit_events (` + eventColumnNames + `)
    SELECT ` + columnList(func(c Column) string {
		if c.inputType != "" {
			return "e." + c.Name + "::" + c.Type
		}
		return "e." + c.Name
	}) + `
    FROM unnest(` + strings.Join(arrays, ", ") + `)
        AS e(` + eventColumnNames + `)
    WHERE e.event_id IN (SELECT event_id FROM claimed)
    ON CONFLICT DO NOTHING
    RETURNING event_id
)
SELECT i.event_id,
       EXISTS (SELECT 1 FROM stored s WHERE s.event_id = i.event_id),
       EXISTS (SELECT 1 FROM claimed c WHERE c.event_id = i.event_id)
FROM input i`
}()
