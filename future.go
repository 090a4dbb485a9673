package httpfutures

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
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
	// bytes is a size class of the allocator, whose objects of that class start on a cache line.
	// What a worker reads and writes as it takes the Future from its queue, with the Scheduler's
	// lock held (the queue slot and the phase), is in that first line: a miss less in the
	// Scheduler's busiest critical section.

	// Set before the Future is shared, read-only after.
	req    *http.Request
	t      *AsyncTransport
	queued instant // when it was made

	queueSlot // its place in its Scheduler's queues, guarded by Scheduler.mu

	phase    phase        // where it is in its life; see phase for who moves it
	attempts atomic.Int32 // attempts made

	opts     *requestOptions // per-request options from the request's context; nil if none; read-only once shared
	started  atomic.Int64    // an instant: when the first attempt started
	resolved atomic.Bool     // set once resp and err are written

	// Each under its own guard, packed together.
	flags   futureFlags // set before the Future is shared, read-only after
	sent    bool        // the attempt sent its first round trip; owned by the worker running it
	ctxDone bool        // runCtx was canceled; guarded by mu
	probe   bool        // its next or running attempt is its host's circuit probe; guarded by Scheduler.mu

	// Owned by the worker running an attempt, and by the Scheduler between attempts.
	more *moreState // nil until an attempt is to be tried again, or redirects

	wg sync.WaitGroup // done when the Future resolves

	watchers // who is told of its end, and of its run's; guarded by mu

	// The result: written once before resolved is set, read only after.
	resp *http.Response
	err  error
}

// A queueSlot is a Future's place in its Scheduler's queues. It is guarded by Scheduler.mu.
type queueSlot struct {
	host    *host       // its host; nil once it resolved and the Scheduler forgot it
	index   int         // position in the host's queue; -1 when not queued
	stop    func() bool // stops watching the request's context while queued
	seq     uint32      // for FIFO order within a priority
	shedPos int32       // one past its position in the Scheduler's shedQueue; 0 when not in it
}

// A phase is where a Future is in its life. It moves only by the transitions below, each named
// by a method, and ends in done, once.
//
//	from       to         transition  by                                                    guard
//	new        done       failEarly   StartRoundTrip, Session: invalid, refused at submit   none: not yet shared
//	queued     running    take        a worker takes it                                     Scheduler.mu
//	queued     done       dequeue     Cancel, its context's end, Close, a Limiter refusing  Scheduler.mu
//	running    queued     requeue     its worker, to try it again                           Scheduler.mu
//	running    canceling  stop        Cancel, while it runs                                 atomic
//	running    closing    stop        Close, or a Shutdown whose context ended              atomic
//	running    done       finish      its worker resolves it                                atomic
//	canceling  done       finish      its worker resolves it with context.Canceled          atomic
//	closing    done       finish      its worker resolves it with an error matching ErrClosed atomic
//
// A requeue that finds it canceling or closing ends it in done instead, with the error of what
// stopped it; one that finds its transport closed, likewise with ErrClosed. The zero phase is
// queued, as a Future is made.
type phase struct{ v atomic.Int32 }

// The phases of a Future.
const (
	stateQueued int32 = iota
	stateRunning
	stateCanceling // Cancel was called while running
	stateClosing   // Close, or a Shutdown whose context ended, stopped it while running
	stateDone
)

// is reports whether the Future is in state.
func (p *phase) is(state int32) bool { return p.v.Load() == state }

// failEarly ends a Future that was never queued.
func (p *phase) failEarly() { p.v.Store(stateDone) }

// take moves a queued Future to running. It requires Scheduler.mu held.
func (p *phase) take() { p.v.Store(stateRunning) }

// dequeue ends a queued Future. It requires Scheduler.mu held.
func (p *phase) dequeue() { p.v.Store(stateDone) }

// requeue moves a running Future back to queued, and reports whether it did; if it was stopped
// meanwhile, it ends it instead, and err is the error of what stopped it. It requires
// Scheduler.mu held.
func (p *phase) requeue() (err error, ok bool) {
	if p.v.CompareAndSwap(stateRunning, stateQueued) {
		return nil, true
	}
	return stoppedError(p.v.Swap(stateDone)), false
}

// stop marks a running Future as stopped by Cancel (stateCanceling) or Close (stateClosing), and
// reports whether it was running.
func (p *phase) stop(by int32) bool { return p.v.CompareAndSwap(stateRunning, by) }

// finish ends a running Future; err is the error of what stopped it, if something did.
func (p *phase) finish() (err error) {
	if p.v.CompareAndSwap(stateRunning, stateDone) {
		return nil
	}
	return stoppedError(p.v.Swap(stateDone))
}

// stoppedError is the error of a running Future that was stopped in state.
func stoppedError(state int32) error {
	if state == stateClosing {
		return errStopped
	}
	return context.Canceled
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

// errZero is the error of the zero Future.
var errZero = fmt.Errorf("%w: the zero Future was never started", ErrInvalidRequest)

// closedChan is the Done channel of a Future that resolved before anyone asked for it.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newFuture(t *AsyncTransport, req *http.Request) *Future {
	f := &Future{req: req, t: t, queueSlot: queueSlot{index: -1}, queued: t.sched.now()}
	f.wg.Add(1)
	return f
}

// failedFuture returns a Future already resolved with err.
func failedFuture(t *AsyncTransport, req *http.Request, err error) *Future {
	f := newFuture(t, req)
	f.failEarly(err)
	return f
}

// failEarly resolves f, never queued, with err.
func (f *Future) failEarly(err error) {
	f.phase.failEarly()
	f.finish(nil, err)
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

// Cancel stops the request: a queued request leaves the queue at once and is never sent; a
// running one has its context canceled. It reports whether it stopped the request, in which case
// the Future's error is context.Canceled. It returns false if the Future had already resolved.
func (f *Future) Cancel() bool {
	if f == nil || f.t == nil {
		return false
	}
	return f.t.sched.cancel(f)
}

// Attempts returns how many attempts of the request were made: 1 unless it was retried
// (WithRetry), 0 if it was never sent.
func (f *Future) Attempts() int {
	if f == nil {
		return 0
	}
	return int(f.attempts.Load())
}

// resolve resolves a running Future, or, if it was stopped meanwhile, closes resp and resolves
// it with the error of what stopped it. It returns the instant f resolved at.
func (f *Future) resolve(resp *http.Response, err error) instant {
	if stopped := f.phase.finish(); stopped != nil {
		err = stopped
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
