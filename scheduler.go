package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
// A queued request costs its Future and a place in a queue: there is no goroutine per request.
// The Scheduler starts its goroutines (the workers and one pacer) at the first request, and
// Close stops them all.
//
// Most programs need no Scheduler of their own: NewTransport and NewSession make one. Create
// one with NewScheduler to share a pool of workers and its limits among several transports and
// sessions (WithScheduler). The zero Scheduler is ready to use, with the defaults of
// NewScheduler(). A Scheduler is safe for concurrent use.
type Scheduler struct {
	once sync.Once // runs setup: by NewScheduler, or at the first use of a zero Scheduler

	// Set by setup, read-only after.
	workers       int
	hostLimit     int
	queueLimit    int
	hostRate      rate.Limit
	hostBurst     int
	limiters      []Limiter // shared by all hosts, called with limMu held
	maxRetryAfter time.Duration
	backpressure  bool
	hostIdle      time.Duration
	adaptive      *AdaptiveLimit    // per-host adaptive limits, its defaults filled in; nil if off
	onLimit       func(LimitChange) // WithLimitChanged; nil if none
	tracksFull    bool              // rate limiters are configured: account for the time slots are full
	epoch         time.Time         // anchors the instants of its Futures
	ctx           context.Context
	stop          context.CancelFunc // cancels ctx, which Limiters are given: Close calls it
	wake          chan struct{}      // wakes the pacer early; capacity 1
	quit          chan struct{}      // closed by Close: the pacer stops
	wg            sync.WaitGroup     // the workers and the pacer

	counts counters // the outcomes of its transports' requests, atomic

	limMu  sync.Mutex // serializes calls to the shared limiters, with non-decreasing times
	limNow time.Time  // the last time given to a limiter; requires limMu held

	// mu guards the fields below, the state of every host, the tallies of its transports, and
	// the scheduling fields of every Future it holds.
	mu         sync.Mutex
	cond       sync.Cond // workers wait on it (with mu) for a host to serve or a free slot
	runners    []*runner // the worker goroutines
	hosts      map[string]*host
	ring       hostRing                       // hosts that have a request a worker may take now, round-robin
	timers     indexedHeap[*host, byWake]     // hosts waiting for a time: a pause to end or a token due
	delayed    indexedHeap[*Future, byRetry]  // requests waiting to be tried again (WithRetry)
	holds      indexedHeap[*host, byHold]     // hosts holding slots for failures (adaptive limits)
	idle       indexedHeap[*host, byEviction] // hosts with nothing queued or running, for eviction
	pacerAt    time.Time                      // when the pacer wakes next; zero if it waits for a signal
	queued     int                            // requests in host queues
	inflight   int                            // pool slots taken
	waiting    int                            // workers waiting on cond
	waking     int                            // workers signaled and not yet running
	pool       fullClock                      // how long every pool slot was taken
	hostsFull  time.Duration                  // how long hosts had every slot taken, summed over hosts
	sharedMark busyMark                       // pool and hostsFull at the last shared reservation
	seq        uint32                         // submission counter, for FIFO order within a priority; wraps
	started    bool
	closed     bool
}

// ErrClosed is the error of a request whose transport, session or Scheduler was closed before it
// could be sent, or while it ran; in the second case the error matches context.Canceled too.
var ErrClosed = errors.New("httpfutures: closed")

// errStopped is the error of a request that was running when its transport was closed.
var errStopped = fmt.Errorf("%w while running: %w", ErrClosed, context.Canceled)

// NewScheduler returns a Scheduler configured by opts. Options that do not concern a scheduler
// (hooks, body handling, a client) are ignored.
func NewScheduler(opts ...Option) *Scheduler {
	s := &Scheduler{}
	s.init(newConfig(opts))
	return s
}

// init sets s up with c, unless it is set up already; a nil c means the defaults.
func (s *Scheduler) init(c *config) {
	s.once.Do(func() {
		if c == nil {
			c = newConfig(nil)
		}
		s.setup(c)
	})
}

func (s *Scheduler) setup(c *config) {
	s.workers = c.workers
	s.hostLimit = c.hostLimit
	s.queueLimit = c.queueLimit
	s.hostRate, s.hostBurst = c.hostRate, c.hostBurst
	s.maxRetryAfter = c.maxRetryAfter
	s.backpressure = !c.noBackpressure
	s.hostIdle = c.hostIdle
	s.adaptive, s.onLimit = c.adaptive, c.limitChanged
	s.wake = make(chan struct{}, 1)
	s.quit = make(chan struct{})
	s.hosts = make(map[string]*host)
	s.epoch = time.Now()
	if c.rate > 0 && c.rate != rate.Inf {
		s.limiters = append(s.limiters, NewRateLimiter(c.rate, c.burst))
	}
	s.limiters = append(s.limiters, c.limiters...)
	s.tracksFull = len(s.limiters) > 0 || s.hostRate > 0
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.cond.L = &s.mu
}

// Close stops the Scheduler at once: requests still queued fail with ErrClosed without being
// sent, running requests are canceled and fail with an error matching ErrClosed and
// context.Canceled, and new requests fail with ErrClosed. Close returns when every goroutine of
// the Scheduler has stopped. Response bodies already handed to callers stay readable.
func (s *Scheduler) Close() error {
	s.init(nil)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	var queued []*Future
	for _, h := range s.hosts {
		queued = h.queue.appendAll(queued)
	}
	queued = append(queued, s.delayed.items...)
	for _, f := range queued {
		s.dequeueLocked(f)
	}
	running := s.runningLocked(nil, nil)
	s.mu.Unlock()
	s.abortAll(queued, ErrClosed)
	for _, f := range running {
		s.cancelRunning(f, stateClosing)
	}
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

// submit queues f. It fails with ErrClosed or ErrQueueFull, leaving f untouched.
func (s *Scheduler) submit(f *Future) error {
	key := hostKey(f.req.URL.Scheme, f.req.URL.Host)
	tl := &f.t.tally
	s.mu.Lock()
	if s.closed || tl.closing {
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
	h := s.hostLocked(key, s.at(f.queued))
	f.host = h
	f.seq = s.seq
	s.seq++
	h.queue.push(f)
	s.queued++
	tl.queued++
	s.watchLocked(f)
	s.pushRingLocked(h)
	s.wakeLocked()
	s.mu.Unlock()
	return nil
}

// submitAfter queues the copy f of a hedged request (WithHedge), to be sent after wait as if it
// were a retry: paced and limited like any request. It fails as submit does.
func (s *Scheduler) submitAfter(f *Future, wait time.Duration) error {
	key := hostKey(f.req.URL.Scheme, f.req.URL.Host)
	tl := &f.t.tally
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || tl.closing {
		return ErrClosed
	}
	if s.queueLimit > 0 && s.queued >= s.queueLimit {
		return ErrQueueFull
	}
	h := s.hostLocked(key, time.Now())
	f.host = h
	f.seq = s.seq
	s.seq++
	s.queued++
	tl.queued++
	s.watchLocked(f)
	m := f.moreState()
	m.due = s.now() + instant(wait)
	h.delayed++
	s.delayed.push(f)
	s.wakePacerLocked(s.at(m.due))
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
	return f.state.Load() == stateQueued && f.more != nil && f.more.index >= 0
}

// dequeueLocked takes the queued f out of its host's queue, or out of the retries waiting, and
// marks it done; the caller resolves it with abortAll, once s.mu is released. It requires s.mu
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
	f.t.tally.queued--
	f.t.tally.aborting++ // until abortAll has resolved it
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
		f.forgetLocked()
		f.t.tally.aborting--
		f.t.tally.checkDrained()
	}
	s.mu.Unlock()
}

// cancelQueued resolves f with err if it is still queued, and reports whether it was.
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

// cancel stops f, Future.Cancel's way: out of the queue if it is queued, by canceling its
// context if it runs.
func (s *Scheduler) cancel(f *Future) bool {
	return s.cancelQueued(f, context.Canceled) || s.cancelRunning(f, stateCanceling)
}

// cancelRunning cancels the context of the running f, which then resolves with the error of
// state (stateCanceling or stateClosing). It reports whether f was running.
func (s *Scheduler) cancelRunning(f *Future, state int32) bool {
	if !f.state.CompareAndSwap(stateRunning, state) {
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

// A tally is what a Scheduler keeps of one transport's requests: the transport's record, which
// only the Scheduler's files read or change. It is guarded by Scheduler.mu.
type tally struct {
	queued   int  // in host queues or waiting for a retry
	running  int  // taken by a worker, and not yet back
	aborting int  // taken out of the queue and not yet resolved
	closing  bool // Close or Shutdown began: no new requests
	closeNow bool // Close, or a Shutdown whose context ended: retries end too

	drained       chan struct{} // closed once closing with nothing queued, running or aborting
	drainedClosed bool
}

// register makes the record of a new transport t.
func (s *Scheduler) register(t *AsyncTransport) { t.tally.drained = make(chan struct{}) }

// checkDrained closes drained once the transport is closing and idle.
func (tl *tally) checkDrained() {
	if tl.closing && !tl.drainedClosed && tl.queued == 0 && tl.running == 0 && tl.aborting == 0 {
		tl.drainedClosed = true
		close(tl.drained)
	}
}

// stopTransport stops t taking requests. If now is set, it also fails t's queued requests with
// ErrClosed and cancels its running ones, as Close does. It returns a channel closed once none of
// t's requests is queued or running.
func (s *Scheduler) stopTransport(t *AsyncTransport, now bool) <-chan struct{} {
	tl := &t.tally
	s.mu.Lock()
	tl.closing = true
	var queued, running []*Future
	if now && !tl.closeNow {
		tl.closeNow = true
		queued = s.queuedLocked(t)
		for _, f := range queued {
			s.dequeueLocked(f)
		}
		running = s.runningLocked(t, nil)
	}
	tl.checkDrained()
	s.mu.Unlock()
	s.abortAll(queued, ErrClosed)
	for _, f := range running {
		s.cancelRunning(f, stateClosing)
	}
	return tl.drained
}

// queuedLocked returns t's queued requests. It requires s.mu held.
func (s *Scheduler) queuedLocked(t *AsyncTransport) []*Future {
	if t.tally.queued == 0 {
		return nil
	}
	var all []*Future
	for _, h := range s.hosts {
		all = h.queue.appendAll(all)
	}
	all = append(all, s.delayed.items...)
	mine := all[:0]
	for _, f := range all {
		if f.t == t {
			mine = append(mine, f)
		}
	}
	return mine
}

// transportStats returns the counts of t's requests now queued and running.
func (s *Scheduler) transportStats(t *AsyncTransport) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Queued: t.tally.queued, InFlight: t.tally.running, Hosts: len(s.hosts), Paused: s.pausedLocked(time.Now())}
}

// Stats returns the counts of the Scheduler as a whole: the requests of all its transports.
func (s *Scheduler) Stats() Stats {
	s.init(nil)
	s.mu.Lock()
	st := Stats{Queued: s.queued, InFlight: s.inflight, Hosts: len(s.hosts), Paused: s.pausedLocked(time.Now())}
	s.mu.Unlock()
	s.counts.fill(&st)
	return st
}

// counters are the outcomes of Futures, updated atomically: a transport keeps its own, and its
// Scheduler the sum over its transports.
type counters struct {
	completed, failed, canceled, retries, redirects, hedges atomic.Uint64
}

// count counts the outcome of a Future resolved with err.
func (c *counters) count(err error) {
	switch {
	case err == nil:
		c.completed.Add(1)
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed):
		c.canceled.Add(1)
	default:
		c.failed.Add(1)
	}
}

// fill copies the counts into st.
func (c *counters) fill(st *Stats) {
	st.Completed, st.Failed, st.Canceled = c.completed.Load(), c.failed.Load(), c.canceled.Load()
	st.Retries, st.Redirects, st.Hedges = c.retries.Load(), c.redirects.Load(), c.hedges.Load()
}
