package integrity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

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
