package httpfutures

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
)

// What a Future tells of its end, and of its run's, and everything that takes its lock.

// watchers are who a Future tells of its end, and of its run's: its Done channel and
// AsCompleted's channels when it resolves; its runCtx's Done channel and AfterFunc callbacks, and
// the running attempt's context, when its run is canceled. mu guards them, and Future.ctxDone;
// only this file locks it.
type watchers struct {
	mu        sync.Mutex
	done      chan struct{}      // made when first asked for, or closedChan
	cancelRun context.CancelFunc // ends the running attempt's context; nil if it has none of its own
	runDone   chan struct{}      // runCtx's Done channel, made when first asked for
	afters    *afterFunc         // runCtx's AfterFunc callbacks, last first; nil once they ran
	waiters   *waiter            // AsCompleted's channels, last first; nil once told
	finished  instant            // when it resolved
}

// Done returns a channel that is closed when the Future resolves.
func (f *Future) Done() <-chan struct{} {
	if f == nil || f.t == nil {
		return closedChan
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done == nil {
		if f.resolved.Load() {
			f.done = closedChan
		} else {
			f.done = make(chan struct{})
		}
	}
	return f.done
}

// Timing returns when the Future was queued, started and finished.
func (f *Future) Timing() Timing {
	if f == nil || f.t == nil {
		return Timing{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.t.sched
	return Timing{Queued: s.at(f.queued), Started: s.at(instant(f.started.Load())), Finished: s.at(f.finished)}
}

// finish resolves f, and returns the instant it stamped as its end. Exactly one caller reaches
// it, by the phases.
func (f *Future) finish(resp *http.Response, err error) instant {
	if !f.is(flagHedge) {
		f.t.count(err) // before anyone can see the result, so that Stats agree with it
	}
	f.mu.Lock()
	f.resp, f.err = resp, err
	end := f.t.sched.now()
	f.finished = end
	f.resolved.Store(true)
	// Its runCtx can no longer end (see runCtx.cancel): what only its attempts used goes, so
	// that a resolved Future keeps little beyond its request and response.
	f.runDone, f.afters, f.cancelRun = nil, nil, nil
	f.wg.Done()
	if f.done != nil {
		close(f.done)
	} else {
		f.done = closedChan
	}
	waiters := f.waiters
	f.waiters = nil
	f.mu.Unlock()
	for w := waiters; w != nil; w = w.next {
		w.ch <- f
	}
	if fn := f.t.sched.obs.Resolved; fn != nil && !f.is(flagHedge) {
		tell2(fn, f, outcomeOf(err))
	}
	return end
}

// publishCancel makes cancel the way Cancel and Close reach the running attempt, which runs under
// a context of its own, and calls it at once if one of them came first.
func (f *Future) publishCancel(cancel context.CancelFunc) {
	f.mu.Lock()
	f.cancelRun = cancel
	f.mu.Unlock()
	if f.phase.is(stateCanceling) || f.phase.is(stateClosing) { // came before cancelRun
		cancel()
	}
}

// cancelRunning ends the running attempt's context: the runCtx, and the context it published
// with publishCancel, so that the attempt need not say which, nor take a lock to say it.
func (f *Future) cancelRunning() {
	(*runCtx)(f).cancel()
	f.mu.Lock()
	stop := f.cancelRun
	f.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// notify sends f on ch once f resolves; ch must have room for it.
func (f *Future) notify(ch chan<- *Future) {
	if f.t == nil {
		ch <- f
		return
	}
	f.mu.Lock()
	if f.resolved.Load() {
		f.mu.Unlock()
		ch <- f
		return
	}
	f.waiters = &waiter{ch: ch, next: f.waiters}
	f.mu.Unlock()
}

// Done returns a channel closed once the context is canceled.
func (c *runCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runDone == nil {
		switch {
		case c.ctxDone:
			return closedChan
		case c.resolved.Load():
			return nil // it can never end
		}
		c.runDone = make(chan struct{})
	}
	return c.runDone
}

// Err returns context.Canceled once the context is canceled, and nil before.
func (c *runCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctxDone {
		return context.Canceled
	}
	return nil
}

// AfterFunc arranges for fn to be called once the context is canceled, in its own goroutine if
// it is already. stop undoes it, and reports whether it did so before fn was called.
func (c *runCtx) AfterFunc(fn func()) (stop func() bool) {
	c.mu.Lock()
	if c.ctxDone {
		c.mu.Unlock()
		go fn()
		return func() bool { return false }
	}
	if c.resolved.Load() { // it can never end: fn is never called
		c.mu.Unlock()
		var stopped atomic.Bool
		return func() bool { return stopped.CompareAndSwap(false, true) }
	}
	a := &afterFunc{fn: fn, next: c.afters}
	c.afters = a
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ctxDone {
			return false // cancel has called fn, or is calling it
		}
		stopped := a.fn != nil
		a.fn = nil
		return stopped
	}
}

// An afterFunc is a function given to runCtx.AfterFunc, in a list; fn is nil once it was called
// or stopped.
type afterFunc struct {
	fn   func()
	next *afterFunc
}

// cancel cancels the context, and calls the functions given to AfterFunc. It does nothing once
// the Future has resolved: the request it stopped has then resolved with the error of what
// stopped it, and the context lives on in the request, never to end.
func (c *runCtx) cancel() {
	c.mu.Lock()
	if c.ctxDone || c.resolved.Load() {
		c.mu.Unlock()
		return
	}
	c.ctxDone = true
	if c.runDone == nil {
		c.runDone = closedChan
	} else {
		close(c.runDone)
	}
	// Once ctxDone is set, stop functions return false without touching the list: it is this
	// goroutine's alone.
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for a := afters; a != nil; a = a.next {
		if a.fn != nil {
			a.fn()
		}
	}
}
