package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
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
	// SealBatch bounds the events of one checkpoint.
	SealBatch int `envconfig:"SEAL_BATCH" default:"5000"`
	// VerifyInterval is how often the maintain function verifies the whole store against the
	// log (0: never; jobs/verify or POST /api/v1/maintenance/verify then do it). Its outcome is
	// the audit_integrity_* metrics the alerts watch.
	VerifyInterval time.Duration `envconfig:"VERIFY_INTERVAL" default:"24h"`
	// CheckpointURL, when set, is a gocloud.dev/blob URL (file://, s3://, gs://, azblob://)
	// where every new checkpoint is also written, so a copy lives outside the database.
	CheckpointURL string `envconfig:"CHECKPOINT_URL"`
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
	return ParseKeys(c.SigningKey, c.PublicKeys)
}

// Copies keeps checkpoints outside the database, one JSON object per checkpoint under
// checkpoints/ in a bucket.
type Copies struct {
	bucket *blob.Bucket
}

// OpenCopies opens the bucket at a gocloud.dev/blob URL.
func OpenCopies(ctx context.Context, rawURL string) (*Copies, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("CHECKPOINT_URL: %w", err)
	}
	if q := u.Query(); u.Scheme == "file" && !q.Has("no_tmp_dir") {
		q.Set("no_tmp_dir", "true") // rename within the mounted volume
		u.RawQuery = q.Encode()
	}
	b, err := blob.DefaultURLMux().OpenBucketURL(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("CHECKPOINT_URL: %w", err)
	}
	return &Copies{bucket: b}, nil
}

// Close closes the bucket.
func (c *Copies) Close() error { return c.bucket.Close() }

func copyKey(size uint64) string { return fmt.Sprintf("checkpoints/%020d.json", size) }

// Put writes a checkpoint (again, if it is there: the same size has the same content).
func (c *Copies) Put(ctx context.Context, cp integrity.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	if err := c.bucket.WriteAll(ctx, copyKey(cp.TreeSize), b, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("checkpoint copy: %w", err)
	}
	return nil
}

// List reads every checkpoint kept in the bucket, smallest tree first.
func (c *Copies) List(ctx context.Context) ([]integrity.Checkpoint, error) {
	var out []integrity.Checkpoint
	it := c.bucket.List(&blob.ListOptions{Prefix: "checkpoints/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint copies: %w", err)
		}
		if obj.IsDir || !strings.HasSuffix(obj.Key, ".json") {
			continue
		}
		b, err := c.bucket.ReadAll(ctx, obj.Key)
		if gcerrors.Code(err) == gcerrors.NotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint copy %s: %w", obj.Key, err)
		}
		var cp integrity.Checkpoint
		if err := json.Unmarshal(b, &cp); err != nil {
			return nil, fmt.Errorf("checkpoint copy %s: %w", obj.Key, err)
		}
		out = append(out, cp)
	}
}
