package httpfutures

import (
	"context"
	"sync/atomic"
	"time"
)

// runCtx is the context of a Future's first attempt when its request's context can never end
// (it has no Done channel, as context.Background): it ends only when Cancel, or a Shutdown whose
// context ended, cancels the running request. It is the Future itself seen as a context, so it
// costs no allocation, and it makes its Done channel only when asked for. A Session makes its
// requests with it as their context, so that they need no copy to run.
//
// It has the AfterFunc method that context.AfterFunc and the children derived with
// context.WithCancel use when present, so that they are told of its end without a goroutine.
//
// Once its Future has resolved it can never end, since only a running request is canceled: it
// lets go of its Done channel and its AfterFunc callbacks, and Done returns nil from then on, as
// the Done of a context that can never be canceled may.
type runCtx Future

// parent is the context runCtx derives from: it gives the values and the deadline.
func (c *runCtx) parent() context.Context {
	if c.flags&flagOwnCtx != 0 {
		return context.Background()
	}
	return c.req.Context()
}

// Deadline returns the parent's deadline.
func (c *runCtx) Deadline() (time.Time, bool) { return c.parent().Deadline() }

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

// Value returns the Future for futureKey, and the parent's values.
func (c *runCtx) Value(key any) any {
	if key == (futureKey{}) {
		return (*Future)(c)
	}
	return c.parent().Value(key)
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

// String names the context, as the contexts of package context do.
func (c *runCtx) String() string { return "httpfutures.runCtx" }
