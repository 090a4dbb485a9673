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

	settings // set by setup, read-only after

	epoch time.Time          // anchors the instants of its Futures; set by setup
	ctx   context.Context    // given to the Limiters; set by setup
	stop  context.CancelFunc // cancels ctx: Close calls it
	wake  chan struct{}      // wakes the pacer early; capacity 1
	quit  chan struct{}      // closed by Close: the pacer stops
	wg    sync.WaitGroup     // the workers and the pacer

	counts counters // the outcomes of its transports' requests, atomic

	shared sharedLimiters // the Limiters all hosts share, called one reservation at a time

	// mu guards the groups below, the state of every host, the tallies of its transports, and
	// the queue slots and phases of every Future it holds. What every request writes with it
	// held (mu itself, the first fields of hostTable and of workerPool) is in two cache lines:
	// the lock passes between cores at least twice a request, and the lines written move with
	// it. TestHotFieldsShareCacheLines holds them there.
	mu         sync.Mutex
	closed     bool // Close was called: no new request, and the goroutines end
	hostTable       // the hosts, their round-robin and their eviction
	workerPool      // the workers, and the slots of the pool
	timetable       // what waits for a time: hosts, retries, the pacer, stalls
	failFast        // what fails requests before they are sent, and what it leaves to do
}

// settings are a Scheduler's options, with their defaults filled in. They are set by setup, and
// read-only after.
type settings struct {
	workers       int
	hostLimit     int
	queueLimit    int
	hostRate      rate.Limit
	hostBurst     int
	maxRetryAfter time.Duration
	backpressure  bool
	hostIdle      time.Duration
	workerIdle    time.Duration     // WithWorkerIdleTimeout: how long its goroutines wait for work
	adaptive      *AdaptiveLimit    // per-host adaptive limits, its defaults filled in; nil if off
	breaker       *CircuitBreaker   // per-host circuit breakers, the defaults filled in; nil if off
	throttle      *AdaptiveThrottle // per-host adaptive throttles, the defaults filled in; nil if off
	obs           Observer          // WithObserver and WithLimitChanged, together
	tracksFull    bool              // rate limiters are configured: account for the time slots are full
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
	first := false
	s.once.Do(func() {
		if c == nil {
			c = newConfig(nil)
		}
		s.setup(c)
		first = true
	})
	if first {
		s.attached()
	}
}

func (s *Scheduler) setup(c *config) {
	s.workers = c.workers
	s.hostLimit = c.hostLimit
	s.queueLimit = c.queueLimit
	s.hostRate, s.hostBurst = c.hostRate, c.hostBurst
	s.maxRetryAfter = c.maxRetryAfter
	s.backpressure = !c.noBackpressure
	s.hostIdle = c.hostIdle
	s.workerIdle = c.workerIdle
	s.adaptive, s.obs = c.adaptive, c.observer
	s.breaker, s.throttle = c.breaker, c.throttle
	s.wake = make(chan struct{}, 1)
	s.quit = make(chan struct{})
	s.hosts = make(map[string]*host)
	s.epoch = time.Now()
	if c.rate > 0 && c.rate != rate.Inf {
		s.shared.limiters = append(s.shared.limiters, NewRateLimiter(c.rate, c.burst))
	}
	s.shared.limiters = append(s.shared.limiters, c.limiters...)
	s.tracksFull = len(s.shared.limiters) > 0 || s.hostRate > 0
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.cond.L = &s.mu
}

// startLocked starts the workers and the pacer, unless they run. It requires s.mu held.
func (s *Scheduler) startLocked() {
	if !s.started {
		s.spawnLocked()
	}
}

// spawnLocked starts the workers and the pacer of generation s.gen. It requires s.mu held.
func (s *Scheduler) spawnLocked() {
	s.started = true
	s.goroutines += s.workers + 1
	s.wg.Add(s.workers + 1)
	for range s.workers {
		go s.worker(s.gen)
	}
	go s.pace()
}

// submit queues f. It fails with ErrClosed or ErrQueueFull, or as its host's guard or its
// deadline refuses it, leaving f untouched. A full queue sheds a queued request of lower
// priority than f's, if there is one, to make room for it.
func (s *Scheduler) submit(f *Future) error {
	key, now := hostKey(f.req.URL.Scheme, f.req.URL.Host), s.at(f.queued)
	tl := &f.t.tally
	s.mu.Lock()
	if s.closed || tl.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	var shed *Future // the queued request f takes the place of
	if s.queueLimit > 0 && s.queued >= s.queueLimit {
		if shed = s.shed.lowest(); shed == nil || shed.priority() >= f.priority() {
			s.mu.Unlock()
			return ErrQueueFull
		}
	}
	h := s.hostLocked(key, now)
	if h.guard != nil || h.timerIdx >= 0 {
		if err := s.screenLocked(h, f, now); err != nil {
			s.maybeIdleLocked(h)
			n := s.takeNewsLocked()
			s.mu.Unlock()
			s.deliver(n)
			return err
		}
	}
	if shed != nil {
		s.failLocked([]*Future{shed}, errShed)
	}
	s.startLocked()
	f.host = h
	f.seq = s.seq
	s.seq++
	h.queue.push(f)
	if s.queueLimit > 0 {
		s.shed.push(f)
	}
	s.queued++
	tl.queued++
	s.watchLocked(f)
	s.pushRingLocked(h)
	s.wakeLocked()
	if s.stalledLocked() {
		s.watchStallLocked()
	}
	n := s.takeNewsLocked()
	s.mu.Unlock()
	if fn := s.obs.Queued; fn != nil {
		tell(fn, f)
	}
	s.deliver(n)
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
	if g := h.guard; g != nil && g.circuit.state != CircuitClosed {
		s.maybeIdleLocked(h)
		return g.circuit.err // a copy is no probe
	}
	s.startLocked()
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
	return f.phase.is(stateQueued) && f.more != nil && f.more.index >= 0
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
	if f.probe || f.shedPos != 0 {
		s.leftQueueLocked(f)
	}
	f.phase.dequeue()
	s.maybeIdleLocked(h)
	if s.queued == 0 {
		s.lastActive = s.now() // the Scheduler may be idle from now
	}
}

// transportStats returns the counts of t's requests now queued and running.
func (s *Scheduler) transportStats(t *AsyncTransport) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Queued: t.tally.queued, InFlight: s.inFlightLocked(t), Hosts: len(s.hosts), Paused: s.pausedLocked(time.Now()), Goroutines: s.goroutines}
}

// Stats returns the counts of the Scheduler as a whole: the requests of all its transports.
func (s *Scheduler) Stats() Stats {
	s.init(nil)
	s.mu.Lock()
	st := Stats{Queued: s.queued, InFlight: s.inFlightLocked(nil), Hosts: len(s.hosts), Paused: s.pausedLocked(time.Now()), Goroutines: s.goroutines}
	s.mu.Unlock()
	s.counts.fill(&st)
	return st
}

// counters are the outcomes of Futures, and the streamed bodies open, updated atomically: a
// transport keeps its own, and its Scheduler the sum over its transports.
type counters struct {
	_ cacheLinePad // workers write the counters: apart from what every request reads, beside them

	completed, failed, canceled, shed, retries, redirects, hedges atomic.Uint64

	bodies atomic.Int64  // streamed bodies holding their slots
	leaked atomic.Uint64 // streamed bodies collected unclosed

	_ cacheLinePad
}

// A cacheLinePad keeps the fields on either side of it in cache lines of their own.
type cacheLinePad [64]byte

// count counts the outcome of a Future resolved with err.
func (c *counters) count(err error) {
	switch outcomeOf(err) {
	case OutcomeCompleted:
		c.completed.Add(1)
	case OutcomeCanceled:
		c.canceled.Add(1)
	case OutcomeShed:
		c.shed.Add(1)
	default:
		c.failed.Add(1)
	}
}

// fill copies the counts into st.
func (c *counters) fill(st *Stats) {
	st.Completed, st.Failed, st.Canceled, st.Shed = c.completed.Load(), c.failed.Load(), c.canceled.Load(), c.shed.Load()
	st.Retries, st.Redirects, st.Hedges = c.retries.Load(), c.redirects.Load(), c.hedges.Load()
	st.Bodies, st.LeakedBodies = int(c.bodies.Load()), c.leaked.Load()
}
