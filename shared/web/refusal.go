package web

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// refusalPacer slows down a client that keeps sending what is refused. Every refusal (a 400,
// 401, 403, 408, 413, 414, 415 or 431) spends one token of its client's bucket, and one more for
// every refusalBytes of body it read (refusing costs a scan of what arrived); once the bucket
// is empty the refusal is held until a token is due, at most maxWait, before it is sent. A
// refused request has cost its linear scan already; what the hold bounds is how many of them
// a sender that waits for its answers can make a second, and so how much of the machine a
// few hostile senders take from everyone else. Requests that are not refused are never held,
// also those of a client whose refusals are.
//
// The client is the authenticated principal when the request got that far, else its IP
// address (behind Knative's queue-proxy, the pod itself: every unauthenticated refusal then
// shares one bucket, which only slows refusals).
type refusalPacer struct {
	rate    float64 // tokens a second
	burst   float64
	maxWait time.Duration

	mu      sync.Mutex
	clients map[string]*bucket
}

// refusalBytes is how much of a refused body costs one more token: a 5 MiB body refused costs
// as much as 21 small ones.
const refusalBytes = 256 << 10

type bucket struct {
	tokens float64
	at     time.Time
}

func newRefusalPacer(perSec float64, burst int, maxWait time.Duration) *refusalPacer {
	return &refusalPacer{rate: perSec, burst: float64(burst), maxWait: maxWait, clients: map[string]*bucket{}}
}

// delay takes cost tokens for client's refusal and returns how long to hold it.
func (p *refusalPacer) delay(client string, cost float64, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.clients[client]
	if b == nil {
		if len(p.clients) >= 10000 {
			p.prune(now)
		}
		b = &bucket{tokens: p.burst, at: now}
		p.clients[client] = b
	}
	b.tokens = math.Min(p.burst, b.tokens+now.Sub(b.at).Seconds()*p.rate)
	b.at = now
	b.tokens -= cost
	if b.tokens >= 0 {
		return 0
	}
	wait := time.Duration(-b.tokens / p.rate * float64(time.Second))
	if wait > p.maxWait {
		// The token is not kept owing: a sender that does not wait must not push the wait
		// of its later refusals beyond the bound.
		b.tokens = -p.maxWait.Seconds() * p.rate
		wait = p.maxWait
	}
	return wait
}

// prune forgets the clients whose buckets have filled again.
func (p *refusalPacer) prune(now time.Time) {
	for k, b := range p.clients {
		if b.tokens+now.Sub(b.at).Seconds()*p.rate >= p.burst {
			delete(p.clients, k)
		}
	}
}

func isRefusal(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout,
		http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusUnsupportedMediaType,
		http.StatusRequestHeaderFieldsTooLarge:
		return true
	}
	return false
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
