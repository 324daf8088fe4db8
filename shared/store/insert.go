package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// InsertStatus says what InsertEvents did with one event.
type InsertStatus uint8

// The outcomes of inserting one event.
const (
	// Inserted: the event is new and was stored.
	Inserted InsertStatus = iota + 1
	// Duplicate: the same event_id with the same content is already stored; nothing new.
	Duplicate
	// Conflict: the event_id is already stored with other content; nothing stored.
	Conflict
)

func (s InsertStatus) String() string {
	switch s {
	case Inserted:
		return "inserted"
	case Duplicate:
		return "duplicate"
	case Conflict:
		return "conflict"
	}
	return fmt.Sprintf("InsertStatus(%d)", uint8(s))
}

// InsertResult is the outcome for one event, in the order the events were given.
type InsertResult struct {
	EventID uuid.UUID
	Status  InsertStatus
	// EventTimestamp is the stored event's timestamp: for a duplicate, the first one stored.
	EventTimestamp time.Time
}

// InsertParams are the arguments of InsertEvents.
type InsertParams struct {
	// Events are complete events (audit.Input.Prepare made them): ids, timestamps, retention
	// classes and content hashes set.
	Events []audit.Event
	// Commit, when set, sees the results before the transaction commits; returning false rolls
	// it back, so nothing of the call is stored (an atomic batch with a conflict). The results
	// are returned either way.
	Commit func(results []InsertResult) bool
}

// InsertEvents stores a batch in one transaction and one round trip for the common case, and
// reports per event whether it was new, a duplicate or a conflict. The same event_id twice in
// the batch is stored once; the second copy is a duplicate or, with other content, a conflict.
// It reports committed=false when Commit vetoed the transaction.
func (s *Store) InsertEvents(ctx context.Context, p InsertParams) (results []InsertResult, committed bool, err error) {
	if len(p.Events) == 0 {
		return nil, true, nil
	}
	// Collapse repeated ids first: both copies would otherwise pass the key claim of one
	// statement... and the first must be the one stored.
	results = make([]InsertResult, len(p.Events))
	first := make(map[uuid.UUID]int, len(p.Events))
	unique := make([]int, 0, len(p.Events))
	keys := make(map[partitionKey]struct{})
	for i, e := range p.Events {
		if e.RetentionDays == 0 || len(e.ContentHash) != 32 {
			return nil, false, fmt.Errorf("insert events: event %d is not prepared (retention class or content hash missing)", i)
		}
		results[i].EventID = e.EventID
		if j, ok := first[e.EventID]; ok {
			results[i].Status = Conflict
			if bytes.Equal(p.Events[j].ContentHash, e.ContentHash) {
				results[i].Status = Duplicate
			}
			continue
		}
		first[e.EventID] = i
		unique = append(unique, i)
		keys[keyOf(e.RetentionDays, e.EventTimestamp)] = struct{}{}
	}
	if err := s.ensurePartitions(ctx, keys); err != nil {
		return nil, false, fmt.Errorf("insert events: %w", err)
	}

	// Lock keys in one order, so that concurrent batches sharing ids wait for each other
	// instead of deadlocking.
	slices.SortFunc(unique, func(a, b int) int {
		return bytes.Compare(p.Events[a].EventID[:], p.Events[b].EventID[:])
	})

	path := pathFresh
	switch {
	case p.Commit == nil && len(unique) <= singleStatementMax:
		path = pathSingle
	case s.expectTakenKeys():
		path = pathClaim
	}
	for retries := 0; ; {
		switch path {
		case pathFresh, pathClaim:
			committed, err = s.insertCopy(ctx, p, unique, first, results, path == pathFresh)
		default:
			committed, err = s.insertOnce(ctx, p, unique, first, results, path == pathSingle)
		}
		switch {
		case errors.Is(err, errKeyTaken) && path == pathFresh:
			s.keyTaken()
			path = pathClaim
			continue
		case errors.Is(err, errKeyPruned) && path != pathSlow:
			path = pathSlow
			continue
		case errors.Is(err, ErrNoPartition) && retries < 2:
			// A partition this Store remembered was dropped meanwhile: make it again, once.
			retries++
			s.forgetPartitions()
			if err := s.ensurePartitions(ctx, keys); err != nil {
				return nil, false, fmt.Errorf("insert events: %w", err)
			}
			continue
		case err != nil:
			return nil, false, fmt.Errorf("insert events: %w", err)
		}
		return results, committed, nil
	}
}

// The ways InsertEvents tries, fastest first.
const (
	// pathFresh: COPY the keys and the events, assuming every id is new (the common case).
	pathFresh = iota
	// pathClaim: claim the ids with INSERT ... ON CONFLICT DO NOTHING, COPY the new events.
	pathClaim
	// pathSlow: insertSQL, which also copes with events whose key was pruned.
	pathSlow
	// pathSingle: insertSQL alone, without BEGIN and COMMIT: one round trip instead of five
	// for the small groups of single events, when no caller needs to veto the commit. One
	// statement is atomic on its own.
	pathSingle
)

// singleStatementMax is the largest batch pathSingle takes. Measured with 4 writers: at 4
// events a group both paths store about 6k events/s; at 16, COPY in a transaction stores 16k
// and the one statement 10k, since INSERT ... SELECT inserts row by row.
const singleStatementMax = 4

// claimFirstBatches is how many batches skip pathFresh after one found an id taken: a client
// retrying batches would otherwise pay a failed COPY for each.
const claimFirstBatches = 16

// keyTaken records that pathFresh met a taken id.
func (s *Store) keyTaken() { s.claimFirst.Store(claimFirstBatches) }

// expectTakenKeys reports whether this batch should start with pathClaim, because a recent
// batch met a taken id.
func (s *Store) expectTakenKeys() bool {
	for {
		n := s.claimFirst.Load()
		if n <= 0 {
			return false
		}
		if s.claimFirst.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

var (
	// errKeyTaken: COPY of the idempotency keys met an id already claimed; pathClaim sorts
	// out which.
	errKeyTaken = errors.New("idempotency key taken")
	// errKeyPruned: COPY met an event that is stored although its idempotency key was
	// pruned; the slower INSERT ... ON CONFLICT path sorts that out.
	errKeyPruned = errors.New("event stored without its idempotency key")
)

// claimSQL claims each id in audit_event_keys and returns the ids it claimed. An id not
// returned is already taken, by an earlier event or by a concurrent transaction that committed
// it meanwhile; a new statement (rereadKeys) sees either and tells duplicate from conflict.
const claimSQL = `
INSERT INTO audit_event_keys (event_id, event_timestamp, retention_days, content_hash, event_hash)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::integer[], $4::bytea[], $5::bytea[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id`

// insertCopy is the fast path: claim the ids, then COPY the events whose claim is new. COPY
// inserts many rows per call into each partition, which no INSERT does; the claim is what
// makes it safe to skip ON CONFLICT. With fresh, the ids are claimed with a COPY too, which
// fails (errKeyTaken) if any is taken; else with INSERT ... ON CONFLICT DO NOTHING, which
// costs the database about twice as much per key.
func (s *Store) insertCopy(ctx context.Context, p InsertParams, unique []int, first map[uuid.UUID]int, results []InsertResult, fresh bool) (bool, error) {
	tx, err := s.beginCopy(ctx)
	if err != nil {
		return false, err
	}
	defer tx.end(context.WithoutCancel(ctx))

	claimed, reread := unique, []uuid.UUID(nil)
	if fresh {
		err = copyKeys(ctx, tx, p.Events, unique)
	} else {
		var db DBTX
		if db, err = tx.db(ctx); err == nil {
			claimed, reread, err = claimKeys(ctx, db, p.Events, unique)
		}
	}
	if err != nil {
		return false, err
	}
	for _, i := range claimed {
		results[i].Status, results[i].EventTimestamp = Inserted, p.Events[i].EventTimestamp
	}
	if len(reread) > 0 {
		// Claimed: the transaction has begun.
		if err := s.rereadKeys(ctx, tx.conn, p.Events, first, results, reread); err != nil {
			return false, err
		}
	}
	if len(claimed) == 0 {
		return s.finish(ctx, tx, p, first, results)
	}
	// Every result is known before the events are copied (should the COPY fail, InsertEvents
	// goes another way, which sets them all again): p.Commit is asked first, and the COMMIT
	// goes out in one message with the COPY.
	if vetoed(p, first, results) {
		return false, nil
	}
	if err := copyEventRows(ctx, tx, p.Events, claimed, true); err != nil {
		err = interpretError(err)
		if errors.Is(err, ErrConflict) {
			return false, errKeyPruned
		}
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, interpretError(err)
	}
	return true, nil
}

// copyKeys claims the ids of events[unique] with a COPY into audit_event_keys, which fails
// with errKeyTaken if any id is taken.
func copyKeys(ctx context.Context, tx *copyTx, events []audit.Event, unique []int) error {
	err := interpretError(copyKeyRows(ctx, tx, events, unique))
	if errors.Is(err, ErrConflict) {
		return errKeyTaken
	}
	return err
}

// claimKeys claims the ids of events[unique] with claimSQL and returns the indexes of the
// events it claimed and the ids it found taken.
func claimKeys(ctx context.Context, tx DBTX, events []audit.Event, unique []int) (claimed []int, taken []uuid.UUID, err error) {
	n := len(unique)
	ids, tss, classes, hashes := make([][16]byte, n), make([]time.Time, n), make([]int32, n), make([][]byte, n)
	eventHashes := make([][]byte, n)
	for r, i := range unique {
		e := &events[i]
		ids[r], tss[r], classes[r], hashes[r] = e.EventID, e.EventTimestamp, int32(e.RetentionDays), e.ContentHash
		eventHashes[r] = e.EventHash
	}
	rows, err := tx.Query(ctx, claimSQL, ids, tss, classes, pgtype.FlatArray[[]byte](hashes), pgtype.FlatArray[[]byte](eventHashes))
	if err != nil {
		return nil, nil, interpretError(err)
	}
	isClaimed := make(map[[16]byte]bool, n)
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			return nil, nil, interpretError(err)
		}
		isClaimed[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, interpretError(err)
	}
	claimed = make([]int, 0, n)
	for r, i := range unique {
		if isClaimed[ids[r]] {
			claimed = append(claimed, i)
		} else {
			taken = append(taken, uuid.UUID(ids[r]))
		}
	}
	return claimed, taken, nil
}

// finish gives repeated copies of an id the timestamp of the copy that decided, lets
// p.Commit veto, and commits tx (a pgx.Tx or a copyTx).
func (s *Store) finish(ctx context.Context, tx interface{ Commit(context.Context) error }, p InsertParams, first map[uuid.UUID]int, results []InsertResult) (bool, error) {
	if vetoed(p, first, results) {
		return false, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return false, interpretError(err)
	}
	return true, nil
}

// vetoed gives repeated copies of an id the timestamp of the copy that decided, and reports
// whether p.Commit vetoes the transaction.
func vetoed(p InsertParams, first map[uuid.UUID]int, results []InsertResult) bool {
	fillRepeats(first, results)
	return p.Commit != nil && !p.Commit(results)
}

// fillRepeats gives repeated copies of an id the timestamp of the copy that decided.
func fillRepeats(first map[uuid.UUID]int, results []InsertResult) {
	for i := range results {
		if j := first[results[i].EventID]; j != i {
			results[i].EventTimestamp = results[j].EventTimestamp
		}
	}
}

// insertOnce runs insertSQL in a transaction, or, with autocommit, as a statement of its own
// (then the follow-up reads and key repairs are statements of their own too: each is safe
// alone, and the events are durable once insertSQL returns).
func (s *Store) insertOnce(ctx context.Context, p InsertParams, unique []int, first map[uuid.UUID]int, results []InsertResult, autocommit bool) (bool, error) {
	var db DBTX = s.db
	var tx pgx.Tx
	if !autocommit {
		var err error
		if tx, err = s.db.Begin(ctx); err != nil {
			return false, interpretError(err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
		db = tx
	}

	rows, err := db.Query(ctx, insertSQL, insertArgs(p.Events, unique)...)
	if err != nil {
		return false, interpretError(err)
	}
	type row struct {
		id              uuid.UUID
		stored, claimed bool
	}
	var pending []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.stored, &r.claimed); err != nil {
			return false, interpretError(err)
		}
		pending = append(pending, r)
	}
	if err := rows.Err(); err != nil {
		return false, interpretError(err)
	}

	var reread []uuid.UUID
	var pruned []uuid.UUID
	for _, r := range pending {
		i := first[r.id]
		e := &p.Events[i]
		switch {
		case r.stored:
			results[i].Status, results[i].EventTimestamp = Inserted, e.EventTimestamp
		case r.claimed:
			pruned = append(pruned, r.id) // key pruned, event still stored: see resolvePruned
		default:
			reread = append(reread, r.id)
		}
	}
	if len(reread) > 0 {
		if err := s.rereadKeys(ctx, db, p.Events, first, results, reread); err != nil {
			return false, err
		}
	}
	if len(pruned) > 0 {
		if err := s.resolvePruned(ctx, db, p.Events, first, results, pruned); err != nil {
			return false, err
		}
	}
	if autocommit {
		fillRepeats(first, results)
		return true, nil
	}
	return s.finish(ctx, tx, p, first, results)
}

func setExisting(res *InsertResult, e *audit.Event, ts time.Time, hash []byte) {
	res.EventTimestamp = ts
	res.Status = Conflict
	if bytes.Equal(hash, e.ContentHash) {
		res.Status = Duplicate
	}
}

// rereadKeys classifies ids that are already taken: by a stored event, or by a concurrent
// transaction that committed while insertSQL or claimSQL ran, which a new statement sees.
func (s *Store) rereadKeys(ctx context.Context, tx DBTX, events []audit.Event, first map[uuid.UUID]int, results []InsertResult, ids []uuid.UUID) error {
	found, err := classifyStored(ctx, tx, events, first, results, ids,
		`SELECT event_id, event_timestamp, content_hash FROM audit_event_keys WHERE event_id = ANY($1::uuid[])`)
	if err == nil && found != len(ids) {
		err = fmt.Errorf("%w: %d idempotency keys vanished during insert", ErrUnavailable, len(ids)-found)
	}
	return err
}

// resolvePruned handles an id whose key had been pruned (older than IDEMPOTENCY_WINDOW) while
// its event, with the same timestamp and class, is still stored: the primary key of
// audit_events refused the copy. The new key row carries this request's hash; it is set to
// the stored event's, so the key keeps telling duplicates from conflicts correctly, and its xid
// is cleared: the event was sealed before its key was pruned (only sealed keys are), and the
// sealer takes only keys with an xid, so it does not seal it again.
func (s *Store) resolvePruned(ctx context.Context, tx DBTX, events []audit.Event, first map[uuid.UUID]int, results []InsertResult, ids []uuid.UUID) error {
	found, err := classifyStored(ctx, tx, events, first, results, ids, `
		UPDATE audit_event_keys k SET content_hash = e.content_hash, event_hash = e.event_hash, xid = NULL
		FROM audit_events e
		WHERE k.event_id = ANY($1::uuid[]) AND e.event_id = k.event_id
		  AND e.event_timestamp = k.event_timestamp AND e.retention_days = k.retention_days
		RETURNING k.event_id, e.event_timestamp, e.content_hash`)
	if err == nil && found != len(ids) {
		err = fmt.Errorf("insert events: %d events neither stored nor found", len(ids)-found)
	}
	return err
}

// classifyStored runs sql over ids, which returns (event_id, stored timestamp, stored content
// hash) rows, and judges each event a duplicate or a conflict of what is stored.
func classifyStored(ctx context.Context, tx DBTX, events []audit.Event, first map[uuid.UUID]int, results []InsertResult, ids []uuid.UUID, sql string) (int, error) {
	// Planned with its values (an unnamed statement, described first so the ids go in
	// binary): these run rarely, on a table that may have grown a thousandfold since a cached
	// generic plan was made.
	rows, err := tx.Query(ctx, sql, pgx.QueryExecModeDescribeExec, ids)
	if err != nil {
		return 0, interpretError(err)
	}
	found := 0
	for rows.Next() {
		var id uuid.UUID
		var ts time.Time
		var hash []byte
		if err := rows.Scan(&id, &ts, &hash); err != nil {
			return found, interpretError(err)
		}
		i := first[id]
		setExisting(&results[i], &events[i], ts, hash)
		found++
	}
	return found, interpretError(rows.Err())
}
