package integrity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Checkpoint is a signed statement of the log's state: its size and root hash at a time.
// Every later checkpoint must extend it (a consistency proof shows that), so a signed
// checkpoint pins every event sealed before it.
type Checkpoint struct {
	TreeSize  uint64    `json:"tree_size"`
	RootHash  Hash      `json:"root_hash"`
	Timestamp time.Time `json:"timestamp"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"` // Ed25519 over SignedBody
}

// checkpointOrigin starts every signed body, so a signature over a checkpoint can be used for
// nothing else.
const checkpointOrigin = "auditstore.checkpoint.v1"

// SignedBody is the exact text the signature covers: the origin line, the tree size, the base64
// root hash and the timestamp in RFC 3339 UTC with nanoseconds, one per line (the shape of a
// C2SP signed note's body).
func (c Checkpoint) SignedBody() []byte {
	return []byte(checkpointOrigin + "\n" +
		strconv.FormatUint(c.TreeSize, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.RootHash[:]) + "\n" +
		c.Timestamp.UTC().Format(time.RFC3339Nano) + "\n")
}

// PublicKey is an Ed25519 public key that checkpoints are verified with.
type PublicKey = ed25519.PublicKey

// Signer signs checkpoints with an Ed25519 key.
type Signer struct {
	key ed25519.PrivateKey
}

// NewSigner wraps a private key.
func NewSigner(key ed25519.PrivateKey) *Signer { return &Signer{key: key} }

// PublicKey is the key that verifies the signer's checkpoints.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign fills in the key id and signature of c.
func (s *Signer) Sign(c Checkpoint) Checkpoint {
	c.Timestamp = c.Timestamp.UTC()
	c.KeyID = KeyID(s.PublicKey())
	c.Signature = ed25519.Sign(s.key, c.SignedBody())
	return c
}

// SignJSON signs a JSON document, an object or an array (anything else is refused and gets
// no signature). The checkpoint key signs these too, for answers a client verifies with the
// published key (a signed export); no checkpoint body begins as JSON does, so such a signature
// can never pass for a checkpoint's, nor a checkpoint's for a document's.
func (s *Signer) SignJSON(doc []byte) ([]byte, error) {
	if len(doc) == 0 || doc[0] != '{' && doc[0] != '[' {
		return nil, errors.New("only a JSON object or array is signed")
	}
	return ed25519.Sign(s.key, doc), nil
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hexadecimal.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Verify checks c's signature against the trusted keys.
func (c Checkpoint) Verify(keys []ed25519.PublicKey) error {
	for _, k := range keys {
		if KeyID(k) == c.KeyID {
			if ed25519.Verify(k, c.SignedBody(), c.Signature) {
				return nil
			}
			return fmt.Errorf("checkpoint of size %d: the signature does not verify with key %s", c.TreeSize, c.KeyID)
		}
	}
	return fmt.Errorf("checkpoint of size %d: signed with key %q, which is not a trusted key", c.TreeSize, c.KeyID)
}

// ParsePrivateKey reads an Ed25519 private key as a PEM "PRIVATE KEY" (PKCS #8, what
// `openssl genpkey -algorithm ed25519` writes) or as base64 of its 32-byte seed or 64-byte key.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM private key: %w", err)
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("PEM private key is a %T, not Ed25519", k)
		}
		return ed, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not a PEM private key nor base64")
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(b), nil
	}
	return nil, fmt.Errorf("base64 key has %d bytes; an Ed25519 seed has 32 and a private key 64", len(b))
}

// ParsePublicKey reads an Ed25519 public key as a PEM "PUBLIC KEY" (PKIX) or base64 of its
// 32 bytes.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM public key: %w", err)
		}
		ed, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("PEM public key is a %T, not Ed25519", k)
		}
		return ed, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("not a PEM public key nor base64 of 32 bytes")
	}
	return ed25519.PublicKey(b), nil
}

// MarshalPublicKey encodes a public key as PEM (PKIX), the form the API publishes.
func MarshalPublicKey(pub ed25519.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub) // cannot fail for an Ed25519 key
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
