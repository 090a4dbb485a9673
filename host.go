package httpfutures

import (
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// host is the state the Scheduler keeps for one host. It is guarded by Scheduler.mu, except
// during a reservation (reserving), when the reserving worker alone touches its limiters.
type host struct {
	key string

	// Its requests.
	queue    hostQueue
	inflight int            // host slots taken
	delayed  int            // requests waiting to be tried again: they keep the host
	kept     int            // redirects on their way to it, and running requests redirected away: they keep it too
	waiters  *slotQueue     // redirects waiting for a slot, handed one as it frees; nil if none
	adapt    *adaptiveState // its adaptive limit (WithAdaptiveHostLimit); nil if off

	// Its pace: the host's own rate limit, and what the server asked for.
	limiter  *RateLimiter // WithHostRateLimit; nil if none
	adaptive *RateLimiter // the pace asked by the server's RateLimit fields; nil if none
	adaptEnd time.Time    // when the server's pace lapses
	pausedTo time.Time    // paused by the server until then

	// Its place in the Scheduler's round-robin and timers, and its reservation in progress.
	inRing    bool
	reserving bool      // a worker is reserving rate tokens for it, with Scheduler.mu released
	timerIdx  int       // position in Scheduler.timers; -1 if not waiting
	wakeAt    time.Time // when it stops waiting, if timerIdx >= 0
	hostDue   time.Time // when the token of the host's own limiters is due, if hostTok
	hostTok   bool
	tokenAt   time.Time // when the host's next request may go, if token
	token     bool      // all rate tokens for the host's next request are reserved
	full      fullClock // how long every host slot was taken (WithHostLimit)
	mark      busyMark  // the pool's and its own full time at its last reservation

	// Its eviction once idle.
	idleIdx int       // position in Scheduler.idle; -1 if not idle
	evictAt time.Time // when it may be forgotten, if idle
}

// hostKey names the host a request is queued under: its host and port, lower-cased, with a
// default port left out, so that http://Example.com:80/ and http://example.com/ share a queue.
func hostKey(scheme, hostport string) string {
	switch {
	case scheme == "http" && strings.HasSuffix(hostport, ":80"):
		hostport = hostport[:len(hostport)-len(":80")]
	case scheme == "https" && strings.HasSuffix(hostport, ":443"):
		hostport = hostport[:len(hostport)-len(":443")]
	}
	return strings.ToLower(hostport)
}

// hostLocked returns the state of the host named key, made if there is none, and out of the idle
// list. It requires s.mu held.
func (s *Scheduler) hostLocked(key string, now time.Time) *host {
	s.evictLocked(now)
	h := s.hosts[key]
	if h == nil {
		h = &host{key: key, timerIdx: -1, idleIdx: -1}
		if s.hostRate > 0 && s.hostRate != rate.Inf {
			h.limiter = NewRateLimiter(s.hostRate, s.hostBurst)
		}
		if s.adaptive != nil {
			h.adapt = s.newAdaptiveState()
		}
		s.hosts[key] = h
	} else if h.idleIdx >= 0 {
		s.idle.remove(h)
	}
	return h
}

// takeableLocked reports whether a worker may serve h now, rate tokens aside.
func (s *Scheduler) takeableLocked(h *host) bool {
	return !h.reserving && h.timerIdx < 0 && h.queue.len() > 0 && s.hostSlotFreeLocked(h)
}

// hostSlotFreeLocked reports whether h has a slot that no redirect waits for.
func (s *Scheduler) hostSlotFreeLocked(h *host) bool {
	if h.adapt != nil {
		return h.inflight+h.adapt.held < h.adapt.cur && h.waiters == nil
	}
	return s.hostLimit == 0 || h.inflight < s.hostLimit && h.waiters == nil
}

// A slotQueue is the redirects waiting for a host's slot, first first: a channel each, closed
// when it is handed one. It is made for a host only while some wait, to keep the host small.
type slotQueue struct{ waiting []chan struct{} }

// pushWaiterLocked queues a redirect for a slot of h, and returns the channel closed when it has
// one. It requires s.mu held.
func (h *host) pushWaiterLocked() chan struct{} {
	if h.waiters == nil {
		h.waiters = &slotQueue{}
	}
	ready := make(chan struct{})
	h.waiters.waiting = append(h.waiters.waiting, ready)
	return ready
}

// handSlotLocked passes a slot of h to the first waiting redirect, if any, and reports whether it
// did. It requires s.mu held.
func (h *host) handSlotLocked() bool {
	if h.waiters == nil {
		return false
	}
	q := h.waiters
	close(q.waiting[0])
	q.waiting[0] = nil
	q.waiting = q.waiting[1:]
	if len(q.waiting) == 0 {
		h.waiters = nil
	}
	return true
}

// dropWaiterLocked takes ready out of h's waiting redirects, and reports whether it was still
// there (not yet handed a slot). It requires s.mu held.
func (h *host) dropWaiterLocked(ready chan struct{}) bool {
	if h.waiters == nil {
		return false
	}
	q := h.waiters
	for i, w := range q.waiting {
		if w == ready {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			if len(q.waiting) == 0 {
				h.waiters = nil
			}
			return true
		}
	}
	return false
}

// pushRingLocked puts h in the round-robin if a worker may serve it. It requires s.mu held.
func (s *Scheduler) pushRingLocked(h *host) bool {
	if h.inRing || !s.takeableLocked(h) {
		return false
	}
	h.inRing = true
	s.ring.push(h)
	return true
}

// evictPerSubmit is how many idle hosts a submission may forget: a few, so that forgetting
// costs no submission much, and enough to outpace the hosts a crawler leaves behind.
const evictPerSubmit = 2

// maybeIdleLocked puts h on the idle list if nothing is queued, running or pending for it.
func (s *Scheduler) maybeIdleLocked(h *host) {
	if h.idleIdx >= 0 || h.inRing || h.reserving || h.timerIdx >= 0 || h.queue.len() > 0 || h.inflight > 0 ||
		h.delayed > 0 || h.kept > 0 {
		return
	}
	now := time.Now()
	keep := s.hostIdle
	if h.limiter != nil {
		// Evicting it before its bucket refills would hand the host a fresh burst.
		keep = max(keep, time.Duration(float64(h.limiter.Burst())/float64(h.limiter.Limit())*float64(time.Second)))
	}
	h.evictAt = later(later(now.Add(keep), h.pausedTo), h.adaptEnd)
	s.idle.push(h)
}

// evictLocked forgets a few hosts that have been idle long enough, so that a crawler visiting
// millions of hosts keeps only the recent ones. It requires s.mu held.
func (s *Scheduler) evictLocked(now time.Time) {
	for range evictPerSubmit {
		if s.idle.len() == 0 || s.idle.peek().evictAt.After(now) {
			return
		}
		h := s.idle.pop()
		if s.hosts[h.key] == h {
			delete(s.hosts, h.key)
		}
	}
}

func (s *Scheduler) pausedLocked(now time.Time) int {
	n := 0
	for _, h := range s.timers.items {
		if h.pausedTo.After(now) {
			n++
		}
	}
	return n
}

// HostStats describes the state of one host in a Scheduler.
type HostStats struct {
	Queued      int         // requests waiting in the host's queue
	InFlight    int         // requests to the host holding a slot
	PausedUntil time.Time   // when a pause asked by the server ends; zero if not paused
	Pace        rate.Limit  // the pace asked by the server's RateLimit fields; zero if none
	Limit       int         // its concurrency limit now: WithHostLimit, or the adaptive limit; zero if none
	LimitReason LimitReason // why the adaptive limit last changed
}

// HostStats returns the state of the host name, given as in a URL (a host name with an optional port) or
// as a URL whose scheme tells its default port; the zero HostStats if the Scheduler has no state
// for it. A host's default port may be given or left out: "example.com:80" finds
// http://example.com, unless a host is known by that very name (https://example.com:80).
func (s *Scheduler) HostStats(name string) HostStats {
	s.init(nil)
	keys := []string{strings.ToLower(name)}
	if u, err := url.Parse(name); err == nil && u.Host != "" && strings.Contains(name, "://") {
		keys = []string{hostKey(u.Scheme, u.Host)}
	} else {
		keys = append(keys, hostKey("http", keys[0]), hostKey("https", keys[0]))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var h *host
	for _, k := range keys {
		if h = s.hosts[k]; h != nil {
			break
		}
	}
	if h == nil {
		return HostStats{}
	}
	now := time.Now()
	st := HostStats{Queued: h.queue.len(), InFlight: h.inflight, Limit: s.hostLimitOf(h)}
	if h.adapt != nil {
		st.LimitReason = h.adapt.reason
	}
	if h.pausedTo.After(now) {
		st.PausedUntil = h.pausedTo
	}
	if h.adaptive != nil && now.Before(h.adaptEnd) {
		st.Pace = h.adaptive.Limit()
	}
	return st
}
