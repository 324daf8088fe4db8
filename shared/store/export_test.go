package store

import "context"

// ScopeShare exposes scopeShare to the tests of package store_test.
func (s *Store) ScopeShare(ctx context.Context, ns []string) float64 { return s.scopeShare(ctx, ns) }
