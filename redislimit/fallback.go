package redislimit

import (
	"time"

	"golang.org/x/time/rate"
)

// A fallback paces requests locally while Redis is unavailable, at a share of the quota. Like
// the leases, it keeps an absolute schedule: a caller that wakes late for a token (a timer fires
// a millisecond or more after its time) is handed the next one at once, as long as it is no more
// than 10 ms behind, instead of losing the time it overslept. Its zero value is not usable; it
// is guarded by the Limiter's mu.
type fallback struct {
	lim    *rate.Limiter
	last   time.Time // the time of the last reservation
	sched  time.Time // when the last token was due
	behind bool      // the last token was not free at once: callers queue on the schedule
}

func newFallback(r rate.Limit, burst int) *fallback {
	return &fallback{lim: rate.NewLimiter(r, max(burst, 1))}
}

// reserve takes a token at now and returns when it is due.
func (f *fallback) reserve(now time.Time) time.Time {
	t := now
	if f.behind && now.After(f.sched) && now.Sub(f.sched) <= minLapse {
		t = f.sched
	}
	t = later(t, f.last)
	delay := f.lim.ReserveN(t, 1).DelayFrom(t)
	due := t.Add(delay)
	f.last, f.sched, f.behind = t, due, delay > 0
	return due
}
