package cold

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
)

// Hot is what a tiered read needs of the database: the hot reads, the catalogue of cold files
// readable now, and PostgreSQL's own JSON matching (so data and data_path mean the same for
// cold events). *store.Store is one.
type Hot interface {
	QueryEvents(ctx context.Context, p store.QueryParams) (store.Page, error)
	CountEvents(ctx context.Context, f store.Filter) (int64, error)
	GetEvent(ctx context.Context, id uuid.UUID) (audit.Event, error)
	StreamEvents(ctx context.Context, p store.StreamParams, fn func(*audit.Event) error) (int64, error)
	ColdFilesFor(ctx context.Context, q store.ColdFileQuery) ([]store.ColdFile, error)
	MatchData(ctx context.Context, docs []json.RawMessage, data json.RawMessage, path string) ([]bool, error)
}

// Tiered answers the query function's reads across the hot tier and the cold one. It has the
// methods of the store it wraps, with the same meaning.
type Tiered struct {
	hot Hot
	r   *Reader
}

// NewTiered reads hot first, then the cold files the catalogue of hot's database names.
func NewTiered(hot Hot, r *Reader) *Tiered { return &Tiered{hot: hot, r: r} }

// QueryEvents returns one page of the events of both tiers matching p, in p's order; a cursor
// or an offset counts across both.
func (t *Tiered) QueryEvents(ctx context.Context, p store.QueryParams) (store.Page, error) {
	return again(func() (store.Page, error) { return t.queryEvents(ctx, p) })
}

// again runs read, and once more if a file it read was gone (ErrFileGone): the second run reads
// the catalogue that replaced it. A stream cannot do this once it has sent events.
func again[T any](read func() (T, error)) (T, error) {
	v, err := read()
	if errors.Is(err, ErrFileGone) {
		return read()
	}
	return v, err
}

func (t *Tiered) queryEvents(ctx context.Context, p store.QueryParams) (store.Page, error) {
	hp := p
	if p.Offset > 0 {
		hp.Offset, hp.Limit = 0, p.Offset+p.Limit
	}
	hot, err := t.hot.QueryEvents(ctx, hp)
	if err != nil {
		return hot, err
	}
	lo, hi := bounds(&p)
	s := &scan{f: &p.Filter, lo: lo, hi: hi, after: p.After, order: p.Order}
	files, err := t.hot.ColdFilesFor(ctx, s.catalogue())
	if err != nil {
		return store.Page{}, err
	}
	if len(files) == 0 && p.Offset == 0 {
		return hot, nil
	}
	want := p.Offset + p.Limit + 1
	cold, err := t.page(ctx, files, s, p.Order, want)
	if err != nil {
		return store.Page{}, err
	}
	merged := mergeSorted(hot.Events, cold, p.Order)
	page := store.Page{HasMore: hot.HasMore}
	if p.Offset < len(merged) {
		merged = merged[p.Offset:]
	} else {
		merged = nil
	}
	if len(merged) > p.Limit {
		merged, page.HasMore = merged[:p.Limit], true
	}
	page.Events = merged
	return page, nil
}

// CountEvents counts the events of both tiers matching f.
func (t *Tiered) CountEvents(ctx context.Context, f store.Filter) (int64, error) {
	return again(func() (int64, error) { return t.countEvents(ctx, f) })
}

func (t *Tiered) countEvents(ctx context.Context, f store.Filter) (int64, error) {
	n, err := t.hot.CountEvents(ctx, f)
	if err != nil {
		return n, err
	}
	s := &scan{f: &f, lo: f.Since, hi: f.Until}
	files, err := t.hot.ColdFilesFor(ctx, s.catalogue())
	if err != nil {
		return 0, err
	}
	err = t.each(ctx, files, s, store.Ascending, 0, func(es []audit.Event) error {
		n += int64(len(es))
		return nil
	})
	return n, err
}

// GetEvent returns the event with id from either tier, or store.ErrNotFound.
func (t *Tiered) GetEvent(ctx context.Context, id uuid.UUID) (audit.Event, error) {
	return again(func() (audit.Event, error) { return t.getEvent(ctx, id) })
}

func (t *Tiered) getEvent(ctx context.Context, id uuid.UUID) (audit.Event, error) {
	e, err := t.hot.GetEvent(ctx, id)
	if !errors.Is(err, store.ErrNotFound) {
		return e, err
	}
	files, err := t.hot.ColdFilesFor(ctx, store.ColdFileQuery{})
	if err != nil {
		return audit.Event{}, err
	}
	// A UUIDv7 carries when it was made, which is near its event's timestamp more often than
	// not: the months nearest to it are read first.
	if id.Version() == 7 {
		sec, nsec := id.Time().UnixTime()
		at := time.Unix(sec, nsec)
		slices.SortStableFunc(files, func(a, b store.ColdFile) int {
			return int(distance(&a, at)/time.Second) - int(distance(&b, at)/time.Second)
		})
	}
	s := &scan{f: &store.Filter{}, id: &id}
	var found *audit.Event
	errFound := errors.New("found")
	err = t.each(ctx, files, s, 0, 0, func(es []audit.Event) error {
		if len(es) > 0 {
			found = &es[0]
			return errFound
		}
		return nil
	})
	if found != nil {
		return *found, nil
	}
	if err != nil {
		return audit.Event{}, err
	}
	return audit.Event{}, store.ErrNotFound
}

func distance(f *store.ColdFile, at time.Time) time.Duration {
	switch {
	case at.Before(f.MinEventTimestamp):
		return f.MinEventTimestamp.Sub(at)
	case at.After(f.MaxEventTimestamp):
		return at.Sub(f.MaxEventTimestamp)
	}
	return 0
}

// StreamEvents calls fn for every event of both tiers matching p, in p's order. Memory stays
// bounded by the matches of a cold file or two, whatever the result's size.
func (t *Tiered) StreamEvents(ctx context.Context, p store.StreamParams, fn func(*audit.Event) error) (int64, error) {
	var (
		next    func() (*audit.Event, error, bool)
		stop    = func() {}
		head    *audit.Event
		started bool
		n       int64
	)
	defer func() { stop() }()
	start := func() error {
		started = true
		files, err := t.hot.ColdFilesFor(ctx, (&scan{f: &p.Filter, lo: p.Since, hi: p.Until}).catalogue())
		if err != nil {
			return err
		}
		next, stop = iter.Pull2(t.stream(ctx, files, &p))
		return advance(next, &head)
	}
	// Cold events that come first in the order, then the hot one; a cold copy of a hot event
	// (a month being moved) is dropped.
	emitBefore := func(e *audit.Event) error {
		for head != nil {
			c := compareIn(p.Order, head, e)
			if c > 0 {
				return nil
			}
			if c < 0 {
				if err := fn(head); err != nil {
					return err
				}
				n++
			}
			if err := advance(next, &head); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := t.hot.StreamEvents(ctx, p, func(e *audit.Event) error {
		if !started {
			// The catalogue is read once the hot stream's snapshot is taken.
			if err := start(); err != nil {
				return err
			}
		}
		if err := emitBefore(e); err != nil {
			return err
		}
		n++
		return fn(e)
	})
	if err != nil {
		return n, err
	}
	if !started {
		if err := start(); err != nil {
			return n, err
		}
	}
	for head != nil {
		if err := fn(head); err != nil {
			return n, err
		}
		n++
		if err := advance(next, &head); err != nil {
			return n, err
		}
	}
	return n, nil
}

func advance(next func() (*audit.Event, error, bool), head **audit.Event) error {
	e, err, ok := next()
	if !ok {
		*head = nil
		return nil
	}
	if err != nil {
		*head = nil
		return err
	}
	*head = e
	return nil
}

// bounds is the range of event_timestamp p can match: since, until and the cursor (exactly:
// the cursor's own row and those before it are dropped by afterCursor).
func bounds(p *store.QueryParams) (lo, hi *time.Time) {
	lo, hi = p.Since, p.Until
	if c := p.After; c != nil {
		if p.Order == store.Descending {
			if t := c.EventTimestamp.Add(time.Microsecond); hi == nil || t.Before(*hi) {
				hi = &t
			}
		} else if lo == nil || c.EventTimestamp.After(*lo) {
			t := c.EventTimestamp
			lo = &t
		}
	}
	return lo, hi
}

// afterCursor reports whether e comes after the cursor in the order.
func afterCursor(e *audit.Event, c *store.Cursor, order store.Order) bool {
	if c == nil {
		return true
	}
	k := audit.Event{EventTimestamp: c.EventTimestamp, EventID: c.EventID}
	return compareIn(order, e, &k) > 0
}

func sortEvents(es []audit.Event, order store.Order) {
	slices.SortFunc(es, func(a, b audit.Event) int { return compareIn(order, &a, &b) })
}

// compareIn compares two events as order lists them.
func compareIn(order store.Order, a, b *audit.Event) int {
	if order == store.Descending {
		return compareEvents(b, a)
	}
	return compareEvents(a, b)
}

// mergeSorted merges two lists sorted in order into one, keeping one of two equal events.
func mergeSorted(a, b []audit.Event, order store.Order) []audit.Event {
	out := make([]audit.Event, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b):
			out = append(out, a[i])
			i++
		case i == len(a):
			out = append(out, b[j])
			j++
		default:
			c := compareIn(order, &a[i], &b[j])
			switch {
			case c < 0:
				out = append(out, a[i])
				i++
			case c > 0:
				out = append(out, b[j])
				j++
			default:
				out = append(out, a[i])
				i, j = i+1, j+1
			}
		}
	}
	return out
}

// page returns the first want cold events matching s after the cursor, in order. Files are
// read in the order's direction, some at a time, and reading stops once the page is full and
// no file left can hold an event before its last.
func (t *Tiered) page(ctx context.Context, files []store.ColdFile, s *scan, order store.Order, want int) ([]audit.Event, error) {
	files = t.admitted(files, s, order)
	var out []audit.Event
	for i := 0; i < len(files); {
		if len(out) >= want {
			last := out[want-1].EventTimestamp
			f := files[i]
			if (order != store.Descending && f.MinEventTimestamp.After(last)) || (order == store.Descending && f.MaxEventTimestamp.Before(last)) {
				break
			}
		}
		end := min(i+t.r.parallel, len(files))
		got, err := t.readFiles(ctx, files[i:end], s)
		if err != nil {
			return nil, err
		}
		i = end
		out = append(out, got...)
		sortEvents(out, order)
		if len(out) > want {
			out = slices.Delete(out, want, len(out))
		}
	}
	return out, nil
}

// admitted keeps the files that can hold a match of s, in the order's direction.
func (t *Tiered) admitted(files []store.ColdFile, s *scan, order store.Order) []store.ColdFile {
	out := slices.DeleteFunc(slices.Clone(files), func(f store.ColdFile) bool { return !s.admitsFile(&f) })
	slices.SortStableFunc(out, func(a, b store.ColdFile) int {
		if order == store.Descending {
			return b.MaxEventTimestamp.Compare(a.MaxEventTimestamp)
		}
		return a.MinEventTimestamp.Compare(b.MinEventTimestamp)
	})
	return out
}

// each calls fn with the matches of each batch of admitted files (unsorted), in order, until
// fn fails.
func (t *Tiered) each(ctx context.Context, files []store.ColdFile, s *scan, order store.Order, parallel int, fn func([]audit.Event) error) error {
	if order != 0 {
		files = t.admitted(files, s, order)
	} else {
		files = slices.DeleteFunc(slices.Clone(files), func(f store.ColdFile) bool { return !s.admitsFile(&f) })
	}
	step := cmp0(parallel, t.r.parallel)
	for i := 0; i < len(files); i += step {
		got, err := t.readFiles(ctx, files[i:min(i+step, len(files))], s)
		if err != nil {
			return err
		}
		if err := fn(got); err != nil {
			return err
		}
	}
	return nil
}

func cmp0(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

// stream yields the cold events matching p in p's order. It reads one file at a time, sorts its
// matches (a file is sorted for lookups, not by time) and merges them with what earlier files
// hold back: only the events a later file could still precede wait, each on its own so that it
// goes once it is sent. Files of one class follow one another in time; another class's files
// overlap them, so an export holds about one file per class.
func (t *Tiered) stream(ctx context.Context, files []store.ColdFile, p *store.StreamParams) iter.Seq2[*audit.Event, error] {
	return func(yield func(*audit.Event, error) bool) {
		s := &scan{f: &p.Filter, lo: p.Since, hi: p.Until}
		files := t.admitted(files, s, p.Order)
		var runs [][]*audit.Event // sorted, none empty
		for i := range files {
			var got []*audit.Event
			err := t.r.read(&files[i], s, func(e audit.Event) {
				if got == nil {
					got = make([]*audit.Event, 0, files[i].Rows)
				}
				got = append(got, &e)
			})
			if err == nil {
				got, err = matchData(ctx, t.hot, s, got, func(e *audit.Event) json.RawMessage { return e.EventData })
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if len(got) > 0 {
				slices.SortFunc(got, func(a, b *audit.Event) int { return compareIn(p.Order, a, b) })
				runs = append(runs, got)
			}
			// What no later file can precede goes out now, in order across the runs.
			for len(runs) > 0 {
				k := 0
				for j := 1; j < len(runs); j++ {
					if compareIn(p.Order, runs[j][0], runs[k][0]) < 0 {
						k = j
					}
				}
				e := runs[k][0]
				if i+1 < len(files) {
					nf := &files[i+1]
					if (p.Order != store.Descending && !e.EventTimestamp.Before(nf.MinEventTimestamp)) ||
						(p.Order == store.Descending && !e.EventTimestamp.After(nf.MaxEventTimestamp)) {
						break
					}
				}
				if !yield(e, nil) {
					return
				}
				// The caller is done with e once it asks for the next: it goes now, while the
				// rest of its run waits (a long, sparse file's run can wait for a dozen others).
				runs[k][0] = nil
				if runs[k] = runs[k][1:]; len(runs[k]) == 0 {
					runs = slices.Delete(runs, k, k+1)
				}
			}
		}
	}
}

// readFiles reads files at once and returns their matches, JSON filters applied.
func (t *Tiered) readFiles(ctx context.Context, files []store.ColdFile, s *scan) ([]audit.Event, error) {
	results := make([][]audit.Event, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			var out []audit.Event
			if !s.lookup() {
				// A sweep mostly keeps every row: room for them all at once, rather than
				// the garbage of growing into it.
				out = make([]audit.Event, 0, files[i].Rows)
			}
			errs[i] = t.r.read(&files[i], s, func(e audit.Event) { out = append(out, e) })
			results[i] = out
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return matchData(ctx, t.hot, s, slices.Concat(results...), func(e audit.Event) json.RawMessage { return e.EventData })
}

// matchData keeps the events of out whose event_data (data of each) matches s's JSON filters,
// if it has any.
func matchData[E any](ctx context.Context, hot Hot, s *scan, out []E, data func(E) json.RawMessage) ([]E, error) {
	if len(s.f.Data) == 0 && s.f.DataPath == "" || len(out) == 0 {
		return out, nil
	}
	kept := out[:0]
	for start := 0; start < len(out); start += 1000 {
		batch := out[start:min(start+1000, len(out))]
		docs := make([]json.RawMessage, len(batch))
		for i := range batch {
			docs[i] = data(batch[i])
		}
		ok, err := hot.MatchData(ctx, docs, s.f.Data, s.f.DataPath)
		if err != nil {
			return nil, err
		}
		for i := range batch {
			if ok[i] {
				kept = append(kept, batch[i])
			}
		}
	}
	return kept, nil
}
