package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/auditstore/auditstore/shared/integrity"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Copies keeps checkpoints outside the database, one JSON object per checkpoint under
// checkpoints/ in a bucket.
type Copies struct {
	bucket *blob.Bucket
}

// OpenCopies opens the bucket at a gocloud.dev/blob URL.
func OpenCopies(ctx context.Context, rawURL string) (*Copies, error) {
	b, err := OpenBucket(ctx, rawURL)
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
