package write

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// PolicySource lists the retention policies (event_category → days); *store.Store is one.
type PolicySource interface {
	RetentionPolicies(ctx context.Context) (map[string]int, error)
}

// policyRefresh is how old the cached policies may get: a changed policy applies to events
// written at most this long after the change.
const policyRefresh = 30 * time.Second

// policies caches the retention policies for the write path, refreshed in the background when
// stale, so no request waits for them. When the database cannot be read the last known
// policies stay in force.
type policies struct {
	src     PolicySource
	current atomic.Pointer[map[string]int]
	loaded  atomic.Int64 // unix nanos of the last successful load
	mu      sync.Mutex
	loading bool
}

// WithRetentionPolicies applies each category's default retention from src (an event may
// lengthen it, never shorten it).
func WithRetentionPolicies(src PolicySource) Option {
	return func(h *Handler) {
		p := &policies{src: src}
		p.refresh(context.Background()) // first load in line: a start with no policies would store wrong classes
		h.policies = p
	}
}

func (p *policies) lookup(category string) (int, bool) {
	if time.Since(time.Unix(0, p.loaded.Load())) > policyRefresh {
		p.mu.Lock()
		if !p.loading {
			p.loading = true
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				p.refresh(ctx)
				p.mu.Lock()
				p.loading = false
				p.mu.Unlock()
			}()
		}
		p.mu.Unlock()
	}
	m := p.current.Load()
	if m == nil {
		return 0, false
	}
	d, ok := (*m)[category]
	return d, ok
}

func (p *policies) refresh(ctx context.Context) {
	m, err := p.src.RetentionPolicies(ctx)
	if err != nil {
		slog.Warn("retention policies not refreshed; the last known stay in force", "error", err)
		return
	}
	p.current.Store(&m)
	p.loaded.Store(time.Now().UnixNano())
}
