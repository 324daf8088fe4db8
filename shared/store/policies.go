package store

import (
	"context"
	"fmt"
)

// RetentionPolicies returns the default retention (days) of each event_category that has one.
func (s *Store) RetentionPolicies(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.Query(ctx, `SELECT event_category, retention_days FROM audit_retention_policies`)
	if err != nil {
		return nil, fmt.Errorf("retention policies: %w", interpretError(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var c string
		var d int
		if err := rows.Scan(&c, &d); err != nil {
			return nil, fmt.Errorf("retention policies: %w", interpretError(err))
		}
		out[c] = d
	}
	return out, interpretError(rows.Err())
}

// SetRetentionPolicy sets a category's default retention in days (90..2557).
func (s *Store) SetRetentionPolicy(ctx context.Context, category string, days int) error {
	_, err := s.db.Exec(ctx, `INSERT INTO audit_retention_policies (event_category, retention_days) VALUES ($1, $2)
		ON CONFLICT (event_category) DO UPDATE SET retention_days = excluded.retention_days, updated_at = now()`, category, days)
	if err != nil {
		return fmt.Errorf("set retention policy %s: %w", category, interpretError(err))
	}
	return nil
}

// DeleteRetentionPolicy removes a category's policy; ErrNotFound when it has none.
func (s *Store) DeleteRetentionPolicy(ctx context.Context, category string) error {
	tag, err := s.db.Exec(ctx, `DELETE FROM audit_retention_policies WHERE event_category = $1`, category)
	if err != nil {
		return fmt.Errorf("delete retention policy %s: %w", category, interpretError(err))
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
