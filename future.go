package httpfutures

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A Future is the pending result of one round trip. It is resolved exactly once, with a response
// or an error (never both), and then its Done channel is closed.
//
// Unless the request streams (WithStreaming, ContextWithStreaming), the response body has been
// read into memory by the worker when the Future resolves: the connection is already back in the
// pool, reading the body does no I/O, and closing it is optional but harmless.
//
// The zero Future, like a nil *Future, was never started: it is resolved, with an error matching
// ErrInvalidRequest. A Future is safe for concurrent use.
type Future struct {
	// The fields are ordered to leave no padding: a Future is made for every request, and 192
	// bytes is a size class of the allocator.

	// Set before the Future is shared, read-only after.
	req    *http.Request
	t      *AsyncTransport
	opts   *requestOptions // per-request options from the request's context; nil if none
	queued instant         // when it was made

	// Guarded by Scheduler.mu.
	host  *host
	index int         // position in the host's queue; -1 when not queued
	stop  func() bool // stops watching the request's context while queued
	seq   uint32      // for FIFO order within a priority

	// Atomic.
	state    atomic.Int32 // leaving stateQueued requires Scheduler.mu
	attempts atomic.Int32
	started  atomic.Int64 // an instant: when the first attempt started
	resolved atomic.Bool  // set once resp and err are written

	// Each under its own guard, packed together.
	flags   futureFlags // set before the Future is shared, read-only after
	sent    bool        // the attempt sent its first round trip; owned by the worker running it
	ctxDone bool        // runCtx was canceled; guarded by mu

	// Owned by the worker running an attempt, and by the Scheduler between attempts.
	more *moreState // nil until an attempt is to be tried again, or redirects

	wg sync.WaitGroup // done when the Future resolves

	// Guarded by mu.
	mu        sync.Mutex
	done      chan struct{} // made when first asked for, or closedChan
	cancelRun context.CancelFunc
	runDone   chan struct{} // runCtx's Done channel, made when first asked for
	afters    *afterFunc    // runCtx's AfterFunc callbacks, last first; nil once they ran
	waiters   *waiter       // AsCompleted's channels, last first; nil once told
	finished  instant

	// The result: written once before resolved is set, read only after.
	resp *http.Response
	err  error
}

// futureFlags tell how a Future runs. They are set before it is queued, and only read after;
// they share a byte to keep the Future, made for every request, in a smaller size class.
type futureFlags uint8

const (
	flagClient futureFlags = 1 << iota // a Session's request: the transport's client runs it
	flagStream                         // resolve at the response headers; the body holds the slots
	flagOwnCtx                         // req was made by a Session with the Future's runCtx as its context
	flagHedge                          // a copy of a hedged round trip (WithHedge), counted as a hedge only
)

func (f *Future) is(flag futureFlags) bool { return f.flags&flag != 0 }

// priority is the request's priority (ContextWithPriority).
func (f *Future) priority() int {
	if f.opts == nil {
		return 0
	}
	return f.opts.priority
}

// moreState is what a Future carries only once an attempt is to be tried again (WithRetry), or
// a Session request redirects.
type moreState struct {
	// Between attempts.
	nextBody io.ReadCloser // the body of the next attempt, from GetBody
	due      instant       // when the attempt may go: its host owes it no rate token before
	index    int           // position in Scheduler.delayed; -1 when not in it. Guarded by Scheduler.mu

	// During an attempt, owned by its worker.
	first *http.Response // a first round trip's redirect, sent by clientDo, for the client to follow
	last  *http.Response // the response hopTransport handed the client last, while it has it
	moved bool           // a redirect moved the attempt's host slot: slot is the one it holds
	slot  *host          // the host whose slot the attempt holds, if moved; nil if none
	away  bool           // the Future's host is kept for it while its slot is elsewhere; guarded by Scheduler.mu
}

// moreState returns f's moreState, made on first use.
func (f *Future) moreState() *moreState {
	if f.more == nil {
		f.more = &moreState{index: -1}
	}
	return f.more
}

// slotHost returns the host whose slot f's attempt holds: its own, a redirect's, or nil if none.
// It is for the worker running the attempt.
func (f *Future) slotHost() *host {
	if m := f.more; m != nil && m.moved {
		return m.slot
	}
	return f.host
}

// forgetLocked lets go of the scheduling state of the resolved f, which its Scheduler is done
// with: its host, which may be evicted, and its retry and redirect state. It requires
// Scheduler.mu held.
func (f *Future) forgetLocked() { f.host, f.more = nil, nil }

// enqueued returns when f's next attempt entered its host's queue, or is to enter it: its host
// owes it no rate token before. It requires Scheduler.mu held, with f queued.
func (f *Future) enqueued() instant {
	if f.more != nil {
		return f.more.due
	}
	return f.queued
}

// An instant is a reading of the monotonic clock: one plus the nanoseconds since its
// Scheduler's epoch, so that zero means unset. Reading it costs half of time.Now, which also reads the wall clock.
type instant int64

// now returns the current instant.
func (s *Scheduler) now() instant { return instant(time.Since(s.epoch)) + 1 }

// at returns i as a time.Time, or the zero time if i is unset.
func (s *Scheduler) at(i instant) time.Time {
	if i == 0 {
		return time.Time{}
	}
	return s.epoch.Add(time.Duration(i - 1))
}

// The states of a Future. Leaving stateQueued requires Scheduler.mu.
const (
	stateQueued int32 = iota
	stateRunning
	stateCanceling // Cancel was called while running
	stateClosing   // Close, or a Shutdown whose context ended, stopped it while running
	stateDone
)

// stoppedError is the error of a running Future that was stopped in state.
func stoppedError(state int32) error {
	if state == stateClosing {
		return errStopped
	}
	return context.Canceled
}

// errZero is the error of the zero Future.
var errZero = fmt.Errorf("%w: the zero Future was never started", ErrInvalidRequest)

// Timing tells when a Future went through each stage. A time is zero until the stage is reached.
// The times are read from the monotonic clock: their differences are exact, and as wall-clock
// times they follow the clock the program started with.
type Timing struct {
	Queued   time.Time // when the request was submitted
	Started  time.Time // when a worker started the round trip
	Finished time.Time // when the Future resolved
}

// QueueWait is the time between Queued and Started, or zero if the request did not start.
func (t Timing) QueueWait() time.Duration {
	if t.Started.IsZero() {
		return 0
	}
	return t.Started.Sub(t.Queued)
}

// RoundTrip is the time between Started and Finished: the round trip, the body read and the
// response hooks. It is zero until the Future resolves, and if the request never started.
func (t Timing) RoundTrip() time.Duration {
	if t.Started.IsZero() || t.Finished.IsZero() {
		return 0
	}
	return t.Finished.Sub(t.Started)
}

// Total is the time between Queued and Finished, or zero until the Future resolves.
func (t Timing) Total() time.Duration {
	if t.Finished.IsZero() {
		return 0
	}
	return t.Finished.Sub(t.Queued)
}

// closedChan is the Done channel of a Future that resolved before anyone asked for it.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newFuture(t *AsyncTransport, req *http.Request) *Future {
	f := &Future{req: req, t: t, index: -1, queued: t.sched.now()}
	f.wg.Add(1)
	return f
}

// failedFuture returns a Future already resolved with err.
func failedFuture(t *AsyncTransport, req *http.Request, err error) *Future {
	f := newFuture(t, req)
	f.state.Store(stateDone)
	f.finish(nil, err)
	return f
}

// Result waits for the Future to resolve and returns its response or its error. A non-2xx
// response is not an error.
func (f *Future) Result() (*http.Response, error) {
	if f == nil || f.t == nil {
		return nil, errZero
	}
	if !f.resolved.Load() {
		f.wg.Wait()
	}
	return f.resp, f.err
}

// Wait is like Result but returns ctx.Err() if ctx ends first, leaving the request to go on; call
// Cancel to stop it.
func (f *Future) Wait(ctx context.Context) (*http.Response, error) {
	if f == nil || f.t == nil || f.resolved.Load() {
		return f.Result()
	}
	select {
	case <-f.Done():
		return f.resp, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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

// Request returns the request that was submitted, as given. Its response's Request field names
// the same request, or for a Session request that was redirected, the last request sent. The
// requests that Session.Get, Head, Post and PostForm make have a context of the Future's own,
// which only Cancel (or a Shutdown that cancels running requests) ends; once the Future has
// resolved otherwise, that context can never end, and its Done returns nil.
func (f *Future) Request() *http.Request {
	if f == nil {
		return nil
	}
	return f.req
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

// Cancel stops the request: a queued request leaves the queue at once and is never sent; a
// running one has its context canceled. It reports whether it stopped the request, in which case
// the Future's error is context.Canceled. It returns false if the Future had already resolved.
func (f *Future) Cancel() bool {
	if f == nil || f.t == nil {
		return false
	}
	return f.t.sched.cancel(f)
}

// finish resolves f, and returns the instant it stamped as its end. Exactly one caller reaches
// it, by the state machine.
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
	return end
}

// resolve resolves a running Future, or, if it was stopped meanwhile, closes resp and resolves
// it with the error of what stopped it. It returns the instant f resolved at.
func (f *Future) resolve(resp *http.Response, err error) instant {
	f.t.countRunning(-1) // before it resolves: Stats never count a resolved request in flight
	if !f.state.CompareAndSwap(stateRunning, stateDone) {
		err = stoppedError(f.state.Swap(stateDone))
		(*runCtx)(f).cancel() // ended before it resolves, whenever what stopped it gets to it
		if resp != nil {
			resp.Body.Close()
			resp = nil
		}
	}
	return f.finish(resp, err)
}

// abort resolves a Future that was not sent again with err, closing the body it would have sent.
func (f *Future) abort(err error) {
	f.closePendingBody()
	f.finish(nil, err)
}

// closePendingBody closes the body the next attempt would send: the request's own before the
// first attempt, the one from GetBody before a retry.
func (f *Future) closePendingBody() {
	switch {
	case f.more != nil && f.more.nextBody != nil:
		f.more.nextBody.Close()
		f.more.nextBody = nil
	case f.attempts.Load() == 0:
		closeBody(f.req)
	}
}

// Attempts returns how many attempts of the request were made: 1 unless it was retried
// (WithRetry), 0 if it was never sent.
func (f *Future) Attempts() int {
	if f == nil {
		return 0
	}
	return int(f.attempts.Load())
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

// A waiter is a channel that a Future sends itself on when it resolves, in a list.
type waiter struct {
	ch   chan<- *Future
	next *waiter
}

// AsCompleted yields the given futures as they resolve, in the order they resolve, each once.
// Nil futures are skipped. It starts no goroutine; stopping the iteration early leaves the
// futures running.
func AsCompleted(futures ...*Future) iter.Seq[*Future] {
	return func(yield func(*Future) bool) {
		seen := make(map[*Future]struct{}, len(futures))
		ch := make(chan *Future, len(futures))
		for _, f := range futures {
			if f == nil {
				continue
			}
			if _, dup := seen[f]; dup {
				continue
			}
			seen[f] = struct{}{}
			f.notify(ch)
		}
		for range len(seen) {
			if !yield(<-ch) {
				return
			}
		}
	}
}

// WaitAll waits until every future has resolved, or ctx ends. It returns ctx.Err() if ctx ended
// first, leaving the futures running; otherwise the error of the first failed future in the
// order given, or nil.
func WaitAll(ctx context.Context, futures ...*Future) error {
	for _, f := range futures {
		if f == nil {
			continue
		}
		if f.t == nil || f.resolved.Load() {
			continue
		}
		select {
		case <-f.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, f := range futures {
		if f == nil {
			continue
		}
		if _, err := f.Result(); err != nil {
			return err
		}
	}
	return nil
}
