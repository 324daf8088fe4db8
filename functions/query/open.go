package query

import (
	"context"
	"fmt"

	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
)

// OpenReplica opens the query pool on the streaming replica that cfg's QUERY_DATABASE_URL
// names, when it names another database than databaseURL, and returns the option that makes
// the query function read from it (primary, the query pool on databaseURL, answers what it
// cannot), the query function's readiness (either database answers: one is enough to read),
// and a function that closes the pool. Without a replica: no option, and primary's Ping.
func OpenReplica(ctx context.Context, databaseURL string, cfg Config, maxConns int32, primary *store.Store) ([]Option, func(context.Context) error, func(), error) {
	if cfg.DatabaseURL == "" || cfg.DatabaseURL == databaseURL {
		return nil, func(ctx context.Context) error { return function.DatabaseState(primary.Ping(ctx)) }, func() {}, nil
	}
	replica, closePool, err := function.OpenStore(ctx, cfg.DatabaseURL, cfg.PoolOptions(maxConns))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("QUERY_DATABASE_URL: %w", err)
	}
	ready := func(ctx context.Context) error {
		err := primary.Ping(ctx)
		if err != nil && replica.Ping(ctx) == nil {
			return nil
		}
		return function.DatabaseState(err)
	}
	return []Option{WithReplica(replica, primary)}, ready, closePool, nil
}

// Open builds the query function as it is deployed, reading from s, the primary (and its
// integrity log), guarded by srv.Auth, with opts (OpenReplica's). Reads are recorded through audits, which may
// be another pool than s: a query pool's statement timeout is for reads. keys are the
// checkpoint keys it publishes.
func Open(srv *function.Server, s, audits *store.Store, keys []integrity.PublicKey, cfg Config, opts ...Option) (*Handler, error) {
	return New(s, cfg, srv.Registry, append([]Option{WithAuthorizer(srv.Auth.Authorizer, srv.Auth.Metrics),
		WithReadAuditTo(audits), WithIntegrity(s, keys)}, opts...)...)
}
