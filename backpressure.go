package httpfutures

import (
	"net/http"
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
	if h.pace != nil && h.paceUntil.After(now) {
		bp.Pace, bp.PaceUntil = h.pace.Limit(), h.paceUntil
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
	for _, l := range s.shared.limiters {
		if o, ok := l.(BackpressureObserver); ok {
			o.ObserveBackpressure(host, bp)
		}
	}
	return nil
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
	var bp Backpressure
	s.mu.Lock()
	before := h.serverAsk
	if s.backpressure {
		s.observeLocked(h, resp, now)
		bp = s.backpressureLocked(h, now)
	}
	after := h.serverAsk
	if seed && h.adapt != nil {
		if quota, ok := parseConcurrencyPolicy(resp.Header); ok {
			s.seedLocked(h, quota, now)
		}
	}
	n := s.takeNewsLocked()
	s.mu.Unlock()
	s.toldAsked(h.key, before, after)
	s.deliver(n)
	return s.shareBackpressure(h.key, bp)
}

// toldAsked tells the Observers what a response made host's server ask for, from before to after.
func (s *Scheduler) toldAsked(host string, before, after serverAsk) {
	if fn := s.obs.HostPaused; fn != nil && !after.pausedTo.Equal(before.pausedTo) {
		tell2(fn, host, after.pausedTo)
	}
	if fn := s.obs.HostPaced; fn != nil && after.pace != nil && !after.paceUntil.Equal(before.paceUntil) {
		tell3(fn, host, after.pace.Limit(), after.paceUntil)
	}
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
	if h.pace == nil || now.After(h.paceUntil) {
		h.pace = NewRateLimiter(pace, 1)
		h.pace.reserve(now, now, 0) // start empty: remaining requests, evenly, by the reset
	} else {
		h.pace.lim.SetLimitAt(now, pace)
	}
	h.paceUntil = now.Add(min(reset, s.maxRetryAfter))
}

// asksBackpressure reports whether resp carries anything observeLocked acts on.
func asksBackpressure(resp *http.Response) bool {
	h := resp.Header
	return len(h) > 0 && (h["Retry-After"] != nil || h["Ratelimit"] != nil || h["Ratelimit-Remaining"] != nil)
}

// pauseLocked stops h's queue for d, capped at the maximum the Scheduler allows, and fails the
// requests queued whose deadline ends before the pause does; the caller delivers the news.
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
	s.unmetPausedLocked(h, until, now)
}
