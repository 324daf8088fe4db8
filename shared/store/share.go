package store

import (
	"context"
	"sync"
	"time"
)

// shareTTL is how long the namespace statistics of the leaves are reused: they change only
// when autovacuum or a maintenance run analyzes a leaf, and a stale figure costs at most one
// more statement of a query, never a wrong answer.
const shareTTL = 10 * time.Minute

// maxWindowScale bounds how much wider than firstWindow a scoped query's first window is: an
// estimate for a namespace outside a leaf's most common values is a guess, and a window of
// about a month is where its statements would stop getting cheaper anyway.
const maxWindowScale = 32

// leafStats is what the planner's statistics of one leaf say about its namespace column.
type leafStats struct {
	rows     float64            // pg_class.reltuples
	common   map[string]float64 // most common namespaces and the share of rows each holds
	rest     float64            // share of rows holding another, not null, namespace
	distinct float64            // how many other namespaces share rest
}

// namespaceStats caches the leaves' statistics for scopeShare.
type namespaceStats struct {
	mu     sync.Mutex
	at     time.Time
	leaves []leafStats
}

// scopeShare estimates the share of all events whose namespace is one of ns, from the planner
// statistics (pg_stats) of the leaves, weighted by their rows; 1 when there are none to go by.
// A reader of some namespaces matches that share of what a cluster reader's query matches, so
// its first time window must be about 1/share as long to fill the same page in one statement
// (see queryLeavesOnce).
func (s *Store) scopeShare(ctx context.Context, ns []string) float64 {
	leaves := s.nsStats.get(ctx, s)
	var rows, in float64
	for _, l := range leaves {
		rows += l.rows
		for _, n := range ns {
			if f, ok := l.common[n]; ok {
				in += l.rows * f
			} else if l.distinct >= 1 {
				in += l.rows * l.rest / l.distinct
			}
		}
	}
	if rows == 0 || in >= rows {
		return 1
	}
	return max(in/rows, 1.0/maxWindowScale)
}

// get returns the cached statistics, reading them again when they are older than shareTTL.
// A failed read leaves none (no scaling) until the next try after shareTTL: the statistics
// only make a query cheaper, never decide its answer.
func (c *namespaceStats) get(ctx context.Context, s *Store) []leafStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < shareTTL {
		return c.leaves
	}
	leaves, err := s.readNamespaceStats(ctx)
	if err != nil && ctx.Err() != nil {
		return nil // the query is ending anyway; the next one reads them
	}
	c.leaves, c.at = leaves, time.Now()
	return c.leaves
}

// readNamespaceStats reads pg_stats of the namespace column of every analyzed leaf. pg_stats
// shows a table's statistics to whoever may read the table, so a reader role sees them.
func (s *Store) readNamespaceStats(ctx context.Context) ([]leafStats, error) {
	rows, err := s.db.Query(ctx, `SELECT c.reltuples::float8, coalesce(st.most_common_vals::text::text[], '{}'),
	coalesce(st.most_common_freqs, '{}')::float8[], st.null_frac::float8, st.n_distinct::float8
FROM pg_inherits class
JOIN pg_inherits month ON month.inhparent = class.inhrelid
JOIN pg_class c ON c.oid = month.inhrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stats st ON st.schemaname = n.nspname AND st.tablename = c.relname AND st.attname = 'namespace' AND NOT st.inherited
WHERE class.inhparent = 'audit_events'::regclass AND NOT month.inhdetachpending AND c.reltuples > 0`)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var out []leafStats
	for rows.Next() {
		var l leafStats
		var vals []string
		var freqs []float64
		var nullFrac, nDistinct float64
		if err := rows.Scan(&l.rows, &vals, &freqs, &nullFrac, &nDistinct); err != nil {
			return nil, interpretError(err)
		}
		l.common = make(map[string]float64, len(vals))
		l.rest = 1 - nullFrac
		for i, v := range vals {
			if i < len(freqs) {
				l.common[v] = freqs[i]
				l.rest -= freqs[i]
			}
		}
		if nDistinct < 0 { // a share of the rows: -n_distinct × rows distinct values
			nDistinct = -nDistinct * l.rows
		}
		l.distinct = nDistinct - float64(len(l.common))
		l.rest = max(l.rest, 0)
		out = append(out, l)
	}
	return out, interpretError(rows.Err())
}
