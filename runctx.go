package httpfutures

import (
	"context"
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
// the Done of a context that can never be canceled may. Its Done, Err, AfterFunc and cancel take
// the Future's lock, and are with the rest of what does, in watchers.go.
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

// Value returns the Future for futureKey, and the parent's values.
func (c *runCtx) Value(key any) any {
	if key == (futureKey{}) {
		return (*Future)(c)
	}
	return c.parent().Value(key)
}

// String names the context, as the contexts of package context do.
func (c *runCtx) String() string { return "httpfutures.runCtx" }
