// Package cold answers reads across the two tiers of audit events: the partitions of
// PostgreSQL (hot) and the Parquet files of months moved to object storage (cold, see
// shared/archive's cold layout). It plans a cold read from the catalogue (audit_cold_files,
// store.ColdFilesFor): PostgreSQL names the files whose time range meets the query and whose
// lookup filter may hold its correlation_id, actor_id or event_type, so a lookup's cost grows
// with the files that may hold its key, not with the cold tier; in them it reads only the row
// groups whose statistics and bloom filters admit it, in those only the pages whose
// correlation_id range does; then it merges the cold matches with the hot ones in the asked
// order, so pages, cursors, exports and lookups by id cross the boundary unseen.
//
// It also moves months to the cold tier, expires cold files and gives files written before
// lookup filters existed theirs, for the maintenance run (Mover).
package cold

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"
)

// Reader reads events from cold files. A lookup (a filter on correlation_id, actor_id or
// event_type, or an event id) opens a file once and keeps it open (footer, page index and bloom
// filters), within a bound on their number and their bytes, so a later lookup costs the reads of
// the pages it needs; which files it opens at all the catalogue decides (store.ColdFilesFor). A
// sweep (an export, a filter without such keys) reads each file whole in one request, decodes it
// from memory and keeps nothing, so its memory is that of one file and its matches.
type Reader struct {
	bucket *blob.Bucket
	// parallel is how many files a read opens and reads at once.
	parallel int

	mu        sync.Mutex
	open      map[string]*openFile
	order     []string // keys in open, least recently used first
	openBytes int64
	max       int
	// maxBytes bounds the bytes of footers, page indexes and bloom filters kept open.
	maxBytes int64

	stats struct{ opened, swept, requests, bytes atomic.Int64 }
}

// ReadStats counts what a Reader read from the bucket since it was made.
type ReadStats struct {
	// Opened is the files opened for lookups (their footers read), Swept the files read whole.
	Opened, Swept int64
	// Requests and Bytes are the range reads made and the bytes they returned.
	Requests, Bytes int64
}

// Stats returns what r read so far.
func (r *Reader) Stats() ReadStats {
	return ReadStats{Opened: r.stats.opened.Load(), Swept: r.stats.swept.Load(),
		Requests: r.stats.requests.Load(), Bytes: r.stats.bytes.Load()}
}

type openFile struct {
	pf   *parquet.File
	cols map[string]int
	// bytes is what opening it read: its footer, page index and bloom filters, what it holds.
	bytes int64
}

// DefaultOpenBytes is the default bound on the bytes of open files a Reader keeps.
const DefaultOpenBytes = 64 << 20

// NewReader reads the cold tier in bucket, keeping up to maxOpen files open (default 512) and at
// most DefaultOpenBytes of their footers, page indexes and bloom filters.
func NewReader(bucket *blob.Bucket, maxOpen int) *Reader {
	return &Reader{bucket: bucket, parallel: 8, open: map[string]*openFile{}, max: cmp.Or(maxOpen, 512), maxBytes: DefaultOpenBytes}
}

// ErrFileGone means a cold file the catalogue named was gone when read: an erasure or an expiry
// replaced or deleted it after the catalogue was read. It is store.ErrUnavailable (a 503 to
// retry): the read did not answer from a partial tier, and a new read of the catalogue heals it.
var ErrFileGone = fmt.Errorf("%w: a cold file was replaced or deleted while it was read", store.ErrUnavailable)

// blobReaderAt reads byte ranges of an object, counting them.
type blobReaderAt struct {
	r   *Reader
	key string
}

func (r blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rd, err := r.r.bucket.NewRangeReader(ctx, r.key, off, int64(len(p)), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return 0, fmt.Errorf("%w: %s: %w", ErrFileGone, r.key, err)
	}
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	n, err := io.ReadFull(rd, p)
	r.r.stats.requests.Add(1)
	r.r.stats.bytes.Add(int64(n))
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// tailReaderAt serves the reads of a file's last bytes (footer, page index, bloom filters) from
// one read made while the file is opened, and forgets them once it is: an open file keeps what
// it parsed, not the bytes it parsed it from.
type tailReaderAt struct {
	ra   io.ReaderAt
	off  int64
	tail []byte
	// low is the lowest offset read from the tail: size-low is what opening needed.
	low int64
}

func (t *tailReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if t.tail != nil && off >= t.off && off+int64(len(p)) <= t.off+int64(len(t.tail)) {
		t.low = min(t.low, off)
		return copy(p, t.tail[off-t.off:]), nil
	}
	return t.ra.ReadAt(p, off)
}

// tailBytes is how much of a file's end opening it reads at once: the footer (about 23 KiB for
// a file of 8,192 events) and the last row group's page index; the other row groups' page
// indexes and bloom filters lie after each row group and are read apart.
const tailBytes = 64 << 10

func (r *Reader) file(f *store.ColdFile) (_ *openFile, err error) {
	r.mu.Lock()
	if of, ok := r.open[f.Key]; ok {
		if i := slices.Index(r.order, f.Key); i >= 0 {
			r.order = append(slices.Delete(r.order, i, i+1), f.Key)
		}
		r.mu.Unlock()
		return of, nil
	}
	r.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cold file %s is malformed: %v", f.Key, p)
		}
	}()
	tr := &tailReaderAt{ra: blobReaderAt{r, f.Key}, off: max(0, f.Bytes-tailBytes), low: f.Bytes}
	tr.tail = make([]byte, f.Bytes-tr.off)
	if _, err := tr.ra.ReadAt(tr.tail, tr.off); err != nil && err != io.EOF {
		return nil, fmt.Errorf("open cold file %s: %w", f.Key, err)
	}
	// The tail holds the footer's magic bytes: the header's would cost a request of their own.
	pf, err := parquet.OpenFile(tr, f.Bytes, parquet.SkipMagicBytes(true), parquet.PrefetchBloomFilters(true), parquet.ReadBufferSize(256<<10))
	if err != nil {
		return nil, fmt.Errorf("open cold file %s: %w", f.Key, err)
	}
	tr.tail = nil
	r.stats.opened.Add(1)
	of := &openFile{pf: pf, cols: columnIndexes(pf), bytes: f.Bytes - tr.low}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.open[f.Key]; !ok {
		r.open[f.Key] = of
		r.order = append(r.order, f.Key)
		r.openBytes += of.bytes
		for len(r.order) > r.max || (r.openBytes > r.maxBytes && len(r.order) > 1) {
			r.openBytes -= r.open[r.order[0]].bytes
			delete(r.open, r.order[0])
			r.order = r.order[1:]
		}
	}
	return of, nil
}

func columnIndexes(pf *parquet.File) map[string]int {
	cols := map[string]int{}
	for i, path := range pf.Schema().Columns() {
		cols[strings.Join(path, ".")] = i
	}
	return cols
}

// whole reads a file in one request and opens it from memory, for a sweep: statistics still
// skip its row groups outside the time range; bloom filters and page indexes are not read.
func (r *Reader) whole(f *store.ColdFile) (_ *openFile, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cold file %s is malformed: %v", f.Key, p)
		}
	}()
	body := make([]byte, f.Bytes)
	if _, err := (blobReaderAt{r, f.Key}).ReadAt(body, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read cold file %s: %w", f.Key, err)
	}
	pf, err := parquet.OpenFile(bytes.NewReader(body), f.Bytes, parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true))
	if err != nil {
		return nil, fmt.Errorf("open cold file %s: %w", f.Key, err)
	}
	r.stats.swept.Add(1)
	return &openFile{pf: pf, cols: columnIndexes(pf)}, nil
}

// scan is what a file read looks for: the query's filter and time range, and an event id for a
// lookup by id.
type scan struct {
	f      *store.Filter
	lo, hi *time.Time // event_timestamp in [lo, hi)
	id     *uuid.UUID
	// after, in order, is a page's cursor: only events after it match.
	after *store.Cursor
	order store.Order
}

// lookup reports whether s looks up keys that bloom filters and page indexes find.
func (s *scan) lookup() bool {
	return s.id != nil || len(s.f.CorrelationIDs) > 0 || len(s.f.ActorIDs) > 0 || len(exactTypes(s.f)) > 0
}

// catalogue is what the catalogue is asked for s: its time range and its lookup keys.
func (s *scan) catalogue() store.ColdFileQuery {
	q := store.ColdFileQuery{Since: s.lo, Until: s.hi}
	for g, c := range []struct {
		col  string
		vals []string
	}{{"correlation_id", s.f.CorrelationIDs}, {"actor_id", s.f.ActorIDs}, {"event_type", exactTypes(s.f)}} {
		for _, v := range c.vals {
			q.Probes = append(q.Probes, store.ColdProbe{Group: g, Positions: archive.LookupProbe(c.col, v)})
		}
	}
	return q
}

// admitsFile reports whether a catalogue entry can hold a match of s.
func (s *scan) admitsFile(f *store.ColdFile) bool {
	if s.lo != nil && f.MaxEventTimestamp.Before(*s.lo) {
		return false
	}
	if s.hi != nil && !f.MinEventTimestamp.Before(*s.hi) {
		return false
	}
	if cids := s.f.CorrelationIDs; len(cids) > 0 {
		return slices.ContainsFunc(cids, func(c string) bool { return c >= f.MinCorrelationID && c <= f.MaxCorrelationID })
	}
	return true
}

// read calls keep with each event of one file that matches s (JSON filters aside: the caller
// asks the database), in file order.
func (r *Reader) read(f *store.ColdFile, s *scan, keep func(audit.Event)) error {
	var of *openFile
	var err error
	if s.lookup() {
		of, err = r.file(f)
	} else {
		r.mu.Lock()
		of = r.open[f.Key]
		r.mu.Unlock()
		if of == nil {
			of, err = r.whole(f)
		}
	}
	if err != nil {
		return err
	}
	var in *interner
	if !s.lookup() {
		in = newInterner()
	}
	for _, rg := range of.pf.RowGroups() {
		first, last, ok, err := s.rows(of, rg)
		if err != nil {
			return fmt.Errorf("cold file %s: %w", f.Key, err)
		}
		if !ok {
			continue
		}
		if err := readRange(rg, first, last, func(row *archive.ColdRow) {
			if s.matchRow(row) {
				if e := row.Event(); afterCursor(&e, s.after, s.order) {
					in.event(&e)
					keep(e)
				}
			}
		}); err != nil {
			return fmt.Errorf("cold file %s: %w", f.Key, err)
		}
	}
	return nil
}

// rows decides from a row group's statistics, bloom filters and page index which of its rows
// can match: [first, last), ok false for none.
func (s *scan) rows(of *openFile, rg parquet.RowGroup) (first, last int64, ok bool, err error) {
	chunks := rg.ColumnChunks()
	chunk := func(name string) parquet.ColumnChunk { return chunks[of.cols[name]] }
	if s.lo != nil || s.hi != nil {
		if min, max, ok := chunk("event_timestamp").(*parquet.FileColumnChunk).Bounds(); ok {
			if (s.lo != nil && max.Int64() < s.lo.UnixMicro()) || (s.hi != nil && min.Int64() >= s.hi.UnixMicro()) {
				return 0, 0, false, nil
			}
		}
	}
	if cids := s.f.CorrelationIDs; len(cids) > 0 {
		// Rows are sorted by correlation_id, so row groups hold disjoint ranges of it: the
		// footer's statistics leave about one, before any bloom filter is asked.
		if min, max, ok := chunk("correlation_id").(*parquet.FileColumnChunk).Bounds(); ok {
			lo, hi := string(min.ByteArray()), string(max.ByteArray())
			if !slices.ContainsFunc(cids, func(c string) bool { return c >= lo && c <= hi }) {
				return 0, 0, false, nil
			}
		}
	}
	maybe := func(name string, vals []string) (bool, error) {
		if len(vals) == 0 {
			return true, nil
		}
		bf := chunk(name).BloomFilter()
		if bf == nil {
			return true, nil
		}
		for _, v := range vals {
			hit, err := bf.Check(parquet.ByteArrayValue([]byte(v)))
			if err != nil || hit {
				return true, err
			}
		}
		return false, nil
	}
	for _, c := range []struct {
		name string
		vals []string
	}{{"correlation_id", s.f.CorrelationIDs}, {"actor_id", s.f.ActorIDs}, {"event_type", exactTypes(s.f)}} {
		if hit, err := maybe(c.name, c.vals); err != nil || !hit {
			return 0, 0, false, err
		}
	}
	if s.id != nil {
		if bf := chunk("event_id").BloomFilter(); bf != nil {
			if hit, err := bf.Check(parquet.FixedLenByteArrayValue(s.id[:])); err != nil || !hit {
				return 0, 0, false, err
			}
		}
	}
	first, last = 0, rg.NumRows()
	if cids := s.f.CorrelationIDs; len(cids) > 0 {
		// Rows are sorted by correlation_id: the page index narrows them to the pages whose
		// range holds one of the ids.
		cc := chunk("correlation_id")
		ci, err1 := cc.ColumnIndex()
		oi, err2 := cc.OffsetIndex()
		if err1 == nil && err2 == nil && ci.NumPages() == oi.NumPages() {
			first, last = -1, -1
			for p := range ci.NumPages() {
				lo, hi := string(ci.MinValue(p).ByteArray()), string(ci.MaxValue(p).ByteArray())
				if !slices.ContainsFunc(cids, func(c string) bool { return c >= lo && c <= hi }) {
					continue
				}
				if first < 0 {
					first = oi.FirstRowIndex(p)
				}
				last = rg.NumRows()
				if p+1 < oi.NumPages() {
					last = oi.FirstRowIndex(p + 1)
				}
			}
			if first < 0 {
				return 0, 0, false, nil
			}
		}
	}
	return first, last, true, nil
}

// exactTypes are the exact event types of f, when it has no prefix (a prefix cannot be
// looked up in a bloom filter).
func exactTypes(f *store.Filter) []string {
	if len(f.EventTypePrefixes) > 0 {
		return nil
	}
	return f.EventTypes
}

// readRange reads rows [first, last) of a row group.
func readRange(rg parquet.RowGroup, first, last int64, fn func(*archive.ColdRow)) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed parquet file: %v", p)
		}
	}()
	rd := parquet.NewGenericRowGroupReader[archive.ColdRow](rg)
	defer rd.Close()
	if first > 0 {
		if err := rd.SeekToRow(first); err != nil {
			return err
		}
	}
	batch := make([]archive.ColdRow, min(256, last-first))
	for n := first; n < last; {
		clear(batch)
		k, err := rd.Read(batch[:min(int64(len(batch)), last-n)])
		for i := range batch[:k] {
			fn(&batch[i])
		}
		n += int64(k)
		if err == io.EOF || (k == 0 && err == nil) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// matchRow applies the filter's columns (not its JSON filters) to a row.
func (s *scan) matchRow(r *archive.ColdRow) bool {
	f := s.f
	ts := r.EventTimestamp
	if (s.lo != nil && ts.Before(*s.lo)) || (s.hi != nil && !ts.Before(*s.hi)) {
		return false
	}
	if s.id != nil && uuid.UUID(r.EventID) != *s.id {
		return false
	}
	in := func(vals []string, v string) bool { return len(vals) == 0 || slices.Contains(vals, v) }
	inOpt := func(vals []string, v *string) bool { return len(vals) == 0 || (v != nil && slices.Contains(vals, *v)) }
	if !in(f.CorrelationIDs, r.CorrelationID) || !in(f.EventCategories, r.EventCategory) ||
		!in(f.EventActions, r.EventAction) || !in(f.EventOutcomes, r.EventOutcome) ||
		!inOpt(f.Severities, r.Severity) || !in(f.ActorTypes, r.ActorType) || !in(f.ActorIDs, r.ActorID) ||
		!inOpt(f.ResourceTypes, r.ResourceType) || !inOpt(f.ResourceIDs, r.ResourceID) ||
		!inOpt(f.Namespaces, r.Namespace) || !inOpt(f.ClusterIDs, r.ClusterID) || !in(f.SubmittedBy, r.SubmittedBy) {
		return false
	}
	if len(f.EventTypes) > 0 || len(f.EventTypePrefixes) > 0 {
		if !slices.Contains(f.EventTypes, r.EventType) &&
			!slices.ContainsFunc(f.EventTypePrefixes, func(p string) bool { return strings.HasPrefix(r.EventType, p) }) {
			return false
		}
	}
	if len(f.EventCategories) == 0 && slices.Contains(f.ExceptCategories, r.EventCategory) {
		return false
	}
	if f.Scoped && (r.Namespace == nil || !slices.Contains(f.InNamespaces, *r.Namespace)) {
		return false
	}
	if len(f.ParentEventIDs) > 0 {
		if r.ParentEventID == nil {
			return false
		}
		p, err := uuid.Parse(*r.ParentEventID)
		if err != nil || !slices.Contains(f.ParentEventIDs, p) {
			return false
		}
	}
	return true
}

// compareEvents orders events by (event_timestamp, event_id), as PostgreSQL does.
func compareEvents(a, b *audit.Event) int {
	return cmp.Or(a.EventTimestamp.Compare(b.EventTimestamp), bytes.Compare(a.EventID[:], b.EventID[:]))
}

// interner makes the events of one file share the values of its low-cardinality columns (the
// ones the cold layout dictionary-encodes). A Parquet reader gives every row its own copy of
// each; a sweep holds a whole file's events while an export merges it with others, and those
// copies were a third of what it held.
type interner struct {
	strs map[string]string
	ptrs map[string]*string
}

func newInterner() *interner {
	return &interner{strs: make(map[string]string), ptrs: make(map[string]*string)}
}

// event replaces e's low-cardinality values with shared ones; a nil interner leaves e alone.
// The shared pointers are safe because nothing writes through an event's *string: withholding
// and redaction replace the pointer.
func (in *interner) event(e *audit.Event) {
	if in == nil {
		return
	}
	for _, p := range []*string{&e.Version, &e.EventType, &e.EventCategory, &e.EventAction,
		&e.EventOutcome, &e.ActorType, &e.ActorID, &e.SubmittedBy} {
		v, ok := in.strs[*p]
		if !ok {
			v = *p
			in.strs[v] = v
		}
		*p = v
	}
	for _, p := range []**string{&e.ActorIP, &e.ResourceType, &e.Namespace, &e.ClusterID,
		&e.Severity, &e.ErrorCode} {
		if *p == nil {
			continue
		}
		v, ok := in.ptrs[**p]
		if !ok {
			v = *p
			in.ptrs[*v] = v
		}
		*p = v
	}
}
