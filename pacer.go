package httpfutures

import (
	"runtime"
	"time"
)

// The pacer: the goroutine that wakes hosts and retries whose time has come, retires the
// Scheduler's goroutines once they are idle, and asks for a collection when requests stall on
// slots that only streamed bodies hold.

// A timetable is what a Scheduler's pacer wakes for: hosts waiting for a time (a pause to end, a
// rate token to come due), retries waiting for theirs, the check that the Scheduler is idle, and
// requests stalled on slots that only streamed bodies hold. It keeps what the rate limiters need
// to know of the time slots were full. It is guarded by Scheduler.mu.
type timetable struct {
	timers     indexedHeap[*host, byWake]    // hosts waiting for a time: a pause to end or a token due
	delayed    indexedHeap[*Future, byRetry] // requests waiting to be tried again (WithRetry)
	holds      indexedHeap[*host, byHold]    // hosts holding slots for failures (adaptive limits)
	pacerAt    time.Time                     // when the pacer wakes next; zero if it is not running
	stalledAt  instant                       // when requests began to wait on slots held only by bodies; 0 if not
	collectIn  time.Duration                 // how long such a wait lasts before a collection is asked for
	leakedAt   uint64                        // the bodies found leaked, as of the last look at a stall
	hostsFull  time.Duration                 // how long hosts had every slot taken, summed over hosts
	sharedMark busyMark                      // pool and hostsFull at the last shared reservation
}

// stallCollect is how long requests wait on slots held only by streamed bodies before the
// Scheduler asks for a garbage collection, so that bodies dropped unclosed give their slots back
// (see streamBody); maxStallCollect bounds the wait once collections have found none.
const (
	stallCollect    = time.Second
	maxStallCollect = time.Minute
)

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

// pace is the pacer goroutine: it sleeps until the earliest host waiting for a
// time, then puts the hosts whose time has come back in the round-robin and wakes workers for
// them. It also retires the Scheduler's goroutines once they have been idle for workerIdle,
// itself included, and asks for a collection when requests wait on slots that only streamed
// bodies hold.
func (s *Scheduler) pace() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		resumed := s.wakeDueLocked(now)
		news := s.takeNewsLocked()
		next, retire := s.idleCheckLocked(now)
		if retire {
			s.retireLocked()
			s.goroutines--
			s.mu.Unlock()
			s.tellResumed(resumed)
			s.deliver(news)
			return
		}
		collect, stallAt := s.stallLocked()
		for _, at := range []time.Time{s.nextTimerLocked(), s.nextRetryLocked(), s.releaseHoldsLocked(now), stallAt} {
			if !at.IsZero() && at.Before(next) {
				next = at
			}
		}
		s.pacerAt = next
		s.mu.Unlock()
		s.tellResumed(resumed)
		s.deliver(news)
		if collect {
			runtime.GC() // bodies dropped unclosed give their slots back, in their cleanups
			continue
		}
		timer.Reset(next.Sub(now))
		select {
		case <-timer.C:
		case <-s.wake:
		case <-s.quit:
			s.mu.Lock()
			s.goroutines--
			s.mu.Unlock()
			return
		}
	}
}

// wakeDueLocked puts the hosts whose time has come back in the round-robin, and the retries that
// are due in their hosts' queues (failing those whose deadline ends before their host, still
// waiting, may send), and wakes workers for them. It returns the hosts whose pause
// ended, if an Observer is to be told. It requires s.mu held.
func (s *Scheduler) wakeDueLocked(now time.Time) (resumed []string) {
	for s.timers.len() > 0 && !s.timers.peek().wakeAt.After(now) {
		h := s.timers.pop()
		if !h.pausedTo.IsZero() && !h.pausedTo.After(now) {
			h.pausedTo = time.Time{} // the pause is over, and told once
			if s.obs.HostResumed != nil {
				resumed = append(resumed, h.key)
			}
		}
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
		if err := s.unmetLocked(f.host, f); err != nil {
			s.failLocked([]*Future{f}, err) // due while its host waits past its deadline
			continue
		}
		if s.pushRingLocked(f.host) {
			s.wakeLocked()
		}
	}
	return resumed
}

// tellResumed tells the Observers of the hosts whose pause ended.
func (s *Scheduler) tellResumed(hosts []string) {
	for _, host := range hosts {
		tell(s.obs.HostResumed, host)
	}
}

// idleCheckLocked returns when the pacer is to look again whether the Scheduler is idle, and
// whether it has been idle for workerIdle already, so that its goroutines retire. It requires
// s.mu held.
func (s *Scheduler) idleCheckLocked(now time.Time) (time.Time, bool) {
	wait := min(s.workerIdle, time.Hour) // a busy Scheduler is looked at again after that
	if s.idleLocked() {
		idle := now.Sub(s.at(s.lastActive))
		if idle >= s.workerIdle {
			return time.Time{}, true
		}
		wait = min(s.workerIdle-idle, time.Hour)
	}
	return now.Add(wait), false
}

// stallLocked watches for requests that wait on slots held only by streamed bodies: once they
// have waited stallCollect, it asks for a collection, so that bodies dropped unclosed give their
// slots back. While collections find such bodies, each stall waits stallCollect; each that finds
// none while requests still wait doubles the wait before the next, up to maxStallCollect (the
// bodies are read, slowly, or held on purpose). It reports whether a collection is due now, and
// when to look again; zero if no request waits so. It requires s.mu held.
func (s *Scheduler) stallLocked() (collect bool, at time.Time) {
	if !s.stalledLocked() {
		s.stalledAt, s.collectIn = 0, 0
		return false, time.Time{}
	}
	now, leaked := s.now(), s.counts.leaked.Load()
	if s.stalledAt == 0 || leaked != s.leakedAt { // a new stall, or the last collection found bodies
		s.stalledAt, s.collectIn, s.leakedAt = now, stallCollect, leaked
	}
	due := s.stalledAt + instant(s.collectIn)
	if now < due {
		return false, s.at(due)
	}
	s.stalledAt, s.collectIn = now, min(2*s.collectIn, maxStallCollect)
	return true, s.at(now + instant(s.collectIn))
}

// nextTimerLocked returns when the earliest host waiting for a time is due; zero if none waits.
func (s *Scheduler) nextTimerLocked() time.Time {
	if s.timers.len() == 0 {
		return time.Time{}
	}
	return s.timers.peek().wakeAt
}

// nextRetryLocked returns when the earliest retry waiting is due; zero if none waits.
func (s *Scheduler) nextRetryLocked() time.Time {
	if s.delayed.len() == 0 {
		return time.Time{}
	}
	return s.at(s.delayed.peek().more.due)
}

// retireLocked ends the goroutines once the Scheduler has been idle for workerIdle: the workers,
// as they next look for work, and the pacer that calls it. The next request starts them again.
// It requires s.mu held.
func (s *Scheduler) retireLocked() {
	s.started, s.pacerAt = false, time.Time{}
	s.gen++
	s.cond.Broadcast()
}

// idleLocked reports whether the Scheduler's goroutines have nothing to do: no request is queued,
// none runs, the slots taken, if any, are held by streamed bodies, and no host waits for a pause
// to end. It requires s.mu held.
func (s *Scheduler) idleLocked() bool {
	return s.queued == 0 && s.timers.len() == 0 && s.inflight == s.bodySlots
}

// stalledLocked reports whether requests wait on slots that only streamed bodies hold: unless
// their callers close them, only the collector gives such slots back, from bodies dropped
// unclosed. It requires s.mu held.
func (s *Scheduler) stalledLocked() bool {
	return s.bodySlots > 0 && s.queued > 0 && s.inflight == s.bodySlots
}

// watchStallLocked makes the pacer look at the stall that requests are in (stalledLocked), unless
// it has looked at it already and its last collection found no body. Every request asks
// stalledLocked first, which reads only what a request writes anyway. It requires s.mu held.
func (s *Scheduler) watchStallLocked() {
	if s.stalledAt == 0 || s.counts.leaked.Load() != s.leakedAt {
		s.wakePacerLocked(time.Now().Add(stallCollect))
	}
}
