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

	// What a request writes as it is queued and taken is in the host's first two cache lines,
	// and what a worker reads to take it in four (the reserving flag and the pace open their
	// groups): with every request the lines written move between cores, and fewer cost less.
	// TestHotFieldsShareCacheLines holds them there.

	// Its requests, its slots and its place in the round-robin and the timers.
	queue    hostQueue
	inflight int            // host slots taken
	inRing   bool           // in the Scheduler's round-robin
	timerIdx int            // position in Scheduler.timers; -1 if not waiting
	waiters  *slotQueue     // redirects waiting for a slot, handed one as it frees; nil if none
	adapt    *adaptiveState // its adaptive concurrency limit (WithAdaptiveHostLimit); nil if off
	guard    *hostGuard     // its circuit breaker and adaptive throttle; nil if the Scheduler has neither

	// Its pace: the host's own rate limit, the tokens of its next request as they are
	// reserved, and what its server asked for.
	limiter     *RateLimiter // WithHostRateLimit; nil if none
	reservation              // the rate tokens of the next request
	serverAsk                // a pause and a pace, asked by the server's responses

	// What keeps it besides its queue and its slots.
	delayed int // requests waiting to be tried again
	kept    int // redirects on their way to it, and running requests redirected away

	// Its wait for a time, and its eviction once idle.
	wakeAt  time.Time // when it stops waiting, if timerIdx >= 0
	idleIdx int       // position in Scheduler.idle; -1 if not idle
	evictAt time.Time // when it may be forgotten, if idle

	full fullClock // how long every host slot was taken (WithHostLimit)
	mark busyMark  // the pool's and its own full time at its last reservation
}

// serverAsk is what a host's server asked for in its responses: a pause of the whole queue (a
// Retry-After, an exhausted RateLimit quota) and a pace (the RateLimit fields), both capped by
// WithMaxRetryAfter. It is guarded by Scheduler.mu.
type serverAsk struct {
	pace      *RateLimiter // the pace the RateLimit fields ask for; nil if none, or once it lapsed
	pausedTo  time.Time    // paused until then; zero or past if not paused
	paceUntil time.Time    // when the pace lapses
}

// A reservation is the rate tokens of a host's next request, as the worker that would send it
// reserves them: the token of the host's own limiters (its rate limit and its server's pace),
// then those of the limiters all hosts share, with Scheduler.mu released while it calls them
// (reserving). Once all are reserved the request goes when the last is due; a token kept while
// the request cannot go (its slots are taken) is used by the next worker to serve the host. It
// is guarded by Scheduler.mu.
type reservation struct {
	reserving   bool      // a worker is reserving the shared limiters' token, with Scheduler.mu released
	ownReserved bool      // the host's own limiters have a token for the next request
	reserved    bool      // every rate token for the next request is reserved
	ownDue      time.Time // when the token of the host's own limiters is due, if ownReserved
	due         time.Time // when the next request may go, if reserved
}

// A hostTable is the hosts a Scheduler keeps state for: those with requests, in the round-robin
// while a worker may take one now, and the idle ones until they are evicted. It counts the
// requests queued over all hosts. It is guarded by Scheduler.mu. What every request writes comes
// first.
type hostTable struct {
	queued int      // requests in host queues, and retries waiting
	seq    uint32   // submission counter, for FIFO order within a priority; wraps
	ring   hostRing // hosts that have a request a worker may take now, round-robin
	hosts  map[string]*host
	idle   indexedHeap[*host, byEviction] // hosts with nothing queued or running, for eviction
}

// HostOf returns the name of the host a request to u is queued under, as HostStats, the
// Observer and LimitChange give it: its host and port, lower-cased, with the scheme's default
// port left out, so that http://Example.com:80/ and http://example.com/ share a queue.
func HostOf(u *url.URL) string { return hostKey(u.Scheme, u.Host) }

// hostKey is HostOf for a URL's scheme and host.
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
		h.guard = s.newGuard(key)
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
	h.evictAt = later(later(now.Add(keep), h.pausedTo), h.paceUntil)
	if h.guard != nil {
		h.evictAt = later(h.evictAt, h.guard.circuit.until) // forgetting it would close its breaker
	}
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

// HostStats describes the state of one host in a Scheduler. Its zero value is that of a host the
// Scheduler keeps no state for: nothing queued, no pause, its breaker closed.
type HostStats struct {
	Queued      int         // requests waiting in the host's queue
	InFlight    int         // requests to the host holding a slot
	PausedUntil time.Time   // when a pause asked by the server ends; zero if not paused
	Pace        rate.Limit  // the pace asked by the server's RateLimit fields; zero if none
	Limit       int         // its concurrency limit now: WithHostLimit, or the adaptive limit; zero if none
	LimitReason LimitReason // why the adaptive limit last changed

	Circuit      CircuitState // its circuit breaker's state (WithCircuitBreaker); closed if none
	CircuitUntil time.Time    // when its open breaker lets probes through; zero unless open
	Throttle     float64      // the probability that its adaptive throttle rejects a request now (WithAdaptiveThrottle)
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
	if h.pace != nil && now.Before(h.paceUntil) {
		st.Pace = h.pace.Limit()
	}
	if h.guard != nil {
		s.circuitStats(h, &st)
		if s.throttle != nil {
			st.Throttle = s.rejection(h.guard, now)
		}
	}
	return st
}
