package ledger

import (
	"errors"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
)

// Config is the tamper-evidence configuration of the processes that seal or verify.
type Config struct {
	// SigningKey signs checkpoints: an Ed25519 private key, PEM (PKCS #8) or base64 of its
	// 32-byte seed, from a Secret. Without it checkpoints are stored unsigned.
	SigningKey string `envconfig:"INTEGRITY_SIGNING_KEY"`
	// PublicKeys are more trusted checkpoint keys (base64 of 32 bytes, comma-separated): the
	// keys of earlier, rotated signing keys, and the only keys a verifier without the
	// signing key has.
	PublicKeys []string `envconfig:"INTEGRITY_PUBLIC_KEYS"`
	// SealInterval is how often the sealer appends new events to the log: the bound between a
	// write and its seal (plus the time one seal takes).
	SealInterval time.Duration `envconfig:"SEAL_INTERVAL" default:"10s"`
	// SealBatch bounds the events of one checkpoint (DefaultSealBatch).
	SealBatch int `envconfig:"SEAL_BATCH" default:"20000"`
	// VerifyInterval is how often the maintain function verifies the whole store against the
	// log (0: never; jobs/verify or POST /api/v1/maintenance/verify then do it). Its outcome is
	// the audit_integrity_* metrics the alerts watch.
	VerifyInterval time.Duration `envconfig:"VERIFY_INTERVAL" default:"24h"`
	// CheckpointURL, when set, is a gocloud.dev/blob URL (file://, s3://, gs://, azblob://)
	// where every new checkpoint is also written, so a copy lives outside the database.
	CheckpointURL string `envconfig:"CHECKPOINT_URL"`
	// SealReplicas are the standbys that must have flushed an event before it is sealed (and
	// a checkpoint before it is copied to CHECKPOINT_URL): sync (the synchronous standbys, when
	// synchronous replication is configured), all (every streaming standby) or none. Reading
	// their positions needs pg_read_all_stats.
	SealReplicas string `envconfig:"INTEGRITY_SEAL_REPLICAS" default:"sync"`
}

// Keys parses the configured keys: the signer (nil without a signing key) and every trusted
// public key, the signer's first.
func (c Config) Keys() (*integrity.Signer, []integrity.PublicKey, error) {
	if c.SealInterval <= 0 {
		return nil, nil, errors.New("SEAL_INTERVAL must be positive")
	}
	if c.VerifyInterval < 0 {
		return nil, nil, errors.New("VERIFY_INTERVAL must not be negative")
	}
	if c.SealBatch < 1 {
		return nil, nil, errors.New("SEAL_BATCH must be at least 1")
	}
	if _, err := store.ParseReplicas(c.SealReplicas); err != nil {
		return nil, nil, fmt.Errorf("INTEGRITY_SEAL_REPLICAS: %w", err)
	}
	return ParseKeys(c.SigningKey, c.PublicKeys)
}

// DefaultSealBatch is SEAL_BATCH's default. A seal has a fixed cost of about 8 ms (its
// transaction, the log's right edge, the nodes, a signed checkpoint): 1.6 µs an event at 5000
// events a seal, a tenth of the tamper evidence's whole cost per event.
const DefaultSealBatch = 20000

// Replicas is SealReplicas parsed (Keys has checked it).
func (c Config) Replicas() store.Replicas {
	r, _ := store.ParseReplicas(c.SealReplicas)
	return r
}
