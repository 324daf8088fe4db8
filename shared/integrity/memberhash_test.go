package integrity_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// vectorEvent is an event as the API serves it, with a fixed salt key: its version 2 hash is a
// test vector for verifiers written elsewhere.
const vectorEvent = `{"event_id":"0193a000-0000-7000-8000-000000000001","version":"1.0",
"event_timestamp":"2026-12-01T10:00:00Z","event_type":"notification.message.sent",
"event_category":"notification","event_action":"sent","event_outcome":"success",
"correlation_id":"rr-1","actor_type":"user","actor_id":"alice@example.com","actor_ip":"192.0.2.7",
"retention_days":2557,"is_sensitive":false,"received_at":"2026-12-01T10:00:01Z","submitted_by":"notifier",
"event_data":{"version":"1.0","service":"notification","operation":"message.sent","status":"success",
"payload":{"recipient":"alice@example.com","attempts":2},"source_payload":{"from":"alice"}},
"event_hash":"ignored","hash_version":2}`

var vectorKey = bytes.Repeat([]byte{0x42}, integrity.SaltKeySize)

func TestMemberHash_Vector(t *testing.T) {
	t.Parallel()
	h, err := integrity.EventHashV2([]byte(vectorEvent), vectorKey, nil)
	require.NoError(t, err)
	require.Equal(t, "9d232bdc2a731c2e0d6c396ee5b3b3dcd47bc4e82018f0ce7eb8bbd926cd9773", h.String())
	require.Equal(t, "/event_data/a~1b~0c", integrity.Pointer("event_data", "a/b~c"))
	// A salt is SHA-256 of the event's salt key followed by the pointer.
	want := sha256.Sum256(append(bytes.Clone(vectorKey), "/event_data/payload/recipient"...))
	salt := integrity.MemberSalt(vectorKey, "/event_data/payload/recipient")
	require.Equal(t, want[:], salt[:])
}

// Erasing members keeps the hash; what the event keeps names any other change, and an erased
// member put back.
func TestMemberHash_ErasureKeepsTheHash(t *testing.T) {
	t.Parallel()
	want, err := integrity.EventHashV2([]byte(vectorEvent), vectorKey, nil)
	require.NoError(t, err)
	var ev map[string]any
	require.NoError(t, json.Unmarshal([]byte(vectorEvent), &ev))
	data := ev["event_data"].(map[string]any)
	var decoded map[string]any
	dec := json.NewDecoder(bytes.NewReader(mustMarshal(t, data)))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&decoded))
	ip := "192.0.2.7"
	c, err := integrity.Commit(vectorKey, nil, "alice@example.com", &ip, decoded)
	require.NoError(t, err)
	require.Len(t, c.Digests, 9, "actor_id, actor_ip, 4 envelope members, 2 payload members, source_payload")
	erase := []string{"/actor_ip", "/event_data/payload/recipient", "/event_data/source_payload"}
	kept := integrity.MembersOf(vectorKey, nil, c.Digests, erase)
	require.Equal(t, erase, kept.Erased())

	// As served after the erasure: the members gone.
	delete(ev, "actor_ip")
	delete(data["payload"].(map[string]any), "recipient")
	delete(data, "source_payload")
	got, err := integrity.EventHashV2(mustMarshal(t, ev), nil, kept)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// A member changed after the erasure is named.
	data["payload"].(map[string]any)["attempts"] = 3
	_, err = integrity.EventHashV2(mustMarshal(t, ev), nil, kept)
	var changed integrity.ErrMembersChanged
	require.ErrorAs(t, err, &changed)
	require.Equal(t, "/event_data/payload/attempts", changed[0].Pointer)
	data["payload"].(map[string]any)["attempts"] = 2

	// An erased member back, or a member gone without an erasure, is named too.
	data["source_payload"] = "x"
	_, err = integrity.EventHashV2(mustMarshal(t, ev), nil, kept)
	require.ErrorContains(t, err, "/event_data/source_payload was erased but has a value again")
	delete(data, "source_payload")
	delete(data, "status")
	_, err = integrity.EventHashV2(mustMarshal(t, ev), nil, kept)
	require.ErrorContains(t, err, "/event_data/status is missing but was not erased")
	data["status"] = "success"

	// A field outside the members changes the hash.
	ev["event_outcome"] = "failure"
	got, err = integrity.EventHashV2(mustMarshal(t, ev), nil, kept)
	require.NoError(t, err)
	require.NotEqual(t, want, got)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// Event.Hash(2), the write path's and the verifiers' way, is EventHashV2 of the JSON form: with
// event_data given in RFC 8785 form (as ParseData writes it) or as stored (any spelling), and
// with the members an erasure kept.
func TestMemberHash_EventMatchesTheJSONForm(t *testing.T) {
	t.Parallel()
	want, err := integrity.EventHashV2([]byte(vectorEvent), vectorKey, nil)
	require.NoError(t, err)
	ts := func(s string) time.Time { v, err := time.Parse(time.RFC3339, s); require.NoError(t, err); return v }
	ip := "192.0.2.7"
	id := [16]byte(uuid.MustParse("0193a000-0000-7000-8000-000000000001"))
	e := integrity.Event{EventID: id, Version: "1.0", EventTimestamp: ts("2026-12-01T10:00:00Z"),
		EventType: "notification.message.sent", EventCategory: "notification", EventAction: "sent",
		EventOutcome: "success", CorrelationID: "rr-1", ActorType: "user", ActorID: "alice@example.com",
		ActorIP: &ip, RetentionDays: 2557, ReceivedAt: ts("2026-12-01T10:00:01Z"), SubmittedBy: "notifier",
		EventData: []byte(`{"operation":"message.sent","payload":{"attempts":2,"recipient":"alice@example.com"},"service":"notification","source_payload":{"from":"alice"},"status":"success","version":"1.0"}`),
		HashSalt:  vectorKey}
	e.DataHashed = true
	got, err := e.Hash(integrity.HashVersionMembers)
	require.NoError(t, err)
	require.Equal(t, want, got, "canonical event_data")

	e.DataHashed = false
	e.EventData = []byte(`{"version":"1.0", "service":"notification","operation":"message.sent","status":"success","payload":{"recipient":"alice@example.com","attempts":2.0},"source_payload":{"from":"alice"}}`)
	got, err = e.Hash(integrity.HashVersionMembers)
	require.NoError(t, err)
	require.Equal(t, want, got, "event_data as stored")

	// Erased: actor_ip and the payload's recipient gone, their digests kept.
	var decoded map[string]any
	dec := json.NewDecoder(bytes.NewReader(e.EventData))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&decoded))
	c, err := integrity.Commit(vectorKey, nil, e.ActorID, &ip, decoded)
	require.NoError(t, err)
	kept, err := json.Marshal(integrity.MembersOf(vectorKey, nil, c.Digests, []string{"/actor_ip", "/event_data/payload/recipient"}))
	require.NoError(t, err)
	e.ActorIP, e.HashSalt, e.Members = nil, nil, kept
	e.EventData = []byte(`{"operation":"message.sent","payload":{"attempts":2},"service":"notification","source_payload":{"from":"alice"},"status":"success","version":"1.0"}`)
	got, err = e.Hash(integrity.HashVersionMembers)
	require.NoError(t, err)
	require.Equal(t, want, got, "erased")
}
