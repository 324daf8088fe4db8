package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// HashVersion is the version of the event encoding EventHash implements; it is stored with
// every hash so that a later encoding does not invalidate history.
const HashVersion = 1

// ExcludedFields are the members of an event's JSON form that its hash does not cover: the
// integrity fields themselves.
var ExcludedFields = []string{"event_hash", "hash_version", "integrity"}

// Hash is a SHA-256 digest.
type Hash [sha256.Size]byte

// String is the lowercase hexadecimal form used in the API.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as lowercase hexadecimal.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hash from hexadecimal.
func (h *Hash) UnmarshalText(b []byte) error {
	parsed, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = parsed
	return nil
}

// ParseHash decodes a hexadecimal SHA-256 digest.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not a SHA-256 digest in hexadecimal (64 digits)", s)
	}
	copy(h[:], b)
	return h, nil
}

// HashFromBytes copies a 32-byte digest; any other length is an error.
func HashFromBytes(b []byte) (Hash, error) {
	var h Hash
	if len(b) != len(h) {
		return h, fmt.Errorf("a SHA-256 digest has %d bytes, not %d", len(h), len(b))
	}
	copy(h[:], b)
	return h, nil
}

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
	v, err := parse(eventJSON)
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

// LeafHash is the RFC 9162 hash of a leaf whose data is an event hash: SHA-256(0x00 || data).
func LeafHash(eventHash Hash) Hash {
	var b [1 + len(eventHash)]byte
	copy(b[1:], eventHash[:])
	return sha256.Sum256(b[:])
}

// NodeHash is the RFC 9162 hash of an interior node: SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	var b [1 + 2*len(left)]byte
	b[0] = 1
	copy(b[1:], left[:])
	copy(b[1+len(left):], right[:])
	return sha256.Sum256(b[:])
}

// EmptyRoot is the root of the tree with no leaves: SHA-256 of the empty string.
var EmptyRoot = Hash(sha256.Sum256(nil))
