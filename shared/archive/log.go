package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// LeavesName is the file, beside the manifest, that holds the integrity log's leaves of the
// archived partition's range.
const LeavesName = "leaves.bin"

// leafRecordSize is one leaf in leaves.bin: integrity's record, the leaf index implicit
// (first_leaf + position).
const leafRecordSize = integrity.LeafRecordSize

// LogRange ties an archive to the integrity log, so it can be verified offline: the range
// proof of the leaves from the partition's first to its last against a signed checkpoint, and
// the file of those leaves.
type LogRange struct {
	integrity.RangeProof
	// Leaves is leaves.bin (its Rows are the leaves, RowsSHA256 unused).
	Leaves File `json:"leaves"`
}

// LogSource is what a Source also implements to tie archives to the integrity log
// (store.Store does).
type LogSource interface {
	StreamLogRange(ctx context.Context, class int, from, to time.Time, fn func(integrity.LogLeaf) error) (integrity.RangeProof, error)
}

// writeLog writes leaves.bin and returns the manifest's log range; nil when the partition has
// no sealed event.
func (a *Archive) writeLog(ctx context.Context, p Partition, src LogSource) (*LogRange, error) {
	key := p.fileKey(LeavesName)
	w, err := a.bucket.NewWriter(ctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	h := sha256.New()
	out := io.MultiWriter(w, h)
	var n, size int64
	rec := make([]byte, 0, leafRecordSize)
	rp, err := src.StreamLogRange(ctx, p.Class, p.Month, p.Month.AddDate(0, 1, 0), func(l integrity.LogLeaf) error {
		n++
		size += leafRecordSize
		_, err := out.Write(l.AppendRecord(rec[:0]))
		return err
	})
	if err != nil {
		w.Close() //nolint:errcheck // the error that matters is err
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	if rp.End == rp.First {
		return nil, nil
	}
	lr := &LogRange{RangeProof: rp, Leaves: File{Name: LeavesName, Bytes: size, SHA256: hex.EncodeToString(h.Sum(nil)), Rows: n}}
	if _, err := a.ReadLog(ctx, p, lr); err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	return lr, nil
}

// ReadLog reads an archive's leaves.bin, checked against its size and checksum.
func (a *Archive) ReadLog(ctx context.Context, p Partition, lr *LogRange) ([]integrity.LogLeaf, error) {
	key := p.fileKey(lr.Leaves.Name)
	b, err := a.bucket.ReadAll(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("%w: %s is missing", ErrVerify, key)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	sum := sha256.Sum256(b)
	switch {
	case int64(len(b)) != lr.Leaves.Bytes:
		return nil, fmt.Errorf("%w: %s has %d bytes, the manifest says %d", ErrVerify, key, len(b), lr.Leaves.Bytes)
	case hex.EncodeToString(sum[:]) != lr.Leaves.SHA256:
		return nil, fmt.Errorf("%w: %s differs from its checksum", ErrVerify, key)
	case uint64(len(b)/leafRecordSize) != lr.End-lr.First || len(b)%leafRecordSize != 0:
		return nil, fmt.Errorf("%w: %s does not hold the %d leaves of [%d, %d)", ErrVerify, key, lr.End-lr.First, lr.First, lr.End)
	}
	out := make([]integrity.LogLeaf, 0, len(b)/leafRecordSize)
	for off := 0; off < len(b); off += leafRecordSize {
		out = append(out, integrity.ParseRecord(lr.First+uint64(len(out)), b[off:]))
	}
	return out, nil
}

var manifestKey = regexp.MustCompile(`^audit_events/r([0-9]+)/([0-9]{4})/([0-9]{2})/manifest\.json$`)

// Partitions lists the archived partitions (those with a manifest), in key order.
func (a *Archive) Partitions(ctx context.Context) ([]Partition, error) {
	var out []Partition
	it := a.bucket.List(&blob.ListOptions{Prefix: "audit_events/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list archive: %w", err)
		}
		m := manifestKey.FindStringSubmatch(obj.Key)
		if m == nil {
			continue
		}
		p, err := ParsePartition("audit_events_r" + m[1] + "_" + m[2] + "_" + m[3])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
}
