// Package backoff spaces the retries of auditstore's background writers (the sealer, the
// read-audit recorder): while the database is down or read-only for minutes, they wait longer
// and longer between attempts, up to a cap, instead of retrying (and logging) at their usual
// pace; the first success brings the pace back.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is the state of one retry loop. The zero value is not useful: set Min and Max.
type Backoff struct {
	// Min is the wait after the first failure.
	Min time.Duration
	// Max caps the wait.
	Max time.Duration

	failures int
}

// Fail records a failure and returns how long to wait before the next attempt: Min doubled
// for each failure before it, at most Max, less up to a quarter at random so that instances
// that failed together do not retry together.
func (b *Backoff) Fail() time.Duration {
	b.failures++
	d := b.Max
	if b.failures < 32 {
		d = min(b.Max, b.Min<<(b.failures-1))
	}
	return d - rand.N(d/4+1)
}

// Succeed ends a series of failures and returns how many there were.
func (b *Backoff) Succeed() int {
	n := b.failures
	b.failures = 0
	return n
}

// Failures counts the failures since the last success.
func (b *Backoff) Failures() int { return b.failures }

// Loud says whether the failure just recorded should be logged: the first of a series, then
// each time the wait has doubled, so an outage of an hour logs a dozen lines, not hundreds.
func (b *Backoff) Loud() bool {
	return b.failures&(b.failures-1) == 0
}
