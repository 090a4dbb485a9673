package redislimit

import (
	"context"
	"fmt"
	"time"
)

// A client of go-redis bounds a call by its context's deadline only if it was made with
// ContextTimeoutEnabled; otherwise by its ReadTimeout, 3 s by default, far beyond what a request
// should wait for its token. So a Limiter makes each call in a goroutine of its own and waits
// for it no longer than the deadline: a call that has not answered by then counts as a failure,
// and goes on in the background until the client gives up, while the Limiter makes no other.

// errSlow is the failure of a call that did not answer within the deadline.
type errSlow time.Duration

func (e errSlow) Error() string { return fmt.Sprintf("no answer within %v", time.Duration(e)) }

// errBusy is the failure of a call not made because a slow one is still running.
type errBusy struct{}

func (errBusy) Error() string { return "still waiting for an earlier call" }

// callLocked runs fn with a context that ends at the deadline, in a goroutine, and reports
// whether it returned within the deadline (and before ctx ended); if not, fn's results must not
// be read. It requires l.mu held, and holds it while it waits.
func (l *Limiter) callLocked(ctx context.Context, fn func(context.Context)) error {
	if l.slow != nil {
		select {
		case <-l.slow:
			l.slow = nil
		default:
			return errBusy{}
		}
	}
	if l.closing {
		return ErrClosed
	}
	l.stats.Calls++
	done := make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(done)
		cctx, cancel := context.WithTimeout(l.ctx, l.o.deadline)
		defer cancel()
		fn(cctx)
	}()
	t := time.NewTimer(l.o.deadline)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	select {
	case <-done: // just in time
		return nil
	default:
	}
	l.slow = done
	l.stats.Failures++
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errSlow(l.o.deadline)
}
