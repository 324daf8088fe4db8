package archive

// The cold tier: months older than HOT_MONTHS live as Parquet files in object storage and are
// queried in place. Its layout is a table of its own, beside the archive of expired months
// (audit_events/r<class>/<yyyy>/<mm>/, which jobs/restore and verify -archive keep reading as
// it is), so that engines reading Parquet on object storage use it without auditstore:
//
//	audit_events_cold/retention_class=<days>/month=<yyyy-mm>/part-<yyyymmddThhmmssZ>-<tag>-<nnnn>.parquet
//	audit_events_cold/_manifests/retention_class=<days>/month=<yyyy-mm>/part-....json
//
// Every file has the one schema ColdRow describes (ColdSchemaVersion), whatever its month. A
// month is cut into files of at most ColdOptions.FileRows events, each file holding a
// contiguous span of the month's time order; within a file rows are sorted by correlation_id,
// then event_timestamp, then event_id, in row groups of RowGroupRows with min/max statistics,
// a page index, and split-block bloom filters on correlation_id, actor_id, event_type and
// event_id. A correlation timeline therefore reads the one row group of a file whose
// correlation_id range and bloom filter admit it; a query by time reads the files of its span.
// A month may have several such runs of files (late events move on a later run). The
// manifests sit under _manifests, which Hive, Trino, Athena and Spark skip (a leading
// underscore), so the table's location holds Parquet files only.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ColdSchemaVersion is the version of the cold tier's file schema (ColdRow) and of its
// manifests. Renaming or retyping a column is a new version; adding an optional column is not.
const ColdSchemaVersion = 1

// ColdPrefix is the key prefix of the cold tier: the location of its table.
const ColdPrefix = "audit_events_cold"

// ColdRowOf returns the cold row of a stored event.
func ColdRowOf(e *audit.Event) ColdRow {
	r := ColdRow{
		CorrelationID: e.CorrelationID, EventTimestamp: e.EventTimestamp.UTC(), EventID: e.EventID,
		EventType: e.EventType, ActorID: e.ActorID, RetentionDays: int32(e.RetentionDays),
		ReceivedAt: e.ReceivedAt.UTC(), DurationMS: e.DurationMS, IsSensitive: e.IsSensitive,
		ActorIP: e.ActorIP, Version: e.Version, EventCategory: e.EventCategory,
		EventAction: e.EventAction, EventOutcome: e.EventOutcome, ActorType: e.ActorType,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, ResourceName: e.ResourceName,
		TraceID: e.TraceID, SpanID: e.SpanID, Namespace: e.Namespace, ClusterID: e.ClusterID,
		Severity: e.Severity, ErrorCode: e.ErrorCode, ErrorMessage: e.ErrorMessage,
		SubmittedBy: e.SubmittedBy, ContentHash: e.ContentHash, HashVersion: int32(e.HashVersion),
		EventData: e.EventData,
	}
	if len(e.EventHash) > 0 {
		r.EventHash = []byte(e.EventHash)
	}
	r.HashSalt = e.HashSalt
	if e.HashMembers != nil {
		m := string(e.HashMembers)
		r.HashMembers = &m
	}
	if e.ParentEventID != nil {
		s := e.ParentEventID.String()
		r.ParentEventID = &s
	}
	return r
}

// Event returns the stored event the row holds. Its byte slices are the row's own (a Parquet
// reader gives every row values of its own), not copies: an export holds a file's events at
// once, and the copies were a third of its heap.
func (r *ColdRow) Event() audit.Event {
	e := audit.Event{
		EventID: uuid.UUID(r.EventID), Version: r.Version, EventTimestamp: r.EventTimestamp.UTC(),
		EventType: r.EventType, EventCategory: r.EventCategory, EventAction: r.EventAction,
		EventOutcome: r.EventOutcome, CorrelationID: r.CorrelationID, ActorType: r.ActorType,
		ActorID: r.ActorID, ActorIP: r.ActorIP, ResourceType: r.ResourceType,
		ResourceID: r.ResourceID, ResourceName: r.ResourceName, TraceID: r.TraceID,
		SpanID: r.SpanID, Namespace: r.Namespace, ClusterID: r.ClusterID, Severity: r.Severity,
		DurationMS: r.DurationMS, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage,
		RetentionDays: int(r.RetentionDays), IsSensitive: r.IsSensitive,
		EventData: json.RawMessage(r.EventData), ReceivedAt: r.ReceivedAt.UTC(),
		SubmittedBy: r.SubmittedBy, ContentHash: r.ContentHash,
		HashVersion: int(r.HashVersion),
	}
	if len(r.EventHash) > 0 {
		e.EventHash = r.EventHash
	}
	if len(r.HashSalt) > 0 {
		e.HashSalt = r.HashSalt
	}
	if r.HashMembers != nil {
		e.HashMembers = json.RawMessage(*r.HashMembers)
		e.Erased = audit.ErasedMembers(e.HashMembers)
	}
	if r.ParentEventID != nil {
		if p, err := uuid.Parse(*r.ParentEventID); err == nil {
			e.ParentEventID = &p
		}
	}
	return e
}

// appendCanonical appends the row's values in a fixed encoding (as Row.AppendCanonical does
// for the expired-month archive): a file's rows_sha256 is computed over it, so a digest taken
// while writing and one over the rows read back agree only if every value came back.
func (r *ColdRow) appendCanonical(b []byte) []byte {
	e := r.Event()
	row, _ := RowOf(&e) // content_hash is always 32 bytes for a stored event
	b = row.AppendCanonical(b)
	b = append(b, byte(len(r.EventHash)))
	b = append(b, r.EventHash...)
	return append(b, byte(r.HashVersion))
}

// compareCold orders rows as a cold file holds them: correlation_id, event_timestamp, event_id.
func compareCold(a, b *ColdRow) int {
	return cmp.Or(strings.Compare(a.CorrelationID, b.CorrelationID),
		a.EventTimestamp.Compare(b.EventTimestamp), bytes.Compare(a.EventID[:], b.EventID[:]))
}

// ColdOptions shape a cold write.
type ColdOptions struct {
	// FileRows is how many events one file holds at most (default 8,192). A file is also the
	// unit a read in time order (an export, a filter without correlation_id) sorts in memory,
	// so it bounds the memory of such a read: at 32,768 an export's peak RSS was 272 MiB.
	FileRows int
	// RowGroupRows is how many events make a row group (default 2,048): the unit a lookup
	// reads after its statistics and bloom filter admitted it.
	RowGroupRows int
	// Level is the zstd level (default zstd.SpeedDefault).
	Level zstd.Level
}

func (o ColdOptions) withDefaults() ColdOptions {
	o.FileRows = cmp.Or(o.FileRows, 8192)
	o.RowGroupRows = cmp.Or(o.RowGroupRows, 2048)
	o.Level = cmp.Or(o.Level, zstd.SpeedDefault)
	return o
}

// ColdFile is one file of the cold tier, as its manifest and the catalogue describe it.
type ColdFile struct {
	SchemaVersion int    `json:"schema_version"`
	Key           string `json:"key"`
	Class         int    `json:"retention_days"`
	// Month is the first day of the month, YYYY-MM-DD.
	Month             string    `json:"month"`
	Rows              int64     `json:"rows"`
	Bytes             int64     `json:"bytes"`
	SHA256            string    `json:"sha256"`
	RowsSHA256        string    `json:"rows_sha256"`
	MinEventTimestamp time.Time `json:"min_event_timestamp"`
	MaxEventTimestamp time.Time `json:"max_event_timestamp"`
	MinCorrelationID  string    `json:"min_correlation_id"`
	MaxCorrelationID  string    `json:"max_correlation_id"`
	CreatedAt         time.Time `json:"created_at"`
	// LookupFilter is the file's lookup filter (LookupProbe), for the catalogue; the manifest
	// leaves it out, as it is computed again from the file.
	LookupFilter []byte `json:"-"`
}

// MonthStart is the first instant of the file's month.
func (f *ColdFile) MonthStart() time.Time {
	t, _ := time.Parse(time.DateOnly, f.Month)
	return t
}

// ColdDir is the key prefix of a class's month in the cold tier.
func ColdDir(class int, month time.Time) string {
	return fmt.Sprintf("%s/retention_class=%d/month=%s", ColdPrefix, class, month.UTC().Format("2006-01"))
}

// ColdManifestKey is the key of a cold file's manifest.
func ColdManifestKey(key string) string {
	rel := strings.TrimPrefix(key, ColdPrefix+"/")
	return path.Join(ColdPrefix, "_manifests", strings.TrimSuffix(rel, ".parquet")+".json")
}

var coldKey = regexp.MustCompile(`^audit_events_cold/retention_class=([0-9]+)/month=([0-9]{4}-[0-9]{2})/part-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}-[0-9]{4}\.parquet$`)

// Cold reads and writes the cold tier of a bucket.
type Cold struct {
	bucket *blob.Bucket
	opts   ColdOptions
	codec  *zstd.Codec
}

// NewCold returns the cold tier of an open bucket (archive.OpenBucket); Close closes it.
func NewCold(b *blob.Bucket, opts ColdOptions) *Cold {
	opts = opts.withDefaults()
	return &Cold{bucket: b, opts: opts, codec: &zstd.Codec{Level: opts.Level}}
}

// Close closes the bucket.
func (c *Cold) Close() error { return c.bucket.Close() }

// Bucket is the bucket the tier is in.
func (c *Cold) Bucket() *blob.Bucket { return c.bucket }

// WriteMonth writes events — one class's month, in (event_timestamp, event_id) order, as
// store.StreamLeaf sends them — as cold files of at most FileRows events and one UTC day each,
// so every file holds a contiguous stretch of the month; each file is sorted for lookups, read
// back and checked (size, SHA-256, rows and their digest) and given a manifest. Only one file's rows
// are in memory at a time. The caller records the returned files and only then drops the
// partition; on error, files already written are deleted.
func (c *Cold) WriteMonth(ctx context.Context, class int, month time.Time, stream func(fn func(*audit.Event) error) (int64, error)) (files []ColdFile, err error) {
	// A run's files are told apart from another's (late events of the same month) by the
	// time and a random tag.
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, err
	}
	stamp := time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(tag[:])
	dir := ColdDir(class, month)
	var w *coldWriter
	defer func() {
		if w != nil {
			w.abort()
		}
		if err != nil {
			for _, f := range files {
				_ = c.Delete(context.WithoutCancel(ctx), f.Key)
			}
			files = nil
		}
	}()
	finish := func() error {
		f, err := w.close()
		w = nil
		if err != nil {
			return err
		}
		f.Class, f.Month = class, month.Format(time.DateOnly)
		files = append(files, f)
		if err := c.Check(ctx, f); err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		body, _ := json.MarshalIndent(f, "", "  ")
		if err := c.bucket.WriteAll(ctx, ColdManifestKey(f.Key), append(body, '\n'), &blob.WriterOptions{ContentType: "application/json"}); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
		return nil
	}
	monthEnd := month.AddDate(0, 1, 0)
	var rows int64
	n, err := stream(func(e *audit.Event) error {
		if e.RetentionDays != class || e.EventTimestamp.Before(month) || !e.EventTimestamp.Before(monthEnd) {
			return fmt.Errorf("event %s (class %d, %s) is not of class %d and month %s", e.EventID, e.RetentionDays, e.EventTimestamp, class, month.Format("2006-01"))
		}
		if w != nil && !sameDay(w.buf[0].EventTimestamp, e.EventTimestamp) {
			// A file holds one UTC day at most: a read in time order (an export) holds each
			// file's events until the next file begins, so a sparse class's file spanning a
			// week made it hold a week of that class beside every denser file it overlapped.
			if err := finish(); err != nil {
				return err
			}
		}
		if w == nil {
			key := path.Join(dir, fmt.Sprintf("part-%s-%04d.parquet", stamp, len(files)))
			if w, err = c.newColdWriter(ctx, key); err != nil {
				return err
			}
		}
		rows++
		w.add(ColdRowOf(e))
		if len(w.buf) == c.opts.FileRows {
			return finish()
		}
		return nil
	})
	if err == nil && w != nil {
		err = finish()
	}
	if err != nil {
		return nil, fmt.Errorf("cold %s: %w", dir, err)
	}
	if n != rows {
		return nil, fmt.Errorf("cold %s: the store sent %d events but counted %d", dir, rows, n)
	}
	return files, nil
}

func sameDay(a, b time.Time) bool {
	a, b = a.UTC(), b.UTC()
	return a.YearDay() == b.YearDay() && a.Year() == b.Year()
}

// Check reads a cold file back and compares it with f: size, SHA-256, row count and the
// digest of its values. A mismatch is ErrVerify naming the file's key.
func (c *Cold) Check(ctx context.Context, f ColdFile) error { return c.Scan(ctx, f, nil) }

// Scan reads a cold file whole, calling fn (when set) for every row, and checks it as Check
// does; the rows are only to be trusted when it returns nil.
func (c *Cold) Scan(ctx context.Context, f ColdFile, fn func(*ColdRow) error) error {
	r, err := c.bucket.NewReader(ctx, f.Key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return fmt.Errorf("%w: %s is missing", ErrVerify, f.Key)
		}
		return fmt.Errorf("read %s: %w", f.Key, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(&buf, h), r); err != nil {
		return fmt.Errorf("read %s: %w", f.Key, err)
	}
	if int64(buf.Len()) != f.Bytes {
		return fmt.Errorf("%w: %s has %d bytes, the catalogue says %d", ErrVerify, f.Key, buf.Len(), f.Bytes)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the catalogue says %s", ErrVerify, f.Key, sum, f.SHA256)
	}
	rows, digest := int64(0), sha256.New()
	var canon []byte
	err = ReadColdRows(bytes.NewReader(buf.Bytes()), int64(buf.Len()), func(r *ColdRow) error {
		canon = r.appendCanonical(canon[:0])
		digest.Write(canon)
		rows++
		if fn != nil {
			return fn(r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrVerify, f.Key, err)
	}
	if d := hex.EncodeToString(digest.Sum(nil)); rows != f.Rows || d != f.RowsSHA256 {
		return fmt.Errorf("%w: %s holds %d rows (digest %s), the catalogue says %d (digest %s)", ErrVerify, f.Key, rows, d, f.Rows, f.RowsSHA256)
	}
	return nil
}

// ReadColdRows calls fn for every row of a cold file, in file order; a row is valid until fn
// returns. A malformed file is an error, never a panic.
func ReadColdRows(ra io.ReaderAt, size int64, fn func(*ColdRow) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed parquet file: %v", p)
		}
	}()
	pf, err := parquet.OpenFile(ra, size, parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true))
	if err != nil {
		return err
	}
	rd := parquet.NewGenericReader[ColdRow](pf)
	defer rd.Close()
	batch := make([]ColdRow, 256)
	for {
		clear(batch)
		n, err := rd.Read(batch)
		for i := range batch[:n] {
			if err := fn(&batch[i]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Delete removes a cold file and its manifest; one already gone is not an error.
func (c *Cold) Delete(ctx context.Context, key string) error {
	for _, k := range []string{key, ColdManifestKey(key)} {
		if err := c.bucket.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	return nil
}

// Manifests lists the manifests of the cold tier (what verify -archive checks without the
// database).
func (c *Cold) Manifests(ctx context.Context) ([]ColdFile, error) {
	var out []ColdFile
	it := c.bucket.List(&blob.ListOptions{Prefix: ColdPrefix + "/_manifests/"})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list cold manifests: %w", err)
		}
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		body, err := c.bucket.ReadAll(ctx, o.Key)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", o.Key, err)
		}
		var f ColdFile
		if err := json.Unmarshal(body, &f); err != nil {
			return nil, fmt.Errorf("%w: manifest %s: %v", ErrVerify, o.Key, err)
		}
		if !coldKey.MatchString(f.Key) || ColdManifestKey(f.Key) != o.Key {
			return nil, fmt.Errorf("%w: manifest %s names the file %q, not its own", ErrVerify, o.Key, f.Key)
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseColdKey returns the class and month of a cold file's key.
func ParseColdKey(key string) (class int, month time.Time, ok bool) {
	m := coldKey.FindStringSubmatch(key)
	if m == nil {
		return 0, time.Time{}, false
	}
	class, _ = strconv.Atoi(m[1])
	month, err := time.Parse("2006-01", m[2])
	return class, month, err == nil
}

type coldWriter struct {
	key    string
	cancel context.CancelFunc
	blob   *blob.Writer
	out    *hashWriter
	pq     *parquet.GenericWriter[ColdRow]
	buf    []ColdRow
}

func (c *Cold) newColdWriter(ctx context.Context, key string) (*coldWriter, error) {
	wctx, cancel := context.WithCancel(ctx)
	bw, err := c.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	out := &hashWriter{w: bw, h: sha256.New()}
	return &coldWriter{key: key, cancel: cancel, blob: bw, out: out, buf: make([]ColdRow, 0, c.opts.FileRows),
		pq: parquet.NewGenericWriter[ColdRow](out,
			parquet.Compression(c.codec),
			parquet.MaxRowsPerRowGroup(int64(c.opts.RowGroupRows)),
			parquet.PageBufferSize(64<<10),
			parquet.DataPageStatistics(true),
			parquet.SortingWriterConfig(parquet.SortingColumns(
				parquet.Ascending("correlation_id"), parquet.Ascending("event_timestamp"), parquet.Ascending("event_id"))),
			parquet.BloomFilters(
				parquet.SplitBlockFilter(10, "correlation_id"),
				parquet.SplitBlockFilter(10, "actor_id"),
				parquet.SplitBlockFilter(10, "event_type"),
				parquet.SplitBlockFilter(10, "event_id")),
			parquet.CreatedBy("auditstore", fmt.Sprintf("cold schema %d", ColdSchemaVersion), ""),
			parquet.KeyValueMetadata("auditstore.cold_schema_version", strconv.Itoa(ColdSchemaVersion)),
		)}, nil
}

// add buffers a row: a file's rows are sorted when it is closed (the store sends a month in
// time order, which decides the files; the order within a file is the lookup order).
func (w *coldWriter) add(r ColdRow) { w.buf = append(w.buf, r) }

func (w *coldWriter) close() (ColdFile, error) {
	defer w.cancel()
	slices.SortFunc(w.buf, func(a, b ColdRow) int { return compareCold(&a, &b) })
	h := sha256.New()
	var canon []byte
	lv := lookupValues{}
	f := ColdFile{SchemaVersion: ColdSchemaVersion, Key: w.key, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	for i := range w.buf {
		r := &w.buf[i]
		canon = r.appendCanonical(canon[:0])
		h.Write(canon)
		lv.add(r)
		if i == 0 || r.EventTimestamp.Before(f.MinEventTimestamp) {
			f.MinEventTimestamp = r.EventTimestamp
		}
		if r.EventTimestamp.After(f.MaxEventTimestamp) {
			f.MaxEventTimestamp = r.EventTimestamp
		}
	}
	if len(w.buf) > 0 {
		f.MinCorrelationID, f.MaxCorrelationID = w.buf[0].CorrelationID, w.buf[len(w.buf)-1].CorrelationID
	}
	for start := 0; start < len(w.buf); start += 1024 {
		if _, err := w.pq.Write(w.buf[start:min(start+1024, len(w.buf))]); err != nil {
			w.abort()
			return ColdFile{}, fmt.Errorf("write %s: %w", w.key, err)
		}
	}
	f.Rows = int64(len(w.buf))
	f.LookupFilter = lookupFilter(lv)
	w.buf = nil
	if err := w.pq.Close(); err != nil {
		w.abort()
		return ColdFile{}, fmt.Errorf("write %s: %w", w.key, err)
	}
	if err := w.blob.Close(); err != nil {
		return ColdFile{}, fmt.Errorf("write %s: %w", w.key, err)
	}
	f.Bytes, f.SHA256, f.RowsSHA256 = w.out.n, hex.EncodeToString(w.out.h.Sum(nil)), hex.EncodeToString(h.Sum(nil))
	return f, nil
}

func (w *coldWriter) abort() {
	w.cancel()
	_ = w.blob.Close()
}
