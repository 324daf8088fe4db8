// Package cold answers reads across the two tiers of audit events: the partitions of
// PostgreSQL (hot) and the Parquet files of months moved to object storage (cold, see
// shared/archive's cold layout). It plans a cold read from the catalogue (audit_cold_files):
// only the files whose time and correlation_id ranges meet the query, in them only the row
// groups whose statistics and bloom filters admit it, in those only the pages whose
// correlation_id range does; then it merges the cold matches with the hot ones in the asked
// order, so pages, cursors, exports and lookups by id cross the boundary unseen.
//
// It also moves months to the cold tier and expires cold files for the maintenance run
// (Mover).
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
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"
)

// Reader reads events from cold files. Open files (their footer, page index and bloom filters)
// are kept in memory, a bounded number of them, so a lookup costs the reads of the pages it
// needs.
type Reader struct {
	bucket *blob.Bucket
	// parallel is how many files a read opens and reads at once.
	parallel int

	mu    sync.Mutex
	open  map[string]*openFile
	order []string // keys in open, least recently used first
	max   int
}

type openFile struct {
	pf   *parquet.File
	cols map[string]int
}

// NewReader reads the cold tier in bucket, keeping up to maxOpen files open (default 512).
func NewReader(bucket *blob.Bucket, maxOpen int) *Reader {
	return &Reader{bucket: bucket, parallel: 8, open: map[string]*openFile{}, max: cmp.Or(maxOpen, 512)}
}

// blobReaderAt reads byte ranges of an object.
type blobReaderAt struct {
	b   *blob.Bucket
	key string
}

func (r blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rd, err := r.b.NewRangeReader(ctx, r.key, off, int64(len(p)), nil)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	n, err := io.ReadFull(rd, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

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
	pf, err := parquet.OpenFile(blobReaderAt{r.bucket, f.Key}, f.Bytes,
		parquet.PrefetchBloomFilters(true), parquet.OptimisticRead(true), parquet.ReadBufferSize(256<<10))
	if err != nil {
		return nil, fmt.Errorf("open cold file %s: %w", f.Key, err)
	}
	of := &openFile{pf: pf, cols: map[string]int{}}
	for i, path := range pf.Schema().Columns() {
		of.cols[strings.Join(path, ".")] = i
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.open[f.Key]; !ok {
		r.open[f.Key] = of
		r.order = append(r.order, f.Key)
		for len(r.order) > r.max {
			delete(r.open, r.order[0])
			r.order = r.order[1:]
		}
	}
	return of, nil
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

// read returns the events of one file that match s (JSON filters aside: the caller asks the
// database), in file order.
func (r *Reader) read(f *store.ColdFile, s *scan) ([]audit.Event, error) {
	of, err := r.file(f)
	if err != nil {
		return nil, err
	}
	var out []audit.Event
	for _, rg := range of.pf.RowGroups() {
		first, last, ok, err := s.rows(of, rg)
		if err != nil {
			return nil, fmt.Errorf("cold file %s: %w", f.Key, err)
		}
		if !ok {
			continue
		}
		if err := readRange(rg, first, last, func(row *archive.ColdRow) {
			if s.matchRow(row) {
				if e := row.Event(); afterCursor(&e, s.after, s.order) {
					out = append(out, e)
				}
			}
		}); err != nil {
			return nil, fmt.Errorf("cold file %s: %w", f.Key, err)
		}
	}
	return out, nil
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
