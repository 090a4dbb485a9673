package httpfutures

import (
	"context"
	"sync"
	"time"
)

// The gates a request passes before a worker runs it: rate tokens (the host's own limiter, the
// server's pace, the shared Limiters), the server's pauses, and the pacer that wakes hosts whose
// time has come.

// sharedLimiters are the Limiters all hosts share (WithRateLimit, WithLimiter). A Scheduler calls
// them one reservation at a time, with times that never go back: mu serializes the
// reservations, and guards now.
type sharedLimiters struct {
	limiters []Limiter // set by setup, read-only after
	mu       sync.Mutex
	now      time.Time // the last time given to a limiter
}

// minFull is the shortest spell of full slots that costs the rate limiters their catch-up. Shorter
// spells are mostly the slots draining a catch-up's own backlog after a late wake-up; a longer one
// (a slow response holding the slots) means the tokens that came due could not be used, and a
// token bucket would have lost them.
const minFull = 10 * time.Millisecond

// A fullClock accumulates how long a set of slots (the pool's, or a host's) was full, counting
// only spells longer than minFull. Its zero value has counted nothing and is not full.
type fullClock struct {
	total time.Duration
	since time.Time // when the slots filled; zero while they are not full
}

// fill records that the slots filled at now.
func (c *fullClock) fill(now time.Time) { c.since = now }

// drain records that a slot freed at now, and returns the spell it ended, if it counted.
func (c *fullClock) drain(now time.Time) time.Duration {
	if c.since.IsZero() {
		return 0
	}
	d := now.Sub(c.since)
	c.since = time.Time{}
	if d <= minFull {
		return 0
	}
	c.total += d
	return d
}

// A busyMark remembers how long slots had been full at a reservation, so that the next one knows
// how long, in between, no request could have gone for want of a slot.
type busyMark struct{ pool, slots time.Duration }

// since returns how long the slots were full since the mark, and moves the mark to now's totals.
func (m *busyMark) since(pool, slots time.Duration) time.Duration {
	d := pool - m.pool + slots - m.slots
	m.pool, m.slots = pool, slots
	return d
}

// wakeLocked wakes a waiting worker if there is work that no woken worker will take: at most
// one worker is being woken per host in the round-robin, and each, once it has taken a request,
// wakes the next if work remains. Waking every worker for every request would have them all
// contend for mu, on a machine with fewer cores than workers. It requires s.mu held.
func (s *Scheduler) wakeLocked() {
	if s.waiting > s.waking && s.waking < s.ring.len() && s.inflight+s.waking < s.workers {
		s.waking++
		s.cond.Signal()
	}
}

// paced reports whether h's requests need rate tokens.
func (s *Scheduler) paced(h *host) bool {
	return h.limiter != nil || h.pace != nil || len(s.shared.limiters) > 0
}

// admitLocked reserves h's rate tokens if it has none, and reports whether its next request may
// go now. If not, h waits on a timer (and the requests at the head of its queue whose deadline
// ends before it fail), or is back in the round-robin. It requires s.mu held, and releases it
// while calling the shared limiters and while failing requests.
func (s *Scheduler) admitLocked(h *host) bool {
	if !h.reserved {
		now := time.Now()
		// The next request could not have gone before it was queued, nor during a pause.
		notBefore := later(s.at(h.queue.peek().enqueued()), h.pausedTo)
		if !h.ownReserved {
			busy := h.mark.since(s.pool.total, h.full.total)
			h.ownDue, h.ownReserved = s.reserveHostLocked(h, now, notBefore, busy), true
		}
		if h.ownDue.After(now) {
			s.parkLocked(h, h.ownDue)
			s.unmetHeadLocked(h)
			return false
		}
		due := h.ownDue
		if len(s.shared.limiters) > 0 {
			h.reserving = true
			busy := s.sharedMark.since(s.pool.total, s.hostsFull)
			s.mu.Unlock()
			shared, err := s.reserveShared(h.key, notBefore, busy)
			s.mu.Lock()
			h.reserving = false
			if err != nil {
				s.refuseLocked(h, err)
				return false
			}
			due = later(due, shared)
		}
		h.ownReserved = false
		h.reserved, h.due = true, due
	}
	if h.due.After(time.Now()) {
		s.parkLocked(h, h.due)
		s.unmetHeadLocked(h)
		return false
	}
	if !s.takeableLocked(h) || s.inflight >= s.workers || s.closed {
		// The state changed while the lock was released; the token keeps.
		s.pushRingLocked(h)
		s.maybeIdleLocked(h)
		return false
	}
	h.reserved = false
	return true
}

// refuseLocked fails the request at the head of h's queue, which a Limiter refused with err. It
// requires s.mu held, and releases it while resolving the request.
func (s *Scheduler) refuseLocked(h *host, err error) {
	if f := h.queue.peek(); f != nil {
		s.dequeueLocked(f)
		s.mu.Unlock()
		if fn := s.obs.LimiterFailed; fn != nil {
			tell2(fn, h.key, err) // before the request it failed resolves
		}
		s.abortAll([]*Future{f}, &LimiterError{Host: h.key, Err: err})
		s.mu.Lock()
	}
	s.pushRingLocked(h)
	s.maybeIdleLocked(h)
}

// reserveHostLocked takes a token from h's own limiters and returns when it is due.
func (s *Scheduler) reserveHostLocked(h *host, now, notBefore time.Time, busy time.Duration) time.Time {
	due := now
	if h.limiter != nil {
		due = h.limiter.reserve(now, notBefore, busy)
	}
	if h.pace != nil {
		if now.Before(h.paceUntil) {
			due = later(due, h.pace.reserve(now, notBefore, busy))
		} else {
			h.pace = nil
		}
	}
	return due
}

// reserveShared takes a token from each limiter shared by all hosts, one caller at a time and
// with non-decreasing times, and returns when the last is due. notBefore and busy are as for
// RateLimiter.reserve. A Limiter that panics fails with a *PanicError.
func (s *Scheduler) reserveShared(key string, notBefore time.Time, busy time.Duration) (time.Time, error) {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	now := time.Now()
	if now.Before(s.shared.now) {
		now = s.shared.now
	}
	s.shared.now = now
	due := now
	for _, l := range s.shared.limiters {
		var at time.Time
		var err error
		if rl, ok := l.(*RateLimiter); ok {
			at = rl.reserve(now, notBefore, busy)
		} else {
			at, err = reserveGuarded(s.ctx, l, key, now)
		}
		if err != nil {
			return time.Time{}, err
		}
		due = later(due, at)
	}
	return due, nil
}

// reserveGuarded calls l.Reserve, turning a panic into a *PanicError.
func reserveGuarded(ctx context.Context, l Limiter, key string, now time.Time) (at time.Time, err error) {
	defer recoverInto(&err)
	return l.Reserve(ctx, key, now)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
