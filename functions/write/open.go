package write

import (
	"context"
	"io"

	"github.com/auditstore/auditstore/shared/deadletter"
	"github.com/auditstore/auditstore/shared/function"
	"github.com/auditstore/auditstore/shared/store"
)

// Open builds the write function over s as it is deployed: guarded and rate-limited by
// srv.Auth, with the retention policies of s, and its dead letters in the bucket at
// cfg.DeadLetterURL (else in s).
func Open(ctx context.Context, srv *function.Server, s *store.Store, cfg Config) (*Handler, error) {
	var letters DeadLetterStore = s
	if cfg.DeadLetterURL != "" {
		b, err := deadletter.Open(ctx, cfg.DeadLetterURL)
		if err != nil {
			return nil, err
		}
		letters = b
	}
	h, err := New(s, cfg, srv.Registry, WithAuthorizer(srv.Auth.Authorizer, srv.Auth.Metrics),
		WithRateLimiter(srv.Auth.Limiter), WithRetentionPolicies(s), WithDeadLetters(letters))
	if err != nil {
		if c, ok := letters.(io.Closer); ok {
			_ = c.Close()
		}
		return nil, err
	}
	return h, nil
}
