package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestCopyEncoding checks the hand-written binary COPY rows against pgx's encoding of the same
// values for the columns' types, with every optional field absent and present.
func TestCopyEncoding(t *testing.T) {
	s := func(v string) *string { return &v }
	dur := int64(1500)
	parent := uuid.New()
	full := audit.Event{
		EventID: uuid.New(), Version: "1.0",
		EventTimestamp: time.Date(1999, 12, 31, 23, 59, 59, 123456000, time.FixedZone("x", 3600)),
		EventType:      "gateway.signal.received", EventCategory: "gateway", EventAction: "received",
		EventOutcome: "success", CorrelationID: "rr-1", ActorType: "service", ActorID: "gw",
		ActorIP: s("2001:db8::1"), ResourceType: s("Signal"), ResourceID: s("fp-1"),
		ResourceName: s("n"), ParentEventID: &parent, TraceID: s("t"), SpanID: s("sp"),
		Namespace: s("ns"), ClusterID: s("c"), Severity: s("info"), DurationMS: &dur,
		ErrorCode: s("E42"), ErrorMessage: s("ü"), RetentionDays: 2557, IsSensitive: true,
		EventData: json.RawMessage(`{"a":[1,"ü"]}`), ReceivedAt: time.Now().UTC(),
		SubmittedBy: "svc", ContentHash: bytes.Repeat([]byte{7}, 32),
		EventHash: bytes.Repeat([]byte{9}, 32), HashVersion: 1,
	}
	minimal := full
	minimal.ActorIP, minimal.ResourceType, minimal.ResourceID, minimal.ResourceName = nil, nil, nil, nil
	minimal.ParentEventID, minimal.TraceID, minimal.SpanID, minimal.Namespace = nil, nil, nil, nil
	minimal.ClusterID, minimal.Severity, minimal.DurationMS, minimal.ErrorCode = nil, nil, nil, nil
	minimal.ErrorMessage, minimal.IsSensitive = nil, false
	minimal.EventHash, minimal.HashVersion = nil, 0
	minimal.EventTimestamp = time.Date(2026, 11, 26, 3, 0, 0, 999, time.UTC)
	v4 := full
	v4.ActorIP = s("192.0.2.1")
	mapped := full
	mapped.ActorIP = s("::ffff:192.0.2.1")
	v2 := full // hashed with version 2, then erased: a salt key, kept members
	v2.HashVersion, v2.HashSalt = 2, bytes.Repeat([]byte{5}, 16)
	erased := v2
	erased.HashSalt, erased.HashMembers = nil, json.RawMessage(`{"/actor_id":{"digest":"ab"}}`)

	oids := []uint32{pgtype.UUIDOID, pgtype.TimestamptzOID, pgtype.Int4OID, pgtype.TimestamptzOID,
		pgtype.Int8OID, pgtype.BoolOID, pgtype.UUIDOID, pgtype.InetOID}
	for range 19 { // version .. submitted_by
		oids = append(oids, pgtype.TextOID)
	}
	oids = append(oids, pgtype.ByteaOID, pgtype.JSONBOID, pgtype.ByteaOID, pgtype.Int2OID, pgtype.ByteaOID, pgtype.JSONBOID)
	if len(oids) != len(copyColumns) {
		t.Fatalf("%d oids for %d columns", len(oids), len(copyColumns))
	}
	m := pgtype.NewMap()
	pgxRow := func(oids []uint32, values []any) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(values)))
		for i, v := range values {
			sp := len(b)
			b = binary.BigEndian.AppendUint32(b, 0)
			enc, err := m.Encode(oids[i], pgtype.BinaryFormatCode, v, b)
			if err != nil {
				t.Fatalf("pgx: column %d: %v", i, err)
			}
			if enc == nil {
				b = binary.BigEndian.AppendUint32(b[:sp], 0xffffffff)
				continue
			}
			b = enc
			binary.BigEndian.PutUint32(b[sp:], uint32(len(b)-sp-4))
		}
		return b
	}

	for _, e := range []audit.Event{full, minimal, v4, mapped, v2, erased} {
		row := make([]any, len(copyColumns))
		if err := eventValues(row, &e); err != nil {
			t.Fatal(err)
		}
		got, err := appendEventRow(nil, &e)
		if err != nil {
			t.Fatal(err)
		}
		if want := pgxRow(oids, row); !bytes.Equal(got, want) {
			t.Errorf("event row for actor_ip %v:\n got %x\nwant %x", e.ActorIP, got, want)
		}
		var eventHash any
		if e.EventHash != nil {
			eventHash = []byte(e.EventHash)
		}
		key := []any{[16]byte(e.EventID), e.EventTimestamp, int32(e.RetentionDays), e.ContentHash, eventHash}
		keyOIDs := []uint32{pgtype.UUIDOID, pgtype.TimestamptzOID, pgtype.Int4OID, pgtype.ByteaOID, pgtype.ByteaOID}
		if got, want := appendKeyRow(nil, &e), pgxRow(keyOIDs, key); !bytes.Equal(got, want) {
			t.Errorf("key row:\n got %x\nwant %x", got, want)
		}
	}

	bad := full
	bad.ActorIP = s("not an address")
	if _, err := appendEventRow(nil, &bad); err == nil {
		t.Error("an invalid actor_ip was encoded")
	}
}

// TestCopyStream checks the stream's framing whatever the reader's buffer size.
func TestCopyStream(t *testing.T) {
	rows := [][]byte{[]byte("aaaa"), []byte("bbbbbbbbbbbbbbbbbbbb"), []byte("c")}
	want := append([]byte("HDR"), bytes.Join(rows, nil)...)
	want = append(want, 0xff, 0xff)
	for _, size := range []int{1, 2, 3, 7, 64} {
		src := &copyStream{n: len(rows), buf: []byte("HDR"), row: func(b []byte, r int) ([]byte, error) {
			return append(b, rows[r]...), nil
		}}
		var got []byte
		p := make([]byte, size)
		for {
			n, err := src.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("read size %d: got %q, want %q", size, got, want)
		}
	}
}
