// Package deadletter keeps the deliveries a broker gave up on in a bucket (gocloud.dev/blob),
// apart from the database: a dead letter is taken while PostgreSQL is away, so the broker's
// last attempt never shares fate with the store it could not reach. Each dead letter is one
// object written before the sink answers; a replay is marked by a second object written only
// if it does not exist yet, so one replay is recorded whatever runs at once.
package deadletter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Object key prefixes: a dead letter, and the record of its replay.
const (
	letterPrefix = "deadletters/"
	replayPrefix = "replayed/"
)

// Bucket is a dead-letter quarantine in a bucket. It serves what the write function's sink and
// dead-letter API need (the methods of store.Store's dead letters, with the same errors).
type Bucket struct {
	bucket *blob.Bucket
	now    func() time.Time
	// marking serializes this process's replay records: file:// buckets check IfNotExist and
	// then rename, which two writers can both pass (s3, gs and azblob check atomically).
	marking sync.Mutex
}

// Open opens the quarantine at a gocloud.dev/blob URL (DEADLETTER_URL), e.g.
// file:///var/lib/auditstore/deadletters or s3://bucket?region=eu-west-1&prefix=deadletters/.
func Open(ctx context.Context, rawURL string) (*Bucket, error) {
	b, err := archive.OpenBucket(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("DEADLETTER_URL: %w", err)
	}
	return New(b), nil
}

// New returns a quarantine over an open bucket; Close closes the bucket.
func New(b *blob.Bucket) *Bucket { return &Bucket{bucket: b, now: time.Now} }

// Close closes the bucket.
func (q *Bucket) Close() error { return q.bucket.Close() }

func letterKey(id uuid.UUID) string { return letterPrefix + id.String() + ".json" }
func replayKey(id uuid.UUID) string { return replayPrefix + id.String() + ".json" }

// replay is the object that records a replay.
type replay struct {
	ReplayedAt time.Time `json:"replayed_at"`
	ReplayedBy string    `json:"replayed_by"`
}

// unavailable makes a bucket's failure the store's ErrUnavailable: the sink answers 503 and
// the broker tries again.
func unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, store.ErrUnavailable, err)
}

// InsertDeadLetter keeps d (DeadLetterID and ReceivedAt are set here; the id is a UUIDv7, so
// keys sort by arrival) and returns it as kept. It returns once the bucket has the object.
func (q *Bucket) InsertDeadLetter(ctx context.Context, d store.DeadLetter) (store.DeadLetter, error) {
	d.DeadLetterID = uuid.Must(uuid.NewV7())
	d.ReceivedAt = q.now().UTC()
	d.ReplayedAt, d.ReplayedBy = nil, nil
	b, err := json.Marshal(d)
	if err != nil {
		return store.DeadLetter{}, fmt.Errorf("keep dead letter: %w: %w", store.ErrInvalid, err)
	}
	if err := q.bucket.WriteAll(ctx, letterKey(d.DeadLetterID), b, &blob.WriterOptions{ContentType: "application/json", IfNotExist: true}); err != nil {
		return store.DeadLetter{}, unavailable("keep dead letter", err)
	}
	return d, nil
}

// GetDeadLetter returns one dead letter with its replay, or store.ErrNotFound.
func (q *Bucket) GetDeadLetter(ctx context.Context, id uuid.UUID) (store.DeadLetter, error) {
	d, err := q.read(ctx, id)
	if err != nil {
		return store.DeadLetter{}, err
	}
	return q.withReplay(ctx, d)
}

func (q *Bucket) read(ctx context.Context, id uuid.UUID) (store.DeadLetter, error) {
	b, err := q.bucket.ReadAll(ctx, letterKey(id))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return store.DeadLetter{}, fmt.Errorf("get dead letter %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.DeadLetter{}, unavailable("get dead letter "+id.String(), err)
	}
	var d store.DeadLetter
	if err := json.Unmarshal(b, &d); err != nil {
		return store.DeadLetter{}, fmt.Errorf("get dead letter %s: %w", id, err)
	}
	return d, nil
}

func (q *Bucket) withReplay(ctx context.Context, d store.DeadLetter) (store.DeadLetter, error) {
	b, err := q.bucket.ReadAll(ctx, replayKey(d.DeadLetterID))
	switch {
	case gcerrors.Code(err) == gcerrors.NotFound:
		return d, nil
	case err != nil:
		return store.DeadLetter{}, unavailable("get dead letter "+d.DeadLetterID.String(), err)
	}
	var r replay
	if err := json.Unmarshal(b, &r); err != nil {
		return store.DeadLetter{}, fmt.Errorf("dead letter %s: replay record: %w", d.DeadLetterID, err)
	}
	d.ReplayedAt, d.ReplayedBy = &r.ReplayedAt, &r.ReplayedBy
	return d, nil
}

// MarkDeadLetterReplayed records that by replayed the dead letter id: store.ErrNotFound when
// there is none, store.ErrReplayed when a replay was recorded before (also by a request at the
// same time: the record is written only if there is none).
func (q *Bucket) MarkDeadLetterReplayed(ctx context.Context, id uuid.UUID, by string) (store.DeadLetter, error) {
	d, err := q.read(ctx, id)
	if err != nil {
		return store.DeadLetter{}, err
	}
	q.marking.Lock()
	defer q.marking.Unlock()
	r := replay{ReplayedAt: q.now().UTC(), ReplayedBy: by}
	b, err := json.Marshal(r)
	if err != nil {
		return store.DeadLetter{}, err
	}
	err = q.bucket.WriteAll(ctx, replayKey(id), b, &blob.WriterOptions{ContentType: "application/json", IfNotExist: true})
	switch {
	case gcerrors.Code(err) == gcerrors.FailedPrecondition:
		return store.DeadLetter{}, fmt.Errorf("mark dead letter %s replayed: %w", id, store.ErrReplayed)
	case err != nil:
		return store.DeadLetter{}, unavailable("mark dead letter "+id.String()+" replayed", err)
	}
	d.ReplayedAt, d.ReplayedBy = &r.ReplayedAt, &r.ReplayedBy
	return d, nil
}

// ids lists the ids under prefix, in key order (oldest first for UUIDv7 ids), after after.
func (q *Bucket) ids(ctx context.Context, prefix string, after *uuid.UUID) ([]uuid.UUID, error) {
	var out []uuid.UUID
	it := q.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, unavailable("list dead letters", err)
		}
		id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), ".json"))
		if err != nil || obj.IsDir {
			continue // not ours
		}
		if after != nil && strings.Compare(id.String(), after.String()) <= 0 {
			continue
		}
		out = append(out, id)
	}
}

// ListDeadLetters returns the dead letters p selects, oldest first.
func (q *Bucket) ListDeadLetters(ctx context.Context, p store.DeadLetterParams) ([]store.DeadLetter, error) {
	ids, err := q.ids(ctx, letterPrefix, p.After)
	if err != nil {
		return nil, err
	}
	limit := cmp.Or(p.Limit, 100)
	var out []store.DeadLetter
	for _, id := range ids {
		if len(out) == limit {
			break
		}
		d, err := q.GetDeadLetter(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case p.Pending && d.ReplayedAt != nil,
			p.CEType != "" && (d.CEType == nil || *d.CEType != p.CEType),
			p.Since != nil && d.ReceivedAt.Before(*p.Since),
			p.Until != nil && !d.ReceivedAt.Before(*p.Until):
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// PendingDeadLetters counts the dead letters not replayed yet.
func (q *Bucket) PendingDeadLetters(ctx context.Context) (int64, error) {
	letters, err := q.ids(ctx, letterPrefix, nil)
	if err != nil {
		return 0, err
	}
	replayed, err := q.ids(ctx, replayPrefix, nil)
	if err != nil {
		return 0, err
	}
	return int64(len(letters) - len(replayed)), nil
}
