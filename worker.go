package httpfutures

import (
	"sync"
	"time"
)

// The workers: the goroutines that take admitted requests and run them, and the slots they take
// and give back.

// A workerPool is a Scheduler's worker goroutines and the slots they take: a slot of the pool
// for each request running, or whose streamed body is open. Its workers start at the first
// request, and end once the Scheduler has been idle for workerIdle (a generation of them retires)
// or closed. It is guarded by Scheduler.mu. What every request writes comes first, in the cache
// line it shares with the end of hostTable; what follows is read with every request (the workers
// check the generation) and written seldom, so that reading it costs no miss.
type workerPool struct {
	inflight   int       // pool slots taken
	lastActive instant   // when an attempt last ended, or a request never sent left the queue empty
	waiting    int       // workers waiting on cond
	waking     int       // workers signaled and not yet running
	bodySlots  int       // of the pool slots taken, those of streamed bodies whose workers are done with them
	gen        uint32    // the generation of its goroutines: those of an older one end
	started    bool      // its goroutines run: the workers and the pacer of generation gen
	goroutines int       // its goroutines running, of any generation
	cond       sync.Cond // workers wait on it (with Scheduler.mu) for a host to serve or a free slot
	runners    []*runner // the worker goroutines
	pool       fullClock // how long every pool slot was taken
}

// A runner is what the Scheduler knows of a worker goroutine: the request it runs, for Close and
// Shutdown to cancel. Each worker writes only its own, so that starting and ending a request
// touches no other request's memory (a list of running requests would, on other cores).
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

// runningLocked appends the requests that workers are running to out: those of t, or all if t is
// nil. It requires s.mu held.
func (s *Scheduler) runningLocked(t *AsyncTransport, out []*Future) []*Future {
	for _, r := range s.runners {
		if r.f != nil && (t == nil || r.f.t == t) {
			out = append(out, r.f)
		}
	}
	return out
}

// inFlightLocked counts the requests of t (of all transports if t is nil) that workers run and
// that have not resolved. A Future's phase is done before it resolves, so that Stats never count
// a resolved request in flight; counting here, where Stats are read, costs a request nothing. It
// requires s.mu held.
func (s *Scheduler) inFlightLocked(t *AsyncTransport) int {
	n := 0
	for _, r := range s.runners {
		if f := r.f; f != nil && (t == nil || f.t == t) && !f.phase.is(stateDone) {
			n++
		}
	}
	return n
}

// An outcome is what an attempt leaves to the worker that ran it.
type outcome struct {
	slot  *host         // the host whose slot the attempt holds at its end; nil if none
	kept  bool          // a streamed body keeps the slots, and gives them back when closed
	retry bool          // the attempt failed and is to be tried again after wait
	wait  time.Duration // how long the next attempt waits, if retry
	obs   observation   // what it says of its host's load, if hosts have adaptive limits
	end   instant       // when it resolved its Future; 0 if it did not (a retry)
}

// worker runs requests until the Scheduler closes, or its goroutines of generation gen retire.
func (s *Scheduler) worker(gen uint32) {
	defer s.wg.Done()
	s.mu.Lock()
	r := s.addRunnerLocked()
	var clock instant // when the worker's last attempt ended, until it waits for work
	for {
		f, waited := s.takeLocked(gen)
		if f == nil {
			s.removeRunnerLocked(r)
			s.goroutines--
			s.mu.Unlock()
			return
		}
		if waited {
			clock = 0
		}
		r.f = f
		sent := f.host.sendStateLocked() // for the host's adaptive limit
		s.mu.Unlock()
		out := f.t.run(f, clock)
		out.obs.sent = sent
		clock = out.end
		var end instant // when the attempt ended, if its host's adaptive limit learns from it
		if out.obs.sig != sigNone {
			end = out.end
			if end == 0 {
				end = s.now()
			}
		}
		s.mu.Lock()
		r.f = nil
		if s.endLocked(f, out, end) {
			clock = 0 // the news took its time
		}
	}
}

// endLocked ends the attempt of f that left out at end: its host's adaptive limit learns from it
// (its guard counted it before f resolved, in judged), the slots it holds go back (unless a
// streamed body keeps them), and it is queued again if it is to be retried. It requires s.mu
// held, and releases it while delivering the news (a change of the host's limit or circuit,
// requests to fail), and reports whether it did.
func (s *Scheduler) endLocked(f *Future, out outcome, end instant) (delivered bool) {
	if out.obs.answered {
		f.host.adapt.answered.Add(-1)
	}
	if end != 0 {
		s.adaptLocked(f.host, out.obs, end)
	}
	if f.host.guard != nil {
		s.unprobeLocked(f.host, f) // if the attempt ended before its round trip, unjudged
	}
	if out.end != 0 {
		s.lastActive = out.end
	}
	s.comeBackLocked(f) // before it is queued again: then another worker may run f
	if out.kept {
		s.bodySlots++ // the body gives them back, in releaseBody
	} else {
		s.releaseLocked(out.slot)
	}
	resolved := !out.retry
	if out.retry {
		if err := s.requeueLocked(f, out.wait); err != nil {
			s.mu.Unlock()
			// Stopped during the attempt: its context ends before it resolves, as in resolve,
			// whenever what stopped it gets to canceling it.
			(*runCtx)(f).cancel()
			f.abort(err) // still counted as running: Close and Shutdown wait for it
			s.mu.Lock()
			resolved = true
		}
	}
	if resolved {
		f.forgetLocked()
	}
	f.t.tally.running--
	f.t.tally.checkDrained()
	return s.flushLocked()
}

// requeueLocked puts the running f back for another attempt after wait, with no slot held
// meanwhile. It fails with the error of a cancellation if f was stopped during the attempt, and
// with ErrClosed if its transport was closed (under Shutdown, a running request's retries go on);
// f is then done, to be aborted. It requires s.mu held.
func (s *Scheduler) requeueLocked(f *Future, wait time.Duration) error {
	if err, ok := f.phase.requeue(); !ok {
		return err
	}
	if s.closed || f.t.tally.closeNow {
		f.phase.dequeue() // before s.mu is released: no one may take it for queued
		return ErrClosed
	}
	h := f.host
	if h.guard != nil || wait <= 0 && h.timerIdx >= 0 {
		if err := s.screenRetryLocked(h, f, wait); err != nil {
			f.phase.dequeue()
			return err
		}
	}
	s.startLocked() // the goroutines may have retired while f's attempt ended
	if h.idleIdx >= 0 {
		s.idle.remove(h)
	}
	s.queued++
	f.t.tally.queued++
	s.watchLocked(f)
	r := f.moreState()
	r.due = s.now()
	if wait <= 0 {
		h.queue.push(f)
		s.pushRingLocked(h)
		s.wakeLocked()
		return nil
	}
	r.due += instant(wait)
	h.delayed++
	s.delayed.push(f)
	s.wakePacerLocked(s.at(r.due))
	return nil
}

// takeLocked waits for a request that may start now, takes its slots, and returns it; nil once
// the Scheduler is closed, or its goroutines of generation gen retired. It requires s.mu held,
// and releases it while waiting or reserving; waited reports whether it may have.
func (s *Scheduler) takeLocked(gen uint32) (f *Future, waited bool) {
	for {
		if s.closed || gen != s.gen {
			s.wakeLocked() // a signal it took passes to a worker of the new generation
			return nil, waited
		}
		if s.inflight >= s.workers || s.ring.len() == 0 {
			if s.stalledLocked() {
				s.watchStallLocked()
			}
			waited = true
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
		if s.paced(h) {
			waited = waited || len(s.shared.limiters) > 0 // admitLocked releases s.mu to reserve
			if !s.admitLocked(h) {
				waited = true // it may have released s.mu to fail requests whose deadline ends first
				continue
			}
		}
		f = h.queue.pop()
		if f.shedPos != 0 {
			s.shed.remove(f)
		}
		s.queued--
		f.t.tally.queued--
		f.t.tally.running++
		s.takePoolSlotLocked()
		s.takeHostSlotLocked(h)
		if f.stop != nil {
			f.stop()
			f.stop = nil
		}
		f.phase.take()
		s.pushRingLocked(h)
		s.wakeLocked()
		return f, waited
	}
}

// takePoolSlotLocked takes a slot of the pool. It requires s.mu held.
func (s *Scheduler) takePoolSlotLocked() {
	s.inflight++
	if s.tracksFull && s.inflight == s.workers {
		s.pool.fill(time.Now())
	}
}

// takeHostSlotLocked takes a slot of h. It requires s.mu held.
func (s *Scheduler) takeHostSlotLocked(h *host) {
	h.inflight++
	if s.tracksFull && h.inflight == s.hostLimitOf(h) {
		h.full.fill(time.Now())
	}
}

// releaseLocked gives back a pool slot and, if h is not nil, a slot of h, and lets a waiting
// worker use them. It requires s.mu held.
func (s *Scheduler) releaseLocked(h *host) {
	if s.inflight == s.workers && s.tracksFull {
		s.pool.drain(time.Now())
	}
	s.inflight--
	if h != nil {
		s.releaseHostLocked(h)
	}
	s.wakeLocked()
}

// releaseBody gives back the slots of a streamed body: its pool slot, and its host slot on h.
// It may come before its worker's endLocked counts the body in bodySlots, and then leaves
// bodySlots at -1 until it does.
func (s *Scheduler) releaseBody(h *host) {
	s.mu.Lock()
	s.bodySlots--
	s.releaseLocked(h)
	s.mu.Unlock()
}

// releaseHostLocked gives back a slot of h: to the first redirect waiting for one, or to the
// host's queue. It requires s.mu held.
func (s *Scheduler) releaseHostLocked(h *host) {
	if h.handSlotLocked() {
		return // the slot passes to the redirect, still taken
	}
	if s.tracksFull && h.inflight == s.hostLimitOf(h) {
		s.hostsFull += h.full.drain(time.Now())
	}
	h.inflight--
	s.pushRingLocked(h)
	s.maybeIdleLocked(h)
	s.wakeLocked()
}
