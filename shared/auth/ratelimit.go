package auth

import (
	"context"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter limits the events each principal writes, per instance: with N instances behind
// a load balancer the cluster-wide limit is about N times RATE_LIMIT_EVENTS_PER_SEC.
//
// A request over the limit is first held, up to maxWait, until the principal's token bucket
// admits it: a client that sends what it buffered in bursts (kubernaut's flushes batches of
// 1,000 one after another, and drops a batch answered 429) loses nothing, while a sustained
// rate above the limit still runs into the bound and is refused. Tokens are reserved in the
// order requests arrive, so a held batch is never overtaken by later ones.
type RateLimiter struct {
	limit   rate.Limit
	burst   int
	maxWait time.Duration
	now     func() time.Time

	// mu guards perUser and every reservation: reserving, and giving back a reservation that
	// would wait too long, happen as one step, so no other request's tokens are lost in between.
	mu      sync.Mutex
	perUser map[string]*userLimit
	swept   time.Time
}

type userLimit struct {
	lim  *rate.Limiter
	last time.Time
}

// NewRateLimiter allows perSecond events per second per principal, burst at once, and holds a
// request over the limit up to maxWait for the budget to admit it.
func NewRateLimiter(perSecond float64, burst int, maxWait time.Duration) *RateLimiter {
	return &RateLimiter{limit: rate.Limit(perSecond), burst: burst, maxWait: maxWait, now: time.Now, perUser: map[string]*userLimit{}}
}

// Reservation is n events taken from a principal's budget, usable after Delay.
type Reservation struct {
	// Delay is how long the request must be held before it may go on.
	Delay time.Duration
	r     *RateLimiter
	res   *rate.Reservation
}

// Cancel gives the events back, as far as no later reservation has counted on them: the
// request was not stored after all (its client went away while it was held).
func (res *Reservation) Cancel() {
	if res == nil || res.res == nil {
		return
	}
	res.r.mu.Lock()
	defer res.r.mu.Unlock()
	res.res.CancelAt(res.r.now())
}

// Reserve takes n events from the principal's budget if they are admitted within the maximum
// wait: the request may go on after the reservation's Delay. Otherwise it takes nothing and
// says how long until the same request would fit the budget without being held.
func (r *RateLimiter) Reserve(principal string, n int) (res *Reservation, retryAfter time.Duration) {
	if n > r.burst {
		// Never fits: the client must send smaller batches. Tell it how long n events take.
		return nil, time.Duration(math.Ceil(float64(n)/float64(r.limit))) * time.Second
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.user(principal, now)
	rr := u.lim.ReserveN(now, n)
	d := rr.DelayFrom(now)
	if d > r.maxWait {
		rr.CancelAt(now) // nothing was reserved after it: every token comes back
		return nil, d
	}
	return &Reservation{Delay: d, r: r, res: rr}, 0
}

// Wait reserves n events for principal and holds the caller until they are admitted. It
// returns ok false and how long until the request would fit when the hold would exceed the
// maximum wait (nothing is taken), and ctx's error when ctx ends while held (the events are
// given back). A held request holds no database connection: it has not been submitted yet.
func (r *RateLimiter) Wait(ctx context.Context, principal string, n int) (held time.Duration, retryAfter time.Duration, err error) {
	if r.allowNow(principal, n) {
		return 0, 0, nil
	}
	res, retryAfter := r.Reserve(principal, n)
	if res == nil {
		return 0, retryAfter, nil
	}
	if res.Delay <= 0 {
		return 0, 0, nil
	}
	t := time.NewTimer(res.Delay)
	defer t.Stop()
	select {
	case <-t.C:
		return res.Delay, 0, nil
	case <-ctx.Done():
		res.Cancel()
		return 0, 0, ctx.Err()
	}
}

// allowNow takes n events from the principal's budget if it has them now, as a reservation
// without delay would, without making one: the common request of a principal within its
// limit costs no reservation to allocate. Otherwise it takes nothing.
func (r *RateLimiter) allowNow(principal string, n int) bool {
	if n > r.burst {
		return false
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.user(principal, now)
	return u.lim.AllowN(now, n)
}

// user is principal's budget, made when it has none, and marked used at now (under mu).
func (r *RateLimiter) user(principal string, now time.Time) *userLimit {
	u := r.perUser[principal]
	if u == nil {
		u = &userLimit{lim: rate.NewLimiter(r.limit, r.burst)}
		r.perUser[principal] = u
	}
	u.last = now
	if now.Sub(r.swept) > time.Minute {
		r.sweep(now)
	}
	return u
}

// sweep forgets principals idle long enough for their bucket to be full again (and for every
// request they had held to have gone on).
func (r *RateLimiter) sweep(now time.Time) {
	r.swept = now
	idle := time.Duration(float64(r.burst)/float64(r.limit)*float64(time.Second)) + r.maxWait + time.Minute
	for p, u := range r.perUser {
		if now.Sub(u.last) > idle {
			delete(r.perUser, p)
		}
	}
}
