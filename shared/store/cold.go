package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/jackc/pgx/v5"
)

// ColdFile is one row of the cold tier's catalogue (audit_cold_files): a Parquet file in
// object storage holding events of one retention class and month that are no longer in a
// partition.
type ColdFile struct {
	Key   string
	Class int
	// Month is the first instant (UTC) of the month.
	Month time.Time
	// SourceOID is the partition the file was made from.
	SourceOID                            uint32
	Rows, Bytes                          int64
	SHA256, RowsSHA256                   string
	MinEventTimestamp, MaxEventTimestamp time.Time
	MinCorrelationID, MaxCorrelationID   string
	SchemaVersion                        int
	CreatedAt                            time.Time
	// LookupFilter is the file's bloom filter over its lookup keys (archive.LookupProbe); nil
	// for a file recorded before filters existed. Reads for queries leave it out: the
	// catalogue tests it itself (ColdFilesFor).
	LookupFilter []byte
}

const coldColumns = `key, retention_days, month, source_oid, rows, bytes, sha256, rows_sha256,
	min_event_timestamp, max_event_timestamp, min_correlation_id, max_correlation_id, schema_version, created_at`

// RecordColdFiles adds files to the catalogue in one transaction: from then on queries read
// them (once their source partition is detached). A key already recorded is a conflict.
func (s *Store) RecordColdFiles(ctx context.Context, files []ColdFile) error {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record cold files: %w", interpretError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	for _, f := range files {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_cold_files (`+coldColumns+`, lookup_filter)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			f.Key, f.Class, f.Month.UTC().Format(time.DateOnly), f.SourceOID, f.Rows, f.Bytes, f.SHA256, f.RowsSHA256,
			f.MinEventTimestamp, f.MaxEventTimestamp, f.MinCorrelationID, f.MaxCorrelationID, f.SchemaVersion, f.CreatedAt,
			f.LookupFilter); err != nil {
			return fmt.Errorf("record cold file %s: %w", f.Key, interpretError(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record cold files: %w", interpretError(err))
	}
	return nil
}

// ColdFiles returns the catalogue, oldest month first.
func (s *Store) ColdFiles(ctx context.Context) ([]ColdFile, error) {
	rows, err := s.db.Query(ctx, `SELECT `+coldColumns+`, lookup_filter FROM audit_cold_files ORDER BY month, retention_days, key`)
	if err != nil {
		return nil, fmt.Errorf("cold files: %w", interpretError(err))
	}
	return collectColdFiles(rows)
}

func collectColdFiles(rows pgx.Rows) ([]ColdFile, error) {
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ColdFile, error) {
		var f ColdFile
		err := row.Scan(&f.Key, &f.Class, &f.Month, &f.SourceOID, &f.Rows, &f.Bytes, &f.SHA256, &f.RowsSHA256,
			&f.MinEventTimestamp, &f.MaxEventTimestamp, &f.MinCorrelationID, &f.MaxCorrelationID, &f.SchemaVersion, &f.CreatedAt,
			&f.LookupFilter)
		f.Month = f.Month.UTC()
		f.MinEventTimestamp, f.MaxEventTimestamp = f.MinEventTimestamp.UTC(), f.MaxEventTimestamp.UTC()
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("cold files: %w", interpretError(err))
	}
	return out, nil
}

// ForgetColdFile removes a file from the catalogue (its month expired; the caller deletes the
// file after this, so a query never names a file that is gone).
func (s *Store) ForgetColdFile(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM audit_cold_files WHERE key = $1`, key); err != nil {
		return fmt.Errorf("forget cold file %s: %w", key, interpretError(err))
	}
	return nil
}

// LeafOID returns the table oid of a leaf, which names it across a drop and re-creation.
func (s *Store) LeafOID(ctx context.Context, leaf string) (uint32, error) {
	if !leafName.MatchString(leaf) {
		return 0, fmt.Errorf("leaf oid: %q is not a leaf of audit_events", leaf)
	}
	var oid uint32
	if err := s.db.QueryRow(ctx, `SELECT oid FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace`, leaf).Scan(&oid); err != nil {
		return 0, fmt.Errorf("leaf oid %s: %w", leaf, interpretError(err))
	}
	return oid, nil
}

// MatchData tells which of docs (event_data documents) contain data (jsonb @>, when set) and
// match path (jsonb @@, when set): PostgreSQL decides, so a JSON filter means the same for
// events read from object storage as for those in a partition.
func (s *Store) MatchData(ctx context.Context, docs []json.RawMessage, data json.RawMessage, path string) ([]bool, error) {
	texts := make([]string, len(docs))
	for i, d := range docs {
		texts[i] = string(d)
	}
	var dataArg, pathArg any
	if len(data) > 0 {
		dataArg = string(data)
	}
	if path != "" {
		pathArg = path
	}
	rows, err := s.db.Query(ctx, `SELECT ($2::jsonb IS NULL OR d @> $2::jsonb) AND ($3::jsonpath IS NULL OR coalesce(d @@ $3::jsonpath, false))
		FROM unnest($1::jsonb[]) WITH ORDINALITY AS u(d, i) ORDER BY i`, texts, dataArg, pathArg)
	if err != nil {
		return nil, fmt.Errorf("match event_data: %w", interpretError(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil {
		return nil, fmt.Errorf("match event_data: %w", interpretError(err))
	}
	return out, nil
}

// CountHeld counts the events among events that an active legal hold covers, by the same
// function the delete guard asks (audit_event_held over the event's row).
func (s *Store) CountHeld(ctx context.Context, events []audit.Event) (int64, error) {
	docs := make([]string, len(events))
	for i := range events {
		b, err := json.Marshal(&events[i])
		if err != nil {
			return 0, fmt.Errorf("count held: %w", err)
		}
		docs[i] = string(b)
	}
	var n int64
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM unnest($1::jsonb[]) AS u(j)
		WHERE audit_event_held(to_jsonb(jsonb_populate_record(NULL::audit_events, j - 'event_hash' - 'hash_version' - 'withheld')))`, docs).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count held: %w", interpretError(err))
	}
	return n, nil
}

// ReadableColdFiles returns the catalogue's files whose events a query reads cold: those whose
// source partition is no longer attached (while it is, its events are read hot). A query reads
// the hot tier first and this after, so a month moved in between is read twice, never missed;
// the reader drops the second copy.
func (s *Store) ReadableColdFiles(ctx context.Context) ([]ColdFile, error) {
	return s.ColdFilesFor(ctx, ColdFileQuery{})
}

// ColdFileQuery narrows the readable cold files to those that may hold a query's matches.
type ColdFileQuery struct {
	// Since and Until bound event_timestamp to [Since, Until) when set.
	Since, Until *time.Time
	// Probes are lookup keys (archive.LookupProbe): a file is kept when, for every Group, one
	// of its keys has all its Positions set in the file's lookup filter, and always when the
	// file has no filter.
	Probes []ColdProbe
}

// ColdProbe is one lookup key's bit positions in a lookup filter, modulo the filter's size.
type ColdProbe struct {
	// Group is the column the key is a value of: keys of one group are alternatives.
	Group     int
	Positions []int64
}

// ColdFilesFor returns the readable cold files (as ReadableColdFiles) that may hold matches of
// q: PostgreSQL tests each file's time range and lookup filter, so a lookup learns which files
// to open without reading the others' footers, and the rows it receives grow with the files
// that may match, not with the catalogue.
func (s *Store) ColdFilesFor(ctx context.Context, q ColdFileQuery) ([]ColdFile, error) {
	var groups, keys []int32
	var positions []int64
	for k, p := range q.Probes {
		for _, pos := range p.Positions {
			groups, keys, positions = append(groups, int32(p.Group)), append(keys, int32(k)), append(positions, pos)
		}
	}
	// A file is dropped when some group has no key whose every bit is set.
	rows, err := s.db.Query(ctx, `SELECT `+coldColumns+`, NULL::bytea FROM audit_cold_files f
		WHERE NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = f.source_oid AND NOT i.inhdetachpending)
		  AND ($1::timestamptz IS NULL OR f.max_event_timestamp >= $1)
		  AND ($2::timestamptz IS NULL OR f.min_event_timestamp < $2)
		  AND (f.lookup_filter IS NULL OR cardinality($3::int[]) = 0 OR NOT EXISTS (
			SELECT 1 FROM (
				SELECT p.g, bool_and(get_bit(f.lookup_filter, p.pos % (8 * length(f.lookup_filter))) = 1) AS hit
				FROM unnest($3::int[], $4::int[], $5::bigint[]) AS p(g, k, pos) GROUP BY p.g, p.k) AS key
			GROUP BY key.g HAVING NOT bool_or(key.hit)))
		ORDER BY month, retention_days, key`, q.Since, q.Until, groups, keys, positions)
	if err != nil {
		return nil, fmt.Errorf("readable cold files: %w", interpretError(err))
	}
	return collectColdFiles(rows)
}

// SetColdLookupFilter records the lookup filter of a file recorded without one.
func (s *Store) SetColdLookupFilter(ctx context.Context, key string, filter []byte) error {
	if _, err := s.db.Exec(ctx, `UPDATE audit_cold_files SET lookup_filter = $2 WHERE key = $1 AND lookup_filter IS NULL`, key, filter); err != nil {
		return fmt.Errorf("set lookup filter of cold file %s: %w", key, interpretError(err))
	}
	return nil
}
