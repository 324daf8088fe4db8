// Package archive keeps expired partitions of audit_events in object storage before they are
// dropped, and reads them back: one partition is written as Parquet files (one row per event,
// zstd) and a JSON manifest (row count, time range, SHA-256 of every file and of its rows)
// through gocloud.dev/blob, so file://, s3://, gs:// and azblob:// URLs all work.
//
// Keys are <bucket prefix>/audit_events/r<class>/<yyyy>/<mm>/part-NNN.parquet and, beside them,
// manifest.json. A write is checked before it counts: every file is read back, its SHA-256 and
// its rows (count and digest of the values) compared with what was written, and only then is the
// manifest written. A manifest therefore means a complete archive, and the maintenance run may
// drop the partition.
package archive

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"net/url"
	"os"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	// The schemes ARCHIVE_URL may name.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/s3blob"
)

// ErrNotArchived means a partition has no (complete) archive.
var ErrNotArchived = errors.New("not archived")

// ErrVerify means an archive did not read back as written: a file is missing, differs from its
// checksum, or holds other rows than the manifest says.
var ErrVerify = errors.New("archive verification failed")

// Options shape an Archive.
type Options struct {
	// FileRows is how many events go into one file at most (default 1,000,000: a few hundred
	// MB), which bounds the temporary disk a read-back needs.
	FileRows int64
	// RowGroupRows is how many events make one Parquet row group (default 50,000), which bounds
	// the memory a write needs.
	RowGroupRows int64
	// TempDir is where files are downloaded to be checked (default os.TempDir()).
	TempDir string
	// Level is the zstd level (default zstd.SpeedBetterCompression: an archive is written once).
	Level zstd.Level
}

// Archive is an archive location: a bucket of gocloud.dev/blob.
type Archive struct {
	bucket *blob.Bucket
	opts   Options
	codec  *zstd.Codec

	// afterFile, when set, runs after a file was uploaded and before it is read back (tests
	// corrupt it there).
	afterFile func(key string)
}

// Open opens the archive at a gocloud.dev/blob URL, e.g. file:///var/lib/auditstore-archive,
// s3://bucket?region=eu-west-1&prefix=audit/, gs://bucket, azblob://container. A file:// archive
// writes its temporary files beside the final ones (no_tmp_dir), so that renaming them into place
// works when the directory is a mounted volume and the system's temporary directory is not.
func Open(ctx context.Context, rawURL string, opts Options) (*Archive, error) {
	b, err := OpenBucket(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	return New(b, opts), nil
}

// OpenBucket opens the bucket at a gocloud.dev/blob URL (file://, s3://, gs://, azblob://). A
// file:// bucket writes its temporary files beside the final ones (no_tmp_dir), so that
// renaming them into place works when the directory is a mounted volume and the system's
// temporary directory is not.
func OpenBucket(ctx context.Context, rawURL string) (*blob.Bucket, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if q := u.Query(); u.Scheme == "file" && !q.Has("no_tmp_dir") {
		q.Set("no_tmp_dir", "true")
		u.RawQuery = q.Encode()
	}
	return blob.DefaultURLMux().OpenBucketURL(ctx, u)
}

// New returns an Archive over an open bucket; Close closes the bucket.
func New(b *blob.Bucket, opts Options) *Archive {
	opts.FileRows = cmp.Or(opts.FileRows, 1_000_000)
	opts.RowGroupRows = cmp.Or(opts.RowGroupRows, 50_000)
	opts.Level = cmp.Or(opts.Level, zstd.SpeedBetterCompression)
	return &Archive{bucket: b, opts: opts, codec: &zstd.Codec{Level: opts.Level}}
}

// Close closes the bucket.
func (a *Archive) Close() error { return a.bucket.Close() }

// Source streams the events of a partition (by name) ordered by event_timestamp and then
// event_id, and returns how many it sent: store.Store does.
type Source interface {
	StreamLeaf(ctx context.Context, leaf string, fn func(*audit.Event) error) (int64, error)
}

// Result is what Ensure found or wrote.
type Result struct {
	Manifest Manifest
	// Reused: a complete archive was already there and holds every event now in the partition.
	Reused bool
	// LeafRows is how many events the partition held when it was read: the caller compares it
	// with its own count before it removes anything.
	LeafRows int64
}

// Ensure makes sure p is archived: an existing archive is verified (every file read back) and
// reused when it holds every event now in the partition, value for value; with no archive, one
// is written. So a run stopped after archiving and before the drop converges, and a partition
// already cleared of its unheld events (legal hold) keeps the archive taken before the clearing.
// An archive that fails verification, or lacks an event the partition has, is an error: nothing
// is overwritten, and the caller keeps the partition.
func (a *Archive) Ensure(ctx context.Context, p Partition, src Source) (Result, error) {
	m, err := a.ReadManifest(ctx, p)
	if errors.Is(err, ErrNotArchived) {
		m, err := a.Write(ctx, p, src)
		return Result{Manifest: m, LeafRows: m.RowCount}, err
	}
	if err != nil {
		return Result{}, err
	}
	c, err := a.fetch(ctx, p, m)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	n, err := c.covers(ctx, src)
	if err != nil {
		return Result{}, err
	}
	return Result{Manifest: m, Reused: true, LeafRows: n}, nil
}

// Write archives p from src, replacing any incomplete archive of it: the files, each read back
// and checked, then the manifest. Memory stays bounded by a row group of each column.
func (a *Archive) Write(ctx context.Context, p Partition, src Source) (Manifest, error) {
	m := Manifest{FormatVersion: FormatVersion, Partition: p.Name, Class: p.Class, Month: p.monthString(),
		Format: "parquet", Compression: "zstd", Order: "event_timestamp, event_id", Files: []File{}}
	var (
		fw   *fileWriter
		prev Row
		rows int64
	)
	defer func() {
		if fw != nil {
			fw.abort()
		}
	}()
	monthEnd := p.Month.AddDate(0, 1, 0)
	n, err := src.StreamLeaf(ctx, p.Name, func(e *audit.Event) error {
		r, err := RowOf(e)
		if err != nil {
			return err
		}
		switch {
		case int(r.RetentionDays) != p.Class:
			return fmt.Errorf("event %s has retention_days %d, not the class %d of %s", e.EventID, r.RetentionDays, p.Class, p.Name)
		case r.EventTimestamp.Before(p.Month) || !r.EventTimestamp.Before(monthEnd):
			return fmt.Errorf("event %s at %s is outside the month of %s", e.EventID, r.EventTimestamp, p.Name)
		case rows > 0 && compareRows(&prev, &r) >= 0:
			return fmt.Errorf("events are not in (event_timestamp, event_id) order at %s", e.EventID)
		}
		if fw == nil {
			if fw, err = a.newFileWriter(ctx, p, fmt.Sprintf("part-%03d.parquet", len(m.Files))); err != nil {
				return err
			}
		}
		if err := fw.add(&r); err != nil {
			return err
		}
		if rows == 0 {
			m.MinEventTimestamp = &r.EventTimestamp
		}
		prev, rows = r, rows+1
		if fw.rows == a.opts.FileRows {
			f, err := fw.close()
			fw = nil
			if err != nil {
				return err
			}
			m.Files = append(m.Files, f)
		}
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("archive %s: %w", p.Name, err)
	}
	if fw != nil {
		f, err := fw.close()
		fw = nil
		if err != nil {
			return Manifest{}, fmt.Errorf("archive %s: %w", p.Name, err)
		}
		m.Files = append(m.Files, f)
	}
	if n != rows {
		return Manifest{}, fmt.Errorf("archive %s: the store sent %d events but counted %d", p.Name, rows, n)
	}
	m.RowCount = rows
	if rows > 0 {
		last := prev.EventTimestamp
		m.MaxEventTimestamp = &last
	}

	// Read back what was written before anything may rely on it.
	for _, f := range m.Files {
		if a.afterFile != nil {
			a.afterFile(p.fileKey(f.Name))
		}
		path, err := a.download(ctx, p, f)
		if path != "" {
			os.Remove(path) //nolint:errcheck // a temporary file
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("archive %s: read back: %w", p.Name, err)
		}
	}
	if ls, ok := src.(LogSource); ok {
		if m.Log, err = a.writeLog(ctx, p, ls); err != nil {
			return Manifest{}, fmt.Errorf("archive %s: %w", p.Name, err)
		}
	}
	m.CreatedAt = time.Now().UTC().Truncate(time.Millisecond)
	body, err := marshalManifest(m)
	if err != nil {
		return Manifest{}, fmt.Errorf("archive %s: %w", p.Name, err)
	}
	if err := a.bucket.WriteAll(ctx, p.ManifestKey(), body, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return Manifest{}, fmt.Errorf("archive %s: write manifest: %w", p.Name, err)
	}
	back, err := a.ReadManifest(ctx, p)
	if err != nil {
		return Manifest{}, fmt.Errorf("archive %s: read back manifest: %w", p.Name, err)
	}
	if got, _ := marshalManifest(back); string(got) != string(body) {
		return Manifest{}, fmt.Errorf("archive %s: %w: the manifest read back differs from the one written", p.Name, ErrVerify)
	}
	return m, nil
}

// ReadManifest returns p's manifest, or ErrNotArchived.
func (a *Archive) ReadManifest(ctx context.Context, p Partition) (Manifest, error) {
	body, err := a.bucket.ReadAll(ctx, p.ManifestKey())
	if gcerrors.Code(err) == gcerrors.NotFound {
		return Manifest{}, fmt.Errorf("%s: %w", p.Name, ErrNotArchived)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest of %s: %w", p.Name, err)
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return Manifest{}, fmt.Errorf("read manifest %s: %w: %v", p.ManifestKey(), ErrVerify, err)
	}
	if err := m.check(p); err != nil {
		return Manifest{}, fmt.Errorf("read manifest %s: %w: %v", p.ManifestKey(), ErrVerify, err)
	}
	return m, nil
}

// Fetch downloads p's archive into temporary files and verifies every file against the
// manifest (size, SHA-256, row count, digest of the rows); Copy reads the events. Close the
// Copy to remove the files.
func (a *Archive) Fetch(ctx context.Context, p Partition) (*Copy, error) {
	m, err := a.ReadManifest(ctx, p)
	if err != nil {
		return nil, err
	}
	return a.fetch(ctx, p, m)
}

func (a *Archive) fetch(ctx context.Context, p Partition, m Manifest) (*Copy, error) {
	c := &Copy{Manifest: m}
	for _, f := range m.Files {
		path, err := a.download(ctx, p, f)
		if path != "" {
			c.paths = append(c.paths, path)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("archive %s: %w", p.Name, err)
		}
	}
	return c, nil
}

// download copies one file to a temporary file, hashing it on the way, and checks it against
// f. It returns the path of the temporary file, if it made one, also with an error.
func (a *Archive) download(ctx context.Context, p Partition, f File) (string, error) {
	key := p.fileKey(f.Name)
	r, err := a.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return "", fmt.Errorf("%w: %s is missing", ErrVerify, key)
		}
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	tmp, err := os.CreateTemp(a.opts.TempDir, "auditstore-archive-*.parquet")
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	defer tmp.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return tmp.Name(), fmt.Errorf("read %s: %w", key, err)
	}
	if size != f.Bytes {
		return tmp.Name(), fmt.Errorf("%w: %s has %d bytes, the manifest says %d", ErrVerify, key, size, f.Bytes)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return tmp.Name(), fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrVerify, key, sum, f.SHA256)
	}
	rows, digest, err := digestRows(tmp, size)
	if err != nil {
		return tmp.Name(), fmt.Errorf("%w: %s: %v", ErrVerify, key, err)
	}
	if rows != f.Rows || digest != f.RowsSHA256 {
		return tmp.Name(), fmt.Errorf("%w: %s holds %d rows (digest %s), the manifest says %d (digest %s)", ErrVerify, key, rows, digest, f.Rows, f.RowsSHA256)
	}
	return tmp.Name(), nil
}

// digestRows counts a Parquet file's rows and hashes their canonical encoding.
func digestRows(f *os.File, size int64) (int64, string, error) {
	h := sha256.New()
	var n int64
	var buf []byte
	for r, err := range readRows(f, size) {
		if err != nil {
			return n, "", err
		}
		buf = r.AppendCanonical(buf[:0])
		h.Write(buf)
		n++
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// readRows yields the rows of a Parquet file. A malformed file is an error, never a panic.
func readRows(f io.ReaderAt, size int64) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		stopped := false
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("malformed parquet file: %v", p)
				}
			}()
			pf, err := parquet.OpenFile(f, size)
			if err != nil {
				return err
			}
			rd := parquet.NewGenericReader[Row](pf)
			defer rd.Close()
			batch := make([]Row, 256)
			for {
				clear(batch)
				n, err := rd.Read(batch)
				for i := range batch[:n] {
					if !yield(&batch[i], nil) {
						stopped = true
						return nil
					}
				}
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
			}
		}()
		if err != nil && !stopped {
			yield(nil, err)
		}
	}
}

// Copy is a verified local copy of an archived partition.
type Copy struct {
	Manifest Manifest
	paths    []string
}

// Events yields the archived events in order (event_timestamp, event_id), stopping at the first
// error.
func (c *Copy) Events() iter.Seq2[*audit.Event, error] {
	return func(yield func(*audit.Event, error) bool) {
		for r, err := range c.rows() {
			if err != nil {
				yield(nil, err)
				return
			}
			e := r.Event()
			if !yield(&e, nil) {
				return
			}
		}
	}
}

// rows yields the archived rows in order; a row is valid until the next one.
func (c *Copy) rows() iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		for _, path := range c.paths {
			f, err := os.Open(path)
			if err != nil {
				yield(nil, err)
				return
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				yield(nil, err)
				return
			}
			for r, err := range readRows(f, st.Size()) {
				if err != nil || !yield(r, err) {
					if err != nil {
						yield(nil, err)
					}
					f.Close()
					return
				}
			}
			f.Close()
		}
	}
}

// Close removes the temporary files.
func (c *Copy) Close() error {
	var errs []error
	for _, p := range c.paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	c.paths = nil
	return errors.Join(errs...)
}

// covers checks that every event src now has for the partition is in the copy with the same
// values, walking both in their common order, and returns how many src had.
func (c *Copy) covers(ctx context.Context, src Source) (int64, error) {
	next, stop := iter.Pull2(c.rows())
	defer stop()
	var mine, theirs []byte
	n, err := src.StreamLeaf(ctx, c.Manifest.Partition, func(e *audit.Event) error {
		want, err := RowOf(e)
		if err != nil {
			return err
		}
		for {
			got, err, ok := next()
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: event %s of %s is not in its archive", ErrVerify, e.EventID, c.Manifest.Partition)
			}
			switch compareRows(got, &want) {
			case -1:
				continue // archived, since deleted from the partition (cleared)
			case 1:
				return fmt.Errorf("%w: event %s of %s is not in its archive", ErrVerify, e.EventID, c.Manifest.Partition)
			}
			mine, theirs = want.AppendCanonical(mine[:0]), got.AppendCanonical(theirs[:0])
			if string(mine) != string(theirs) {
				return fmt.Errorf("%w: event %s of %s differs from its archived copy", ErrVerify, e.EventID, c.Manifest.Partition)
			}
			return nil
		}
	})
	if err != nil {
		return n, fmt.Errorf("archive %s: %w", c.Manifest.Partition, err)
	}
	return n, nil
}

// compareRows orders rows as the archive does: event_timestamp, then event_id (bytes, as
// PostgreSQL orders uuid).
func compareRows(a, b *Row) int {
	if c := a.EventTimestamp.Compare(b.EventTimestamp); c != 0 {
		return c
	}
	for i := range a.EventID {
		if c := cmp.Compare(a.EventID[i], b.EventID[i]); c != 0 {
			return c
		}
	}
	return 0
}

// fileWriter writes one Parquet file to the bucket, hashing the bytes and the rows.
type fileWriter struct {
	name     string
	cancel   context.CancelFunc
	blob     *blob.Writer
	out      *hashWriter
	pq       *parquet.GenericWriter[Row]
	batch    []Row
	rows     int64
	rowsHash hash.Hash
	canon    []byte
}

func (a *Archive) newFileWriter(ctx context.Context, p Partition, name string) (*fileWriter, error) {
	// Cancelling the writer's context abandons the upload: no partial object is left behind.
	wctx, cancel := context.WithCancel(ctx)
	bw, err := a.bucket.NewWriter(wctx, p.fileKey(name), &blob.WriterOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("write %s: %w", p.fileKey(name), err)
	}
	out := &hashWriter{w: bw, h: sha256.New()}
	pq := parquet.NewGenericWriter[Row](out,
		parquet.Compression(a.codec),
		parquet.MaxRowsPerRowGroup(a.opts.RowGroupRows),
		parquet.CreatedBy("auditstore", fmt.Sprintf("archive format %d", FormatVersion), ""),
		parquet.KeyValueMetadata("auditstore.partition", p.Name),
		parquet.KeyValueMetadata("auditstore.format_version", fmt.Sprint(FormatVersion)),
	)
	return &fileWriter{name: name, cancel: cancel, blob: bw, out: out, pq: pq,
		batch: make([]Row, 0, 512), rowsHash: sha256.New()}, nil
}

func (w *fileWriter) add(r *Row) error {
	w.canon = r.AppendCanonical(w.canon[:0])
	w.rowsHash.Write(w.canon)
	w.batch = append(w.batch, *r)
	w.rows++
	if len(w.batch) == cap(w.batch) {
		return w.flush()
	}
	return nil
}

func (w *fileWriter) flush() error {
	if len(w.batch) == 0 {
		return nil
	}
	if _, err := w.pq.Write(w.batch); err != nil {
		return fmt.Errorf("write %s: %w", w.name, err)
	}
	clear(w.batch)
	w.batch = w.batch[:0]
	return nil
}

func (w *fileWriter) close() (File, error) {
	defer w.cancel()
	if err := w.flush(); err != nil {
		w.abort()
		return File{}, err
	}
	if err := w.pq.Close(); err != nil {
		w.abort()
		return File{}, fmt.Errorf("write %s: %w", w.name, err)
	}
	if err := w.blob.Close(); err != nil {
		return File{}, fmt.Errorf("write %s: %w", w.name, err)
	}
	return File{Name: w.name, Bytes: w.out.n, SHA256: hex.EncodeToString(w.out.h.Sum(nil)),
		Rows: w.rows, RowsSHA256: hex.EncodeToString(w.rowsHash.Sum(nil))}, nil
}

// abort abandons the upload.
func (w *fileWriter) abort() {
	w.cancel()
	_ = w.blob.Close() // reports the cancellation; the object is not created
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (h *hashWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
