package httpfutures

import "context"

// Stopping requests: Future.Cancel, a transport's Close and Shutdown, and the Scheduler's Close;
// and the tally of each transport's requests that tells when it has drained.

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
	if !f.phase.stop(state) {
		return false
	}
	f.cancelRunning()
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

// settled reports whether every request of t has resolved: none is queued or being aborted, and
// none runs but in the bookkeeping of a worker that resolved it, which drains t at once.
func (s *Scheduler) settled(t *AsyncTransport) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.tally.queued == 0 && t.tally.aborting == 0 && s.inFlightLocked(t) == 0
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
