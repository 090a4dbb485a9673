package httpfutures

import (
	"context"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// The gates a request passes before a worker runs it: rate tokens (the host's own limiter, the
// server's pace, the shared Limiters), the server's pauses, and the pacer that wakes hosts whose
// time has come.

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
	return h.limiter != nil || h.adaptive != nil || len(s.limiters) > 0
}

// parkLocked makes h wait until at, then return to the round-robin.
func (s *Scheduler) parkLocked(h *host, at time.Time) {
	setWake(&s.timers, h, at)
	s.wakePacerLocked(at)
}

// wakePacerLocked makes the pacer wake by at. It requires s.mu held.
func (s *Scheduler) wakePacerLocked(at time.Time) {
	if s.pacerAt.IsZero() || at.Before(s.pacerAt) {
		s.pacerAt = at
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// admitLocked reserves h's rate tokens if it has none, and reports whether its next request may
// go now. If not, h waits on a timer, or is back in the round-robin. It requires s.mu held, and
// releases it while calling the shared limiters.
func (s *Scheduler) admitLocked(h *host) bool {
	if !h.token {
		now := time.Now()
		// The next request could not have gone before it was queued, nor during a pause.
		notBefore := later(s.at(h.queue.peek().enqueued()), h.pausedTo)
		if !h.hostTok {
			busy := h.mark.since(s.pool.total, h.full.total)
			h.hostDue, h.hostTok = s.reserveHostLocked(h, now, notBefore, busy), true
		}
		if h.hostDue.After(now) {
			s.parkLocked(h, h.hostDue)
			return false
		}
		due := h.hostDue
		if len(s.limiters) > 0 {
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
		h.hostTok = false
		h.token, h.tokenAt = true, due
	}
	if h.tokenAt.After(time.Now()) {
		s.parkLocked(h, h.tokenAt)
		return false
	}
	if !s.takeableLocked(h) || s.inflight >= s.workers || s.closed {
		// The state changed while the lock was released; the token keeps.
		s.pushRingLocked(h)
		s.maybeIdleLocked(h)
		return false
	}
	h.token = false
	return true
}

// refuseLocked fails the request at the head of h's queue, which a Limiter refused with err. It
// requires s.mu held, and releases it while resolving the request.
func (s *Scheduler) refuseLocked(h *host, err error) {
	if f := h.queue.peek(); f != nil {
		s.dequeueLocked(f)
		s.mu.Unlock()
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
	if h.adaptive != nil {
		if now.Before(h.adaptEnd) {
			due = later(due, h.adaptive.reserve(now, notBefore, busy))
		} else {
			h.adaptive = nil
		}
	}
	return due
}

// reserveShared takes a token from each limiter shared by all hosts, one caller at a time and
// with non-decreasing times, and returns when the last is due. notBefore and busy are as for
// RateLimiter.reserve. A Limiter that panics fails with a *PanicError.
func (s *Scheduler) reserveShared(key string, notBefore time.Time, busy time.Duration) (time.Time, error) {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	now := time.Now()
	if now.Before(s.limNow) {
		now = s.limNow
	}
	s.limNow = now
	due := now
	for _, l := range s.limiters {
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

// redirectTokens waits, with no slot of h taken, for the rate tokens of a redirect to h: its pause
// to end, its own limiters and the shared ones. It returns ctx.Err() if ctx ends first.
func (s *Scheduler) redirectTokens(ctx context.Context, h *host) error {
	for {
		s.mu.Lock()
		now := time.Now()
		if until := h.pausedTo; until.After(now) {
			s.mu.Unlock()
			if err := sleepUntil(ctx, until); err != nil {
				return err
			}
			continue
		}
		due := s.reserveHostLocked(h, now, now, 0)
		s.mu.Unlock()
		if len(s.limiters) > 0 {
			shared, err := s.reserveShared(h.key, now, 0)
			if err != nil {
				return &LimiterError{Host: h.key, Err: err}
			}
			due = later(due, shared)
		}
		return sleepUntil(ctx, due)
	}
}

// sleepUntil waits until t, or returns ctx.Err() if ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pace is the pacer goroutine: it sleeps until the earliest host waiting for a time, then puts
// the hosts whose time has come back in the round-robin and wakes workers for them.
func (s *Scheduler) pace() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		for s.timers.len() > 0 && !s.timers.peek().wakeAt.After(now) {
			h := s.timers.pop()
			if s.pushRingLocked(h) {
				s.wakeLocked()
			} else {
				s.maybeIdleLocked(h)
			}
		}
		for s.delayed.len() > 0 && !s.at(s.delayed.peek().more.due).After(now) {
			f := s.delayed.peek()
			s.delayed.remove(f)
			f.host.delayed--
			f.host.queue.push(f)
			if s.pushRingLocked(f.host) {
				s.wakeLocked()
			}
		}
		next := time.Time{}
		if s.timers.len() > 0 {
			next = s.timers.peek().wakeAt
		}
		if at := s.nextRetryLocked(); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
		if at := s.releaseHoldsLocked(now); !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
		s.pacerAt = next
		s.mu.Unlock()
		var fire <-chan time.Time
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
			fire = timer.C
		}
		select {
		case <-fire:
		case <-s.wake:
		case <-s.quit:
			return
		}
	}
}

// nextRetryLocked returns when the earliest retry waiting is due; zero if none waits.
func (s *Scheduler) nextRetryLocked() time.Time {
	if s.delayed.len() == 0 {
		return time.Time{}
	}
	return s.at(s.delayed.peek().more.due)
}

// observe applies the backpressure resp asks for to h, if the Scheduler heeds it, seeds h's
// adaptive limit from a concurrency quota, and tells the Limiters that share backpressure
// (BackpressureObserver). A Limiter that panics fails the round trip with a *PanicError.
func (s *Scheduler) observe(h *host, resp *http.Response) error {
	seed := s.adaptive != nil && resp.Header["Ratelimit-Policy"] != nil
	if !seed && (!s.backpressure || !asksBackpressure(resp)) {
		return nil
	}
	now := time.Now()
	var change LimitChange
	changed := false
	var bp Backpressure
	s.mu.Lock()
	if s.backpressure {
		s.observeLocked(h, resp, now)
		bp = s.backpressureLocked(h, now)
	}
	if seed && h.adapt != nil {
		if quota, ok := parseConcurrencyPolicy(resp.Header); ok {
			change, changed = s.seedLocked(h, quota, now)
		}
	}
	s.mu.Unlock()
	if changed {
		s.limitChanged(change)
	}
	return s.shareBackpressure(h.key, bp)
}

// observeLocked applies the backpressure a response asks for to its host: Retry-After on a 429
// or 503 pauses the host's whole queue, and the RateLimit fields slow its pace. It requires s.mu
// held.
func (s *Scheduler) observeLocked(h *host, resp *http.Response, now time.Time) {
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			s.pauseLocked(h, now, d)
			return // Retry-After wins over the RateLimit fields.
		}
	}
	remaining, reset, ok := parseRateLimit(resp.Header)
	if !ok {
		return
	}
	if remaining == 0 {
		s.pauseLocked(h, now, reset)
		return
	}
	if reset <= 0 {
		return
	}
	// The pace the server asks for, but no slower than one request per WithMaxRetryAfter: a
	// pace is a pause between requests, and pauses are capped.
	pace := rate.Limit(max(float64(remaining)/reset.Seconds(), 1/s.maxRetryAfter.Seconds()))
	if h.adaptive == nil || now.After(h.adaptEnd) {
		h.adaptive = NewRateLimiter(pace, 1)
		h.adaptive.reserve(now, now, 0) // start empty: remaining requests, evenly, by the reset
	} else {
		h.adaptive.lim.SetLimitAt(now, pace)
	}
	h.adaptEnd = now.Add(min(reset, s.maxRetryAfter))
}

// asksBackpressure reports whether resp carries anything observeLocked acts on.
func asksBackpressure(resp *http.Response) bool {
	h := resp.Header
	return len(h) > 0 && (h["Retry-After"] != nil || h["Ratelimit"] != nil || h["Ratelimit-Remaining"] != nil)
}

// pauseLocked stops h's queue for d, capped at the maximum the Scheduler allows.
func (s *Scheduler) pauseLocked(h *host, now time.Time, d time.Duration) {
	if d <= 0 {
		return
	}
	until := now.Add(min(d, s.maxRetryAfter))
	if !until.After(h.pausedTo) {
		return
	}
	h.pausedTo = until
	if h.idleIdx >= 0 {
		s.idle.remove(h)
	}
	s.parkLocked(h, until)
}
