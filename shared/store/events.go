package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

func scanEvent(row pgx.Row, e *audit.Event) error { return scanEventWith(row, e) }

// GetEvent returns the stored event with id, or ErrNotFound. The idempotency key says where a
// recent event lives, so the read touches one partition; an older event (key pruned) is
// looked up by the primary key of every partition.
func (s *Store) GetEvent(ctx context.Context, id uuid.UUID) (audit.Event, error) {
	var ts time.Time
	var class int32
	err := s.db.QueryRow(ctx, `SELECT event_timestamp, retention_days FROM audit_event_keys WHERE event_id = $1`, id).Scan(&ts, &class)
	var row pgx.Row
	switch err = interpretError(err); {
	case err == nil:
		row = s.db.QueryRow(ctx, `SELECT `+selectColumns+` FROM audit_events
			WHERE event_id = $1 AND event_timestamp = $2 AND retention_days = $3`, id, ts, class)
	case err == ErrNotFound:
		row = s.db.QueryRow(ctx, `SELECT `+selectColumns+` FROM audit_events WHERE event_id = $1`, id)
	default:
		return audit.Event{}, fmt.Errorf("get event: %w", err)
	}
	var e audit.Event
	if err := scanEvent(row, &e); err != nil {
		return audit.Event{}, fmt.Errorf("get event %s: %w", id, interpretError(err))
	}
	return e, nil
}

// Order is the direction of a query by (event_timestamp, event_id).
type Order int

// The two orders of a query.
const (
	Ascending Order = iota + 1
	Descending
)

// Cursor is the position after the last row of a page: the keyset of that row.
type Cursor struct {
	EventTimestamp time.Time
	EventID        uuid.UUID
}

// Filter selects events. Slices are ORed within a field and ANDed across fields; an empty
// slice does not filter.
type Filter struct {
	CorrelationIDs    []string
	EventTypes        []string // exact
	EventTypePrefixes []string // "gateway." matches gateway.signal.received
	EventCategories   []string
	EventActions      []string
	EventOutcomes     []string
	Severities        []string
	ActorTypes        []string
	ActorIDs          []string
	ResourceTypes     []string
	ResourceIDs       []string
	Namespaces        []string
	ClusterIDs        []string
	SubmittedBy       []string
	ParentEventIDs    []uuid.UUID
	// Since is inclusive, Until exclusive.
	Since, Until *time.Time
	// Data is a JSON object event_data must contain (jsonb @>).
	Data json.RawMessage
	// DataPath is an SQL/JSON path predicate on event_data (jsonb @@).
	DataPath string
	// Scoped limits the events to those whose namespace is one of InNamespaces (a reader's
	// scope): an event without a namespace never matches, nor does any when InNamespaces is
	// empty. Unlike Namespaces, an empty list does not lift the limit.
	Scoped       bool
	InNamespaces []string
	// ExceptCategories are left out (event_category <> each): auditstore's own events, unless
	// a query asks for them. A filter on event_category already leaves them out.
	ExceptCategories []string
}

// QueryParams are the arguments of QueryEvents.
type QueryParams struct {
	Filter
	Order Order
	// Limit is the page size; QueryEvents reads one row more to tell whether there are more.
	Limit int
	// Offset skips rows; After starts after a cursor. Use one, not both.
	Offset int
	After  *Cursor
}

// Page is one page of a query.
type Page struct {
	Events  []audit.Event
	HasMore bool
}

// where renders the filter as a WHERE clause with placeholders, appending the values to args.
func (f *Filter) where(args *[]any) string {
	var conds []string
	arg := func(v any) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args))
	}
	in := func(col string, vals []string) {
		switch len(vals) {
		case 0:
		case 1:
			conds = append(conds, col+" = "+arg(vals[0]))
		default:
			conds = append(conds, col+" = ANY("+arg(vals)+"::text[])")
		}
	}
	in("correlation_id", f.CorrelationIDs)
	if len(f.EventTypes) > 0 || len(f.EventTypePrefixes) > 0 {
		var or []string
		if len(f.EventTypes) > 0 {
			or = append(or, "event_type = ANY("+arg(f.EventTypes)+"::text[])")
		}
		for _, p := range f.EventTypePrefixes {
			// event_type is COLLATE "C", so a byte range is the prefix and uses the index.
			or = append(or, "(event_type >= "+arg(p)+" AND event_type < "+arg(prefixEnd(p))+")")
		}
		conds = append(conds, "("+strings.Join(or, " OR ")+")")
	}
	in("event_category", f.EventCategories)
	if len(f.EventCategories) == 0 {
		// <> filters the rows the other conditions' index finds; it never picks an index.
		switch len(f.ExceptCategories) {
		case 0:
		case 1:
			conds = append(conds, "event_category <> "+arg(f.ExceptCategories[0]))
		default:
			conds = append(conds, "event_category <> ALL("+arg(f.ExceptCategories)+"::text[])")
		}
	}
	in("event_action", f.EventActions)
	in("event_outcome", f.EventOutcomes)
	in("severity", f.Severities)
	in("actor_type", f.ActorTypes)
	in("actor_id", f.ActorIDs)
	in("resource_type", f.ResourceTypes)
	in("resource_id", f.ResourceIDs)
	in("namespace", f.Namespaces)
	if f.Scoped {
		if len(f.InNamespaces) == 1 {
			// An equality is checked inside the (x, event_timestamp, namespace) indexes while
			// they still yield rows in time order; ANY would lose that order.
			conds = append(conds, "namespace = "+arg(f.InNamespaces[0]))
		} else {
			conds = append(conds, "namespace = ANY("+arg(f.InNamespaces)+"::text[])")
		}
	}
	in("cluster_id", f.ClusterIDs)
	in("submitted_by", f.SubmittedBy)
	if len(f.ParentEventIDs) > 0 {
		// As text: queries go out as unnamed statements, whose parameter types pgx does not
		// learn from the server, and it has no text encoding for []uuid.UUID.
		ids := make([]string, len(f.ParentEventIDs))
		for i, id := range f.ParentEventIDs {
			ids[i] = id.String()
		}
		conds = append(conds, "parent_event_id = ANY("+arg(ids)+"::uuid[])")
	}
	if f.Since != nil {
		conds = append(conds, "event_timestamp >= "+arg(*f.Since))
	}
	if f.Until != nil {
		conds = append(conds, "event_timestamp < "+arg(*f.Until))
	}
	if len(f.Data) > 0 {
		conds = append(conds, "event_data @> "+arg(string(f.Data))+"::jsonb")
	}
	if f.DataPath != "" {
		conds = append(conds, "event_data @@ "+arg(f.DataPath)+"::jsonpath")
	}
	if len(conds) == 0 {
		return "TRUE"
	}
	return strings.Join(conds, " AND ")
}

// prefixEnd is the least string greater than every string starting with p, in byte order.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0x7f {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x7f" // event types are ASCII: nothing sorts after this
}

// QueryEvents returns one page of the events matching p, ordered by (event_timestamp,
// event_id). Queries are planned with their actual values (an unnamed statement, never a
// cached generic plan), because skewed filters such as a jsonpath predicate can be orders of
// magnitude slower under a generic plan; only a plain correlation timeline reuses its plan.
//
// Any other query reads each partition on its own (see queryLeaves): over the partitioned
// table PostgreSQL merges every partition's scan in time order and plans each one as if
// matches were spread evenly over all of them, so a filter that matches nothing in one
// retention class (the containment {"service":"gateway"} in the class of notification events)
// read that class's every row, 0.6–4.4 s at 5M events, where a plan of its own answers from the
// GIN index in microseconds.
func (s *Store) QueryEvents(ctx context.Context, p QueryParams) (Page, error) {
	limit := max(p.Limit, 1)
	var events []audit.Event
	var err error
	if p.Filter.timelineOnly() || s.flatOnly.Load() {
		events, err = s.queryParent(ctx, p, limit)
	} else {
		events, err = s.queryLeaves(ctx, p, limit)
	}
	if err != nil {
		return Page{}, fmt.Errorf("query events: %w", err)
	}
	page := Page{Events: events}
	if len(page.Events) > limit {
		page.Events, page.HasMore = page.Events[:limit], true
	}
	return page, nil
}

// order renders p's direction and keyset, appending the cursor's values to args.
func (p *QueryParams) order(where string, args *[]any) (string, string) {
	dir, cmp := "ASC", ">"
	if p.Order == Descending {
		dir, cmp = "DESC", "<"
	}
	if p.After != nil {
		*args = append(*args, p.After.EventTimestamp, p.After.EventID)
		n := len(*args)
		where += fmt.Sprintf(" AND (event_timestamp, event_id) %s ($%d, $%d)", cmp, n-1, n)
	}
	return where, fmt.Sprintf("ORDER BY event_timestamp %s, event_id %s", dir, dir)
}

// queryParent reads limit+1 rows of p through the partitioned table; its errors are the store's.
func (s *Store) queryParent(ctx context.Context, p QueryParams, limit int) ([]audit.Event, error) {
	var args []any
	where, orderBy := p.order(p.where(&args), &args)
	args = append(args, limit+1, p.Offset)
	sql := fmt.Sprintf(`SELECT %s FROM audit_events WHERE %s %s LIMIT $%d OFFSET $%d`,
		selectColumns, where, orderBy, len(args)-1, len(args))
	if !p.Filter.timelineOnly() {
		args = customPlan(args)
	}
	events, err := s.collectEvents(ctx, sql, args, nil)
	return events, interpretError(err)
}

// collectEvents runs sql and appends its rows to events.
func (s *Store) collectEvents(ctx context.Context, sql string, args []any, events []audit.Event) ([]audit.Event, error) {
	rows, err := s.db.Query(ctx, sql, args...)
	if err != nil {
		return events, err
	}
	defer rows.Close()
	for rows.Next() {
		var e audit.Event
		if err := scanEvent(rows, &e); err != nil {
			return events, interpretError(err)
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// queryLeaves reads limit+1 rows of p (after p.Offset) partition by partition: one UNION ALL
// of a top-N query per leaf, each planned with that leaf's own statistics, merged in order.
// Leaves are taken in the query's time order, a month, then two, four, ... at a time, so a
// filter that fills its page from this month's events never plans the older ones. Empty leaves
// (the months made ahead) and leaves outside the time bounds are left out.
func (s *Store) queryLeaves(ctx context.Context, p QueryParams, limit int) ([]audit.Event, error) {
	for attempt := 0; ; attempt++ {
		events, err := s.queryLeavesOnce(ctx, p, limit)
		err = interpretError(err)
		switch {
		case errors.Is(err, ErrNoTable) && attempt == 0:
			// Maintenance dropped a listed month: list again.
			continue
		case errors.Is(err, ErrForbidden):
			// A role that may read audit_events but not its partitions (a database set up
			// by hand, without migration 000005's grants) still gets every answer.
			s.flatOnly.Store(true)
			return s.queryParent(ctx, p, limit)
		case err != nil:
			return nil, err
		}
		return events, nil
	}
}

func (s *Store) queryLeavesOnce(ctx context.Context, p QueryParams, limit int) ([]audit.Event, error) {
	leaves, err := s.leaves(ctx)
	if err != nil {
		return nil, err
	}
	lo, hi := p.bounds()
	leaves = overlapping(leaves, lo, hi)
	if len(leaves) == 0 {
		return nil, nil
	}
	if p.Offset > 0 {
		// An offset counts rows across every leaf, so such a query reads them in one go.
		return s.topLeaves(ctx, p, leaves, window{}, limit+1, p.Offset, false)
	}
	var events []audit.Event
	sparse := false
	first := firstWindow
	if p.Scoped && len(p.InNamespaces) > 0 {
		// A scope holding a fifth of the events fills a page from five times the time a
		// cluster reader's does: reading that span first keeps it to as many statements, and
		// as many rows, as the cluster reader's query.
		first = time.Duration(float64(first) / s.scopeShare(ctx, p.InNamespaces))
	}
	windows := p.windows(leaves, lo, hi, first, time.Now())
	for i := 0; i < len(windows); i++ {
		w := windows[i]
		if sparse && i+1 < len(windows) {
			// Two windows at a time: a sparse filter's statements are its cost.
			i++
			w = joinWindows(w, windows[i])
		}
		in := overlapping(leaves, w.lo, w.hi)
		if len(in) == 0 {
			continue
		}
		more, err := s.topLeaves(ctx, p, in, w, limit+1-len(events), 0, sparse)
		if err != nil {
			return nil, err
		}
		if events = append(events, more...); len(events) > limit {
			break
		}
		// A JSON containment's selectivity comes from a few hundred sampled documents: a key
		// of 28 events that one of them held was taken for 0.2% of its month, and a window of
		// seven weeks was then read in time order to its end (441k rows, 1.1 s) for nothing.
		// A containment that filled at most a quarter of its page from the newer, shorter
		// windows is sparse whatever the sample says, so the longer ones read its matches
		// through the GIN index.
		sparse = len(p.Data) > 0 && len(events) <= (limit+1)/4
	}
	return events, nil
}

// topLeaves reads k rows of p among leaves within w, after the first offset, in one statement:
// a top-N query per leaf, each planned on its own, merged in order; bitmapOnly rules out
// reading a leaf in time order.
func (s *Store) topLeaves(ctx context.Context, p QueryParams, leaves []leaf, w window, k, offset int, bitmapOnly bool) ([]audit.Event, error) {
	var args []any
	// A scope of a few namespaces is one branch per namespace and leaf (see splitScope).
	// Not for a bitmap: each branch would build the same bitmap and fetch the same rows.
	var split []string
	if !bitmapOnly {
		split = p.splitScope()
	}
	f := p.Filter
	if split != nil {
		// Each branch's namespace = $n is the scope: the planner would count the scope's
		// namespace = ANY(...) as a second, independent condition on top of it, expect a
		// fifth of the branch's real rows, and sort a whole window rather than read it in
		// time order and stop.
		f.Scoped, f.InNamespaces = false, nil
	}
	where, orderBy := p.order(f.where(&args), &args)
	if w.lo != nil {
		args = append(args, *w.lo)
		where += " AND event_timestamp >= $" + strconv.Itoa(len(args))
	}
	if w.hi != nil {
		args = append(args, *w.hi)
		where += " AND event_timestamp < $" + strconv.Itoa(len(args))
	}
	branches := []string{""}
	if split != nil {
		branches = branches[:0]
		for _, ns := range split {
			args = append(args, ns)
			branches = append(branches, " AND namespace = $"+strconv.Itoa(len(args)))
		}
	}
	args = append(args, k, offset, offset+k)
	n := len(args)
	var b strings.Builder
	b.WriteString("SELECT * FROM (")
	for i, l := range leaves {
		for j, ns := range branches {
			if i > 0 || j > 0 {
				b.WriteString(" UNION ALL ")
			}
			// A leaf's name comes from the catalog (regclass output, quoted as needed): an
			// identifier, never a value of the query.
			fmt.Fprintf(&b, "(SELECT %s FROM %s WHERE %s%s %s LIMIT $%d)", selectColumns, l.name, where, ns, orderBy, n)
		}
	}
	fmt.Fprintf(&b, ") u %s LIMIT $%d OFFSET $%d", orderBy, n-2, n-1)
	if !bitmapOnly {
		return s.collectEvents(ctx, b.String(), customPlan(args), nil)
	}
	// Index and sequential scans off for this statement only: what is left is a bitmap of the
	// matches (the GIN index for a containment), whose cost follows their number.
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, `SELECT set_config('enable_indexscan', 'off', true), set_config('enable_seqscan', 'off', true)`); err != nil {
		return nil, err
	}
	return New(tx).collectEvents(ctx, b.String(), customPlan(args), nil)
}

// maxSplitScope is the most namespaces of a reader's scope that topLeaves reads one branch
// each: past it, the branches' planning would cost more than the rows the index saves.
const maxSplitScope = 8

// splitScope returns the namespaces of a scope that topLeaves reads one by one, or nil. A
// condition namespace = $n is checked inside the (x, event_timestamp, namespace) indexes
// (migration 000006) while they still yield rows in time order, so a branch fetches only the
// rows of its namespace; namespace = ANY(...) would be checked on each fetched row instead
// (PostgreSQL 15 gives up an index's order for an array on a column after the first). The
// branches then leave out the filter's ANY, which each one's equality already meets.
func (p *QueryParams) splitScope() []string {
	if !p.Scoped || len(p.InNamespaces) < 2 || len(p.InNamespaces) > maxSplitScope {
		return nil
	}
	// Once each: a namespace named twice would read its rows twice.
	return slices.Compact(slices.Sorted(slices.Values(p.InNamespaces)))
}

// leaf is a partition of audit_events that holds rows.
type leaf struct {
	name string // as regclass prints it: quoted, and qualified when not on the search path
	// month is the first instant of the leaf's month (UTC); zero for a leaf whose name is not
	// one audit_partition_name makes (it is then read by every query).
	month time.Time
}

// leaves lists the attached leaves of audit_events that have ever held a row. pg_relation_size is 0 only for a table no row was ever written to; a leaf that gets
// its first row after this listing is a concurrent insert, which a query may or may not see.
func (s *Store) leaves(ctx context.Context) ([]leaf, error) {
	// The two levels of the tree (class, month) read from pg_inherits directly:
	// pg_partition_tree took 4 ms of the 5 ms a listing cost at 37 leaves.
	rows, err := s.db.Query(ctx, `SELECT c.oid::regclass::text, c.relname
FROM pg_inherits class
JOIN pg_inherits month ON month.inhparent = class.inhrelid
JOIN pg_class c ON c.oid = month.inhrelid
WHERE class.inhparent = 'audit_events'::regclass AND NOT month.inhdetachpending
  AND c.relkind = 'r' AND coalesce(pg_relation_size(c.oid), 0) > 0`)
	if err != nil {
		return nil, err
	}
	var out []leaf
	for rows.Next() {
		var l leaf
		var rel string
		if err := rows.Scan(&l.name, &rel); err != nil {
			rows.Close()
			return nil, err
		}
		_, l.month, _ = parseLeafName(rel)
		out = append(out, l)
	}
	return out, rows.Err()
}

// window is a range [lo, hi) of event_timestamp; a nil end is unbounded.
type window struct{ lo, hi *time.Time }

// bounds is the range of event_timestamp p can match: since, until and the cursor.
func (p *QueryParams) bounds() (lo, hi *time.Time) {
	lo, hi = p.Since, p.Until
	if c := p.After; c != nil {
		// The cursor's own timestamp stays in: rows with it and a further event_id follow.
		if p.Order == Descending {
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

// overlapping keeps the leaves whose month meets [lo, hi) (a leaf of unknown month always).
func overlapping(leaves []leaf, lo, hi *time.Time) []leaf {
	out := make([]leaf, 0, len(leaves))
	for _, l := range leaves {
		if !l.month.IsZero() && ((hi != nil && !l.month.Before(*hi)) || (lo != nil && !l.month.AddDate(0, 1, 0).After(*lo))) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// firstWindow is the span of a cluster reader's first statement (a scoped reader's is longer:
// see queryLeavesOnce); each next one spans windowGrowth times more. A filter that fills its
// page from the newest day reads only that day of each leaf, which lets the planner combine a
// JSON or prefix index with the time index instead of reading a whole month; a sparse one
// costs a few statements over 7 years, never one per day.
const (
	firstWindow  = 24 * time.Hour
	windowGrowth = 4
)

// windows cuts [lo, hi) into the spans p reads one statement at a time, the first one first
// long, in p's order: from the newest end for a descending query (the upper bound, else now,
// but not past the newest leaf), from the oldest for an ascending one. The first and last windows keep the open ends,
// so rows beyond the leaves' months (a leaf of unknown month) are still read.
func (p *QueryParams) windows(leaves []leaf, lo, hi *time.Time, first time.Duration, now time.Time) []window {
	var oldest, newest time.Time // the known months' extent
	for _, l := range leaves {
		if l.month.IsZero() {
			continue
		}
		if oldest.IsZero() || l.month.Before(oldest) {
			oldest = l.month
		}
		if end := l.month.AddDate(0, 1, 0); end.After(newest) {
			newest = end
		}
	}
	if oldest.IsZero() {
		return []window{{lo, hi}}
	}
	var out []window
	if p.Order == Descending {
		anchor := now
		if hi != nil {
			anchor = *hi
		}
		anchor = minTime(anchor, newest)
		end := hi
		for step := first; ; step *= windowGrowth {
			start := anchor.Add(-step)
			if !start.After(oldest) || (lo != nil && !start.After(*lo)) {
				return append(out, window{lo, end})
			}
			out = append(out, window{&start, end})
			end = &start
		}
	}
	anchor := oldest
	if lo != nil {
		anchor = *lo
	}
	anchor = maxTime(anchor, oldest)
	start := lo
	for step := first; ; step *= windowGrowth {
		end := anchor.Add(step)
		if !end.Before(newest) || (hi != nil && !end.Before(*hi)) {
			return append(out, window{start, hi})
		}
		out = append(out, window{start, &end})
		start = &end
	}
}

// joinWindows is the span of two adjacent windows.
func joinWindows(a, b window) window {
	if a.hi != nil && b.lo != nil && a.hi.Equal(*b.lo) { // ascending
		return window{a.lo, b.hi}
	}
	return window{b.lo, a.hi}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// CountEvents returns how many events match f.
func (s *Store) CountEvents(ctx context.Context, f Filter) (int64, error) {
	var args []any
	where := f.where(&args)
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE `+where, customPlan(args)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", interpretError(err))
	}
	return n, nil
}

// warmTimelines runs both orders of the correlation timeline on conn until PostgreSQL has
// settled on their generic plans (after five runs planned with their values): the timeline as
// the query function asks it, without auditstore's own events, for a cluster-wide reader and
// for a reader of some namespaces (another statement). It never fails the connection: a
// database not yet migrated only leaves it cold.
func warmTimelines(ctx context.Context, conn *pgx.Conn) error {
	s := New(conn)
	for _, scoped := range []bool{false, true} {
		for _, order := range []Order{Ascending, Descending} {
			for range 6 {
				f := Filter{CorrelationIDs: []string{"auditstore.warm-up"}, ExceptCategories: []string{audit.OwnCategory}, Scoped: scoped}
				if _, err := s.QueryEvents(ctx, QueryParams{Filter: f, Order: order, Limit: 1}); err != nil {
					return ctx.Err()
				}
			}
		}
	}
	return nil
}

// timelineOnly reports whether f is a correlation timeline with nothing skewed in it: no JSON
// filter, whose selectivity depends on its value. Such a query keeps pgx's cached prepared
// statement and may get PostgreSQL's generic plan: correlation_id equality is never skewed,
// and planning over every partition cost more than running it (4–9.5 ms against 0.4–1.3 ms
// at 5M events).
func (f *Filter) timelineOnly() bool {
	return len(f.CorrelationIDs) > 0 && len(f.Data) == 0 && f.DataPath == ""
}

// customPlan makes pgx send the query as an unnamed statement, which PostgreSQL plans with the
// actual parameter values every time.
func customPlan(args []any) []any {
	return append([]any{pgx.QueryExecModeExec}, args...)
}
