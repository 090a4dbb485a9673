package httpfutures

import (
	"time"

	"golang.org/x/time/rate"
)

// A BackpressureObserver is a Limiter that is told of the backpressure servers ask for, so that
// it can share it: a Limiter on a store shared by many processes (Redis, say) passes a pause or a
// pace heard by one process to all of them. The Scheduler applies the backpressure to the host
// itself first, then calls ObserveBackpressure of each Limiter given with WithLimiter that
// implements it, from the worker that ran the round trip and with no lock held. It must not block
// for long, and must be safe for concurrent use.
type BackpressureObserver interface {
	Limiter
	// ObserveBackpressure reports what a response from host asked of it.
	ObserveBackpressure(host string, bp Backpressure)
}

// Backpressure is what a server's responses ask of its host, as the Scheduler applies it. The
// zero value asks nothing.
type Backpressure struct {
	// PauseUntil is when the pause asked by a Retry-After (on a 429 or a 503) or an exhausted
	// RateLimit quota ends; zero if none.
	PauseUntil time.Time
	// Pace is the rate the RateLimit fields ask for, and PaceUntil when it lapses; zero if none.
	Pace      rate.Limit
	PaceUntil time.Time
}

// backpressureLocked returns the backpressure h is under at now. It requires s.mu held.
func (s *Scheduler) backpressureLocked(h *host, now time.Time) Backpressure {
	var bp Backpressure
	if h.pausedTo.After(now) {
		bp.PauseUntil = h.pausedTo
	}
	if h.adaptive != nil && h.adaptEnd.After(now) {
		bp.Pace, bp.PaceUntil = h.adaptive.Limit(), h.adaptEnd
	}
	return bp
}

// shareBackpressure tells the Limiters that observe backpressure what host is under, turning a
// panic into a *PanicError.
func (s *Scheduler) shareBackpressure(host string, bp Backpressure) (err error) {
	if bp == (Backpressure{}) {
		return nil
	}
	defer recoverInto(&err)
	for _, l := range s.limiters {
		if o, ok := l.(BackpressureObserver); ok {
			o.ObserveBackpressure(host, bp)
		}
	}
	return nil
}
