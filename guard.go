package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Failing fast: what refuses a request before it is sent, where waiting cannot help. A host's
// guard (its circuit breaker, its adaptive throttle) judges each attempt's end and screens each
// new request; a deadline that ends before the host may send fails its request (deadline.go); a
// full queue sheds its lowest priority (shed.go). The work they do under Scheduler.mu that must
// be finished with it released (failing requests, telling Observers) is left as news.

// A hostGuard is what refuses a host's requests before they are sent: its circuit breaker
// (WithCircuitBreaker) and its adaptive throttle (WithAdaptiveThrottle). A host has one only
// when its Scheduler has either, so that without them a host costs a nil pointer. Its zero value
// has a closed breaker that needs init to count, and a throttle that needs its window's init. It
// is guarded by Scheduler.mu.
type hostGuard struct {
	circuit   circuit // its breaker; closed, and never moved, if the Scheduler has none
	throttle  window  // requests (a) and accepts (b), if the Scheduler throttles
	throttled error   // the error of the requests the throttle rejects; set with the guard, read-only after
}

// newGuard returns the guard of a new host named key, or nil if the Scheduler has no breaker
// nor throttle.
func (s *Scheduler) newGuard(key string) *hostGuard {
	if !s.guarded() {
		return nil
	}
	g := &hostGuard{}
	if s.breaker != nil {
		g.circuit.init(s.breaker)
	}
	if s.throttle != nil {
		g.throttle.init(s.throttle.Window)
		g.throttled = fmt.Errorf("%w: %s", ErrThrottled, key)
	}
	return g
}

// failFast is what a Scheduler keeps to fail requests before they are sent: the requests queued
// for their first attempt, by priority, for a full queue to shed (WithQueueLimit), the requests
// to fail once its lock is released, and the changes to tell: its hosts' circuits, and their
// adaptive limits. Whoever makes news delivers it before leaving the lock for good; the changes
// are told in order, by one goroutine at a time. Its zero value has nothing queued nor to
// deliver. It is guarded by Scheduler.mu.
type failFast struct {
	shed    shedQueue       // kept only with WithQueueLimit
	failing []failing       // requests taken out of their queues, to fail
	changes []CircuitChange // circuit changes to tell, in order; kept only for an Observer
	limits  []LimitChange   // adaptive limit changes to tell, in order; kept only for an Observer
	telling bool            // a goroutine tells the changes: the others leave theirs to it
}

// news is what a goroutine took to do once the Scheduler's lock is released: requests to fail,
// and whether it tells the changes. The zero news is nothing to do.
type news struct {
	failing []failing
	tell    bool
}

// failing is requests taken out of their queues, to be failed with err.
type failing struct {
	fs  []*Future
	err error
}

// failLocked takes fs out of their queues, to be failed with err as the news is delivered. It
// requires s.mu held.
func (s *Scheduler) failLocked(fs []*Future, err error) {
	if len(fs) == 0 {
		return
	}
	for _, f := range fs {
		s.dequeueLocked(f)
	}
	s.failing = append(s.failing, failing{fs, err})
}

// hasNewsLocked reports whether there are requests to fail, or changes to tell that no goroutine
// tells. It requires s.mu held.
func (s *Scheduler) hasNewsLocked() bool {
	return s.failing != nil || s.hasChangesLocked() && !s.telling
}

// hasChangesLocked reports whether there are changes to tell. It requires s.mu held.
func (s *Scheduler) hasChangesLocked() bool { return s.changes != nil || s.limits != nil }

// takeNewsLocked returns the news to deliver, and leaves none: the requests to fail, and the
// changes to tell unless another goroutine tells them. It requires s.mu held.
func (s *Scheduler) takeNewsLocked() news {
	if s.failing == nil && !s.hasChangesLocked() {
		return news{}
	}
	n := news{failing: s.failing, tell: s.hasChangesLocked() && !s.telling}
	s.failing = nil
	s.telling = s.telling || n.tell
	return n
}

// deliver does what n says: it tells the changes, then fails the requests. It requires s.mu not
// held. Every request queued asks it, with no news almost always: that costs no call.
func (s *Scheduler) deliver(n news) {
	if n.failing != nil || n.tell {
		s.deliverNews(n)
	}
}

// deliverNews is deliver, for news there is.
func (s *Scheduler) deliverNews(n news) {
	if n.tell {
		s.tellChanges()
	}
	for _, fl := range n.failing {
		s.abortAll(fl.fs, fl.err)
	}
}

// tellChanges tells the circuit and limit changes to the Observers, each kind in order, those
// made meanwhile included, until none is left. It requires s.mu not held.
func (s *Scheduler) tellChanges() {
	for {
		s.mu.Lock()
		cs, ls := s.changes, s.limits
		more := cs != nil || ls != nil
		s.changes, s.limits, s.telling = nil, nil, more
		s.mu.Unlock()
		if !more {
			return
		}
		for _, c := range cs {
			tell(s.obs.CircuitChanged, c)
		}
		for _, c := range ls {
			tell(s.obs.LimitChanged, c) // the callback cannot crash the worker; it has no Future to fail
		}
	}
}

// flushLocked delivers the news, if any, and reports whether it did. It requires s.mu held, and
// releases it while delivering.
func (s *Scheduler) flushLocked() bool {
	if !s.hasNewsLocked() {
		return false
	}
	n := s.takeNewsLocked()
	s.mu.Unlock()
	s.deliver(n)
	s.mu.Lock()
	return true
}

// A health is what an attempt's end says of its host, for its guard.
type health uint8

const (
	healthCounted  health = 1 << iota // the attempt counts: it was not canceled, nor ended by Close
	healthFailed                      // CircuitBreaker.IsFailure judged it a failure
	healthOverload                    // AdaptiveThrottle.IsOverload judged it refused as overloaded
)

// judge returns what an attempt that ended with resp or err says of its host. An attempt its
// caller stopped says nothing, and neither does one whose judge panics.
func (a *attempt) judge(resp *http.Response, err error) (h health) {
	s := a.t.sched
	if errors.Is(a.parent.Err(), context.Canceled) || !a.f.phase.is(stateRunning) || circuitCanceled(err) {
		return 0
	}
	defer func() {
		if recover() != nil {
			h = 0
		}
	}()
	h = healthCounted
	if s.breaker != nil && s.breaker.IsFailure(resp, err) {
		h |= healthFailed
	}
	if s.throttle != nil && s.throttle.IsOverload(resp, err) {
		h |= healthOverload
	}
	return h
}

// guarded reports whether hosts have guards.
func (s *Scheduler) guarded() bool { return s.breaker != nil || s.throttle != nil }

// screenLocked decides whether the new request f may be queued for h at now: its breaker may
// refuse it or take it as a probe, its throttle may reject it, and its deadline may end before h
// may send. It requires s.mu held.
func (s *Scheduler) screenLocked(h *host, f *Future, now time.Time) error {
	if g := h.guard; g != nil {
		if s.breaker != nil {
			if err := s.circuitAllowLocked(h, f, now); err != nil {
				return err
			}
		}
		if s.throttle != nil && s.throttleLocked(g, now) {
			s.unprobeLocked(h, f)
			return g.throttled
		}
	}
	if err := s.unmetLocked(h, f); err != nil {
		s.unprobeLocked(h, f)
		return err
	}
	return nil
}

// judged counts the attempt of f that ended saying hl in its host's breaker and throttle. The
// attempt's worker calls it before f resolves, so that what f's caller reads of the host, and what
// Observer.Resolved reads, includes the attempt. A change of the breaker it makes is delivered
// when the worker ends the attempt.
func (s *Scheduler) judged(f *Future, hl health) {
	s.mu.Lock()
	s.judgedLocked(f.host, f, hl, time.Now())
	s.mu.Unlock()
}

// judgedLocked counts the attempt of f to h that ended saying hl at now, in h's breaker and
// throttle. It requires s.mu held.
func (s *Scheduler) judgedLocked(h *host, f *Future, hl health, now time.Time) {
	g := h.guard
	probe := f.probe
	f.probe = false
	if hl&healthCounted == 0 {
		if probe {
			g.circuit.unprobe()
		}
		return
	}
	if s.breaker != nil {
		if c := g.circuit.record(s.breaker, now, hl&healthFailed != 0, probe); c != nil {
			s.circuitChangedLocked(h, c)
		}
	}
	if s.throttle != nil {
		accepted := 1
		if hl&healthOverload != 0 {
			accepted = 0
		}
		g.throttle.add(now, 1, accepted)
	}
}

// unprobeLocked gives back the probe place of f, a request to h leaving unjudged, if it had one.
// It requires s.mu held.
func (s *Scheduler) unprobeLocked(h *host, f *Future) {
	if f.probe {
		f.probe = false
		h.guard.circuit.unprobe()
	}
}

// leftQueueLocked is told that the queued f left its queue otherwise than to be sent: it gives
// back its probe place and its place among those a full queue may shed. It requires s.mu held.
func (s *Scheduler) leftQueueLocked(f *Future) {
	s.unprobeLocked(f.host, f)
	if f.shedPos != 0 {
		s.shed.remove(f)
	}
}

// screenRetryLocked decides whether the retry of f may be queued for h, due after wait: h's
// breaker may refuse it or take it as a probe, and its deadline may end before h may send (a
// retry due later had its deadline held against its due time as it was judged). It requires
// s.mu held.
func (s *Scheduler) screenRetryLocked(h *host, f *Future, wait time.Duration) error {
	if h.guard != nil && s.breaker != nil {
		if err := s.circuitAllowLocked(h, f, time.Now()); err != nil {
			return err
		}
	}
	if wait <= 0 {
		if err := s.unmetLocked(h, f); err != nil {
			s.unprobeLocked(h, f)
			return err
		}
	}
	return nil
}
