package httpfutures

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// A Scheduler runs the round trips of one or more transports: it queues requests per host, paces
// them, and runs them on a fixed pool of worker goroutines.
//
// A request is admitted when three gates are open, in this order: a rate token (the host's own
// rate limit, the server's pace, then the Limiters shared by all hosts), a host slot
// (WithHostLimit) and a global slot (WithWorkers). No gate is waited on while holding a later one,
// so a throttled host never holds a worker, and never delays requests to other hosts. Hosts are
// served round-robin; the requests to one host leave in priority order, then in the order
// submitted.
//
// A queued request costs its Future and a place in a heap: there is no goroutine per request.
// The Scheduler starts its goroutines (the workers and one pacer) at the first request, and
// Close stops them all.
//
// Most programs need no Scheduler of their own: NewTransport and NewSession make one. Create
// one with NewScheduler to share a pool of workers and its limits among several transports and
// sessions (WithScheduler). A Scheduler is safe for concurrent use.
type Scheduler struct {
	workers       int
	hostLimit     int
	queueLimit    int
	hostRate      rate.Limit
	hostBurst     int
	limiters      []Limiter // shared by all hosts, called with limMu held
	maxRetryAfter time.Duration
	backpressure  bool
	hostIdle      time.Duration

	epoch time.Time // anchors the instants of its Futures; taken where the Scheduler is made

	ctx  context.Context // given to Limiters; canceled by Close
	stop context.CancelFunc
	wake chan struct{} // wakes the pacer early; capacity 1
	quit chan struct{} // closed by Close: the pacer stops
	wg   sync.WaitGroup

	limMu  sync.Mutex // serializes calls to limiters, with non-decreasing times
	limNow time.Time  // the last time given to a limiter; requires limMu held

	mu       sync.Mutex
	cond     sync.Cond // workers wait on it (with mu) for a host to serve or a free slot
	runners  []*runner // the worker goroutines, pooled or detached
	hosts    map[string]*host
	ring     hostRing                       // hosts that have a request a worker may take now, round-robin
	timers   indexedHeap[*host, byWake]     // hosts waiting for a time: a pause to end or a token due
	delayed  indexedHeap[*Future, byRetry]  // requests waiting to be tried again (WithRetry)
	idle     indexedHeap[*host, byEviction] // hosts with nothing queued or running, for eviction
	pacerAt  time.Time                      // when the pacer wakes next; zero if it waits for a signal
	queued   int                            // requests in host queues
	inflight int                            // slots taken
	waiting  int                            // workers waiting on cond
	waking   int                            // workers signaled and not yet running

	// How long no slot was free, accumulated, for the rate limiters' catch-up: in the pool, and
	// summed over hosts at their WithHostLimit. fullSince is when the pool filled, if it is full.
	poolFull, hostsFull time.Duration
	fullSince           time.Time
	sharedMark          [2]time.Duration // poolFull and hostsFull at the last shared reservation
	seq                 uint32           // submission counter, for FIFO order within a priority; wraps
	started             bool
	closed              bool
	tracksFull          bool // rate limiters are configured: account for the time slots are full
}

// host is the state the Scheduler keeps for one host. It is guarded by Scheduler.mu, except
// during a reservation (reserving), when the reserving worker alone touches its limiters.
type host struct {
	key      string
	queue    hostQueue
	inflight int
	delayed  int          // requests waiting to be tried again: they keep the host
	detached int          // Session requests running redirects, with no slot: they keep it too
	limiter  *RateLimiter // WithHostRateLimit; nil if none
	adaptive *RateLimiter // the pace asked by the server's RateLimit fields; nil if none
	adaptEnd time.Time    // when the server's pace lapses

	inRing    bool
	reserving bool      // a worker is reserving rate tokens for it, with Scheduler.mu released
	timerIdx  int       // position in Scheduler.timers; -1 if not waiting
	wakeAt    time.Time // when it stops waiting, if timerIdx >= 0
	pausedTo  time.Time // paused by the server until then
	hostDue   time.Time // when the token of the host's own limiters is due, if hostTok
	hostTok   bool
	tokenAt   time.Time // when the host's next request may go, if token
	token     bool      // all rate tokens for the host's next request are reserved

	full      time.Duration    // how long the host had no free slot (WithHostLimit), accumulated
	fullSince time.Time        // when its slots filled, if they are full
	mark      [2]time.Duration // poolFull and full at its last reservation

	idleIdx int       // position in Scheduler.idle; -1 if not idle
	evictAt time.Time // when it may be forgotten, if idle
}

// NewScheduler returns a Scheduler configured by opts. Options that do not concern a scheduler
// (hooks, body handling, a client) are ignored.
func NewScheduler(opts ...Option) *Scheduler {
	return newScheduler(newConfig(opts))
}

func newScheduler(c *config) *Scheduler {
	s := &Scheduler{
		workers:       c.workers,
		hostLimit:     c.hostLimit,
		queueLimit:    c.queueLimit,
		hostRate:      c.hostRate,
		hostBurst:     c.hostBurst,
		maxRetryAfter: c.maxRetryAfter,
		backpressure:  !c.noBackpressure,
		hostIdle:      c.hostIdle,
		wake:          make(chan struct{}, 1),
		quit:          make(chan struct{}),
		hosts:         make(map[string]*host),
		epoch:         time.Now(),
	}
	if c.rate > 0 && c.rate != rate.Inf {
		s.limiters = append(s.limiters, NewRateLimiter(c.rate, c.burst))
	}
	s.limiters = append(s.limiters, c.limiters...)
	s.tracksFull = len(s.limiters) > 0 || s.hostRate > 0
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.cond.L = &s.mu
	return s
}

// Close stops the Scheduler: requests still queued fail with ErrClosed without being sent,
// requests running finish, and new requests fail with ErrClosed. Close returns when every
// goroutine of the Scheduler has stopped. Streamed response bodies stay readable.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	var failed []*Future
	for _, h := range s.hosts {
		for h.queue.len() > 0 {
			f := h.queue.peek()
			s.dequeueLocked(f)
			failed = append(failed, f)
		}
	}
	for s.delayed.len() > 0 {
		f := s.delayed.peek()
		s.dequeueLocked(f)
		failed = append(failed, f)
	}
	s.mu.Unlock()
	s.abortAll(failed, ErrClosed)
	s.cond.Broadcast()
	close(s.quit)
	s.stop()
	s.wg.Wait()
	return nil
}

// startLocked starts the workers and the pacer. It requires s.mu held.
func (s *Scheduler) startLocked() {
	s.started = true
	s.wg.Add(s.workers + 1)
	for range s.workers {
		go s.worker()
	}
	go s.pace()
}

// hostKey names the host a request is queued under: its host and port, lower-cased, with a
// default port left out, so that http://Example.com:80/ and http://example.com/ share a queue.
func hostKey(scheme, hostport string) string {
	switch {
	case scheme == "http" && strings.HasSuffix(hostport, ":80"):
		hostport = hostport[:len(hostport)-3]
	case scheme == "https" && strings.HasSuffix(hostport, ":443"):
		hostport = hostport[:len(hostport)-4]
	}
	return strings.ToLower(hostport)
}

// submit queues f. It fails with ErrClosed or ErrQueueFull, leaving f untouched.
func (s *Scheduler) submit(f *Future) error {
	key := hostKey(f.req.URL.Scheme, f.req.URL.Host)
	s.mu.Lock()
	if s.closed || f.t.closing && !f.is(flagHop) { // a running request's redirect may finish
		s.mu.Unlock()
		return ErrClosed
	}
	if s.queueLimit > 0 && s.queued >= s.queueLimit {
		s.mu.Unlock()
		return ErrQueueFull
	}
	if !s.started {
		s.startLocked()
	}
	s.evictLocked(s.at(f.queued))
	h := s.hosts[key]
	if h == nil {
		h = &host{key: key, timerIdx: -1, idleIdx: -1}
		if s.hostRate > 0 && s.hostRate != rate.Inf {
			h.limiter = NewRateLimiter(s.hostRate, s.hostBurst)
		}
		s.hosts[key] = h
	} else if h.idleIdx >= 0 {
		s.idle.remove(h)
	}
	f.host = h
	f.seq = s.seq
	s.seq++
	h.queue.push(f)
	s.queued++
	f.t.queued++
	s.watchLocked(f)
	s.pushRingLocked(h)
	s.wakeLocked()
	s.mu.Unlock()
	return nil
}

// watchLocked makes the end of f's context take f out of the queue at once.
func (s *Scheduler) watchLocked(f *Future) {
	if f.is(flagOwnCtx) {
		return // its context is the Future's own: only Cancel ends it
	}
	if ctx := f.req.Context(); ctx.Done() != nil {
		f.stop = context.AfterFunc(ctx, func() { s.cancelQueued(f, ctx.Err()) })
	}
}

// queuedLocked reports whether f waits in a host's queue or for a retry. It requires s.mu held.
func queuedLocked(f *Future) bool { return f.index >= 0 || delayedLocked(f) }

// delayedLocked reports whether f waits for a retry. Its state is read first: while f runs, its
// worker may be making its retry state. It requires s.mu held.
func delayedLocked(f *Future) bool {
	return f.state.Load() == stateQueued && f.retry != nil && f.retry.index >= 0
}

// dequeueLocked takes the queued f out of its host's queue, or out of the retries waiting, and
// marks it done; the caller resolves it with abort, once s.mu is released. It requires s.mu
// held.
func (s *Scheduler) dequeueLocked(f *Future) {
	h := f.host
	if delayedLocked(f) {
		s.delayed.remove(f)
		h.delayed--
	} else {
		h.queue.remove(f)
	}
	s.queued--
	f.t.queued--
	f.t.aborting++ // until abortAll has resolved it
	if f.stop != nil {
		f.stop()
		f.stop = nil
	}
	f.state.Store(stateDone)
	s.maybeIdleLocked(h)
}

// abortAll resolves futures taken out of their queues (dequeueLocked) with err, and only then
// lets their transports count them gone, so that Close and Shutdown return after they resolved.
// It requires s.mu not held.
func (s *Scheduler) abortAll(fs []*Future, err error) {
	if len(fs) == 0 {
		return
	}
	for _, f := range fs {
		f.abort(err)
	}
	s.mu.Lock()
	for _, f := range fs {
		f.t.aborting--
		f.t.checkDrainedLocked()
	}
	s.mu.Unlock()
}

// cancelQueued resolves f with err if it is still queued.
func (s *Scheduler) cancelQueued(f *Future, err error) bool {
	s.mu.Lock()
	if !queuedLocked(f) {
		s.mu.Unlock()
		return false
	}
	s.dequeueLocked(f)
	s.mu.Unlock()
	s.abortAll([]*Future{f}, err)
	return true
}

// cancel stops f: out of the queue if it is queued, by canceling its context if it runs.
func (s *Scheduler) cancel(f *Future, err error) bool {
	if s.cancelQueued(f, err) {
		return true
	}
	if !f.state.CompareAndSwap(stateRunning, stateCanceling) {
		return false
	}
	// The attempt runs under runCtx or under the context it published in cancelRun: cancel
	// both, so that the attempt need not say which, nor take a lock to say it.
	(*runCtx)(f).cancel()
	f.mu.Lock()
	stop := f.cancelRun
	f.mu.Unlock()
	if stop != nil {
		stop()
	}
	return true
}

// takeableLocked reports whether a worker may serve h now, rate tokens aside.
func (s *Scheduler) takeableLocked(h *host) bool {
	return !h.reserving && h.timerIdx < 0 && h.queue.len() > 0 &&
		(s.hostLimit == 0 || h.inflight < s.hostLimit)
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

// minFull is the shortest spell of full slots that costs the rate limiters their catch-up. Shorter
// spells are mostly the slots draining a catch-up's own backlog after a late wake-up; a longer one
// (a slow response holding the slots) means the tokens that came due could not be used, and a
// token bucket would have lost them.
const minFull = 10 * time.Millisecond

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

// A runner is what the Scheduler knows of a worker goroutine: the request it runs, for Shutdown
// to cancel. Each worker writes only its own, so that starting and ending a request touches no
// other request's memory (a list of running requests would, on other cores).
type runner struct {
	f   *Future // nil between requests
	idx int     // position in Scheduler.runners
}

// addRunnerLocked registers a worker goroutine. It requires s.mu held.
func (s *Scheduler) addRunnerLocked() *runner {
	r := &runner{idx: len(s.runners)}
	s.runners = append(s.runners, r)
	return r
}

// removeRunnerLocked forgets a worker goroutine that is ending. It requires s.mu held.
func (s *Scheduler) removeRunnerLocked(r *runner) {
	last := s.runners[len(s.runners)-1]
	s.runners[r.idx], last.idx = last, r.idx
	s.runners[len(s.runners)-1] = nil
	s.runners = s.runners[:len(s.runners)-1]
}

// runningLocked appends the requests of t that workers are running to out. It requires s.mu
// held.
func (s *Scheduler) runningLocked(t *AsyncTransport, out []*Future) []*Future {
	for _, r := range s.runners {
		if r.f != nil && r.f.t == t {
			out = append(out, r.f)
		}
	}
	return out
}

// worker runs requests until the Scheduler closes.
func (s *Scheduler) worker() {
	defer s.wg.Done()
	s.mu.Lock()
	r := s.addRunnerLocked()
	for {
		f := s.takeLocked()
		if f == nil {
			s.removeRunnerLocked(r)
			s.mu.Unlock()
			return
		}
		r.f = f
		s.mu.Unlock()
		bodyHolds := f.t.run(f)
		detached := f.detached
		s.mu.Lock()
		if f.again {
			if err := s.requeueLocked(f); err != nil {
				f.state.Store(stateDone) // before s.mu is released: no one may take it for queued
				s.mu.Unlock()
				f.abort(err)
				s.mu.Lock()
			}
		}
		f.t.doneLocked()
		r.f = nil
		if !bodyHolds {
			s.releaseSlotLocked(f)
		}
		if detached {
			// A Session request that followed a redirect: another worker took this one's place.
			f.host.detached--
			s.maybeIdleLocked(f.host)
			s.removeRunnerLocked(r)
			s.mu.Unlock()
			return
		}
	}
}

// requeueLocked puts the running f back for another attempt after f.retry.wait, with no slot held
// meanwhile. It fails with context.Canceled if f was canceled during the attempt, and with
// ErrClosed if its transport was closed (Shutdown lets it go on). It requires s.mu held.
func (s *Scheduler) requeueLocked(f *Future) error {
	f.again, f.detached, f.sentFirst = false, false, false
	if !f.state.CompareAndSwap(stateRunning, stateQueued) {
		return context.Canceled
	}
	if s.closed || f.t.closeNow { // under Shutdown, a running request's retries go on
		return ErrClosed
	}
	h := f.host
	if h.idleIdx >= 0 { // possible for a detached request, whose host had nothing else
		s.idle.remove(h)
	}
	s.queued++
	f.t.queued++
	s.watchLocked(f)
	r := f.retryState()
	r.due = s.now()
	if r.wait <= 0 {
		h.queue.push(f)
		s.pushRingLocked(h)
		s.wakeLocked()
		return nil
	}
	r.due += instant(r.wait)
	h.delayed++
	s.delayed.push(f)
	s.wakePacerLocked(s.at(r.due))
	return nil
}

// takeLocked waits for a request that may start now, takes its slots, and returns it; nil once
// the Scheduler is closed. It requires s.mu held, and releases it while waiting or reserving.
func (s *Scheduler) takeLocked() *Future {
	for {
		if s.closed {
			return nil
		}
		if s.inflight >= s.workers || s.ring.len() == 0 {
			s.waiting++
			s.cond.Wait()
			s.waiting--
			if s.waking > 0 {
				s.waking--
			}
			continue
		}
		h := s.ring.pop()
		h.inRing = false
		if !s.takeableLocked(h) {
			s.maybeIdleLocked(h)
			continue
		}
		if s.paced(h) && !s.admitLocked(h) {
			continue
		}
		f := h.queue.pop()
		s.queued--
		s.inflight++
		h.inflight++
		if s.tracksFull && (s.inflight == s.workers || h.inflight == s.hostLimit) {
			now := time.Now()
			if s.inflight == s.workers {
				s.fullSince = now
			}
			if h.inflight == s.hostLimit {
				h.fullSince = now
			}
		}
		f.slotHeld = true
		f.t.queued--
		f.t.inflight++
		if f.stop != nil {
			f.stop()
			f.stop = nil
		}
		f.state.Store(stateRunning)
		s.pushRingLocked(h)
		s.wakeLocked()
		return f
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
			busy := s.poolFull - h.mark[0] + h.full - h.mark[1]
			h.mark = [2]time.Duration{s.poolFull, h.full}
			h.hostDue, h.hostTok = s.reserveHostLocked(h, now, notBefore, busy), true
		}
		if h.hostDue.After(now) {
			s.parkLocked(h, h.hostDue)
			return false
		}
		due := h.hostDue
		if len(s.limiters) > 0 {
			h.reserving = true
			busy := s.poolFull - s.sharedMark[0] + s.hostsFull - s.sharedMark[1]
			s.sharedMark = [2]time.Duration{s.poolFull, s.hostsFull}
			s.mu.Unlock()
			shared, err := s.reserveShared(h.key, notBefore, busy)
			s.mu.Lock()
			h.reserving = false
			if err != nil {
				if f := h.queue.peek(); f != nil {
					s.dequeueLocked(f)
					s.mu.Unlock()
					s.abortAll([]*Future{f}, &LimiterError{Host: h.key, Err: err})
					s.mu.Lock()
				}
				s.pushRingLocked(h)
				s.maybeIdleLocked(h)
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
// RateLimiter.reserve.
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
			at, err = l.Reserve(s.ctx, key, now)
		}
		if err != nil {
			return time.Time{}, err
		}
		due = later(due, at)
	}
	return due, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// releaseSlotLocked gives back the slots f took, once, and lets a waiting worker use them.
func (s *Scheduler) releaseSlotLocked(f *Future) {
	if !f.slotHeld {
		return
	}
	f.slotHeld = false
	h := f.host
	if s.inflight == s.workers && !s.fullSince.IsZero() || h.inflight == s.hostLimit && !h.fullSince.IsZero() {
		now := time.Now()
		if s.inflight == s.workers && !s.fullSince.IsZero() {
			if d := now.Sub(s.fullSince); d > minFull {
				s.poolFull += d
			}
			s.fullSince = time.Time{}
		}
		if h.inflight == s.hostLimit && !h.fullSince.IsZero() {
			if d := now.Sub(h.fullSince); d > minFull {
				h.full += d
				s.hostsFull += d
			}
			h.fullSince = time.Time{}
		}
	}
	s.inflight--
	h.inflight--
	s.pushRingLocked(h)
	s.maybeIdleLocked(h)
	s.wakeLocked()
}

// releaseSlot is releaseSlotLocked for callers that do not hold s.mu: it must never be reached
// with s.mu held.
func (s *Scheduler) releaseSlot(f *Future) {
	s.mu.Lock()
	s.releaseSlotLocked(f)
	s.mu.Unlock()
}

// detach gives up the slots of the running f and has another worker take this goroutine's place:
// f goes on as an ordinary caller that waits for other requests (a redirect), so that workers
// waiting on each other can never exhaust the pool.
func (s *Scheduler) detach(f *Future) {
	s.mu.Lock()
	f.detached = true
	f.host.detached++ // f still needs its host, slot or not
	s.releaseSlotLocked(f)
	if !s.closed {
		s.wg.Add(1)
		go s.worker()
	}
	s.mu.Unlock()
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
		for s.delayed.len() > 0 && !s.at(s.delayed.peek().retry.due).After(now) {
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
	return s.at(s.delayed.peek().retry.due)
}

// maybeIdleLocked puts h on the idle list if nothing is queued, running or pending for it.
func (s *Scheduler) maybeIdleLocked(h *host) {
	if h.idleIdx >= 0 || h.inRing || h.reserving || h.timerIdx >= 0 || h.queue.len() > 0 || h.inflight > 0 ||
		h.delayed > 0 || h.detached > 0 {
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
	for range 2 {
		if s.idle.len() == 0 || s.idle.peek().evictAt.After(now) {
			return
		}
		h := s.idle.pop()
		if s.hosts[h.key] == h {
			delete(s.hosts, h.key)
		}
	}
}

// Stats returns the counts of the Scheduler as a whole: the requests of all its transports.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Queued: s.queued, InFlight: s.inflight, Hosts: len(s.hosts), Paused: s.pausedLocked(time.Now())}
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
	Queued      int        // requests waiting in the host's queue
	InFlight    int        // requests to the host holding a slot
	PausedUntil time.Time  // when a pause asked by the server ends; zero if not paused
	Pace        rate.Limit // the pace asked by the server's RateLimit fields; zero if none
}

// HostStats returns the state of host (a host name with an optional port, as in a URL); the
// zero HostStats if the Scheduler has no state for it. A default port (80 or 443) may be given or
// left out.
func (s *Scheduler) HostStats(host string) HostStats {
	key := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(host), ":80"), ":443")
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[key]
	if h == nil {
		return HostStats{}
	}
	now := time.Now()
	st := HostStats{Queued: h.queue.len(), InFlight: h.inflight}
	if h.pausedTo.After(now) {
		st.PausedUntil = h.pausedTo
	}
	if h.adaptive != nil && now.Before(h.adaptEnd) {
		st.Pace = h.adaptive.Limit()
	}
	return st
}
