package auth

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter limits the events each principal writes, per instance: with N instances behind
// a load balancer the cluster-wide limit is about N times RATE_LIMIT_EVENTS_PER_SEC.
type RateLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	perUser map[string]*userLimit
	swept   time.Time
}

type userLimit struct {
	lim  *rate.Limiter
	last time.Time
}

// NewRateLimiter allows perSecond events per second per principal, burst at once.
func NewRateLimiter(perSecond float64, burst int) *RateLimiter {
	return &RateLimiter{limit: rate.Limit(perSecond), burst: burst, now: time.Now, perUser: map[string]*userLimit{}}
}

// Allow takes n events from the principal's budget. When they do not fit, it takes nothing and
// says how long to wait before the same request would fit.
func (r *RateLimiter) Allow(principal string, n int) (ok bool, retryAfter time.Duration) {
	now := r.now()
	r.mu.Lock()
	u := r.perUser[principal]
	if u == nil {
		u = &userLimit{lim: rate.NewLimiter(r.limit, r.burst)}
		r.perUser[principal] = u
	}
	u.last = now
	if now.Sub(r.swept) > time.Minute {
		r.sweep(now)
	}
	r.mu.Unlock()

	if n > r.burst {
		// Never fits: the client must send smaller batches. Tell it how long n events take.
		return false, time.Duration(math.Ceil(float64(n)/float64(r.limit))) * time.Second
	}
	res := u.lim.ReserveN(now, n)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets principals idle long enough for their bucket to be full again.
func (r *RateLimiter) sweep(now time.Time) {
	r.swept = now
	idle := time.Duration(float64(r.burst)/float64(r.limit)*float64(time.Second)) + time.Minute
	for p, u := range r.perUser {
		if now.Sub(u.last) > idle {
			delete(r.perUser, p)
		}
	}
}
