package store

import (
	"context"
	"fmt"
	"time"
)

// partitionKey names one leaf: a retention class and a calendar month (UTC).
type partitionKey struct {
	class int
	month int // year*12 + month-1
}

func keyOf(class int, ts time.Time) partitionKey {
	ts = ts.UTC()
	return partitionKey{class: class, month: ts.Year()*12 + int(ts.Month()) - 1}
}

func (k partitionKey) first() time.Time {
	return time.Date(k.month/12, time.Month(k.month%12+1), 1, 0, 0, 0, 0, time.UTC)
}

// CreatePartitions makes every missing partition for the months from..to (inclusive, any day
// of each month) and the given retention classes (nil: the classes that exist) and returns the
// names it created. It is idempotent and safe to call concurrently.
func (s *Store) CreatePartitions(ctx context.Context, from, to time.Time, classes []int) ([]string, error) {
	rows, err := s.db.Query(ctx, "SELECT audit_create_partitions($1::date, $2::date, $3::integer[])",
		from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly), classes)
	if err != nil {
		return nil, fmt.Errorf("create partitions: %w", interpretError(err))
	}
	var created []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("create partitions: %w", interpretError(err))
		}
		created = append(created, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("create partitions: %w", interpretError(err))
	}
	return created, nil
}

// ensurePartitions makes sure a partition exists for every (class, month) in keys, asking
// the database only for those this Store has not seen yet. This is how no event is ever
// refused for lack of a partition, without a default partition that would forbid
// DETACH ... CONCURRENTLY and collect stray rows.
func (s *Store) ensurePartitions(ctx context.Context, keys map[partitionKey]struct{}) error {
	s.mu.Lock()
	var missing []partitionKey
	for k := range keys {
		if _, ok := s.partitions[k]; !ok {
			missing = append(missing, k)
		}
	}
	s.mu.Unlock()
	for _, k := range missing {
		if _, err := s.CreatePartitions(ctx, k.first(), k.first(), []int{k.class}); err != nil {
			return err
		}
		s.mu.Lock()
		s.partitions[k] = struct{}{}
		s.mu.Unlock()
	}
	return nil
}

// forgetPartitions drops the cache, after the database said a partition was missing (a
// maintenance run may have dropped one this Store remembered).
func (s *Store) forgetPartitions() {
	s.mu.Lock()
	clear(s.partitions)
	s.mu.Unlock()
}
