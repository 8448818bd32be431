package api

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a token bucket per principal: per API key, and per widget
// token's call (so one busy agent does not slow the others down). Buckets
// that have refilled are forgotten when the map grows, since a full bucket
// is what a new one starts as.
type limiter struct {
	// mu covers the map and, held across a whole allow, keeps a prune from
	// replacing a bucket that a concurrent request is taking from.
	mu      sync.Mutex
	rate    rate.Limit
	burst   int
	now     func() time.Time
	buckets map[string]*rate.Limiter
}

func newLimiter(rl RateLimit, now func() time.Time) *limiter {
	return &limiter{rate: rate.Limit(rl.PerSecond), burst: rl.Burst, now: now, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for who. When none is left it reports how long
// until one is, rounded up to whole seconds for Retry-After.
func (l *limiter) allow(who string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[who]
	if !ok {
		if len(l.buckets) >= pruneBuckets {
			l.prune(now)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[who] = b
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	wait := (1 - b.TokensAt(now)) / float64(l.rate)
	return false, max(1, int(math.Ceil(wait)))
}

const pruneBuckets = 4096

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}
