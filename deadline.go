package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Deadlines that cannot be met: a queued request whose context's deadline ends before its host
// may send again (a pause its server asked for, its pace, a rate token) fails at once, unsent,
// rather than wait out its deadline in the queue. The Scheduler looks where it makes a host wait
// for a time: a new request to a host that waits, a retry queued to it, the head of its queue as
// it waits for a rate token, and its whole queue as its server pauses it. No timer per request.

// errUnmet marks the error of a request whose deadline ends before its host may send: Stats
// count it as shed. The error matches context.DeadlineExceeded too.
var errUnmet = errors.New("httpfutures: deadline before host may send")

// errRetryDeadline is the reason of a *RetryError whose retry would have been due after its
// request's deadline.
var errRetryDeadline = fmt.Errorf("httpfutures: deadline before the retry is due: %w", context.DeadlineExceeded)

// deadlineBefore reports whether f's context ends by a deadline before at.
func deadlineBefore(f *Future, at time.Time) bool {
	d, ok := f.req.Context().Deadline()
	return ok && d.Before(at)
}

// unmetError returns the error of the requests to h whose deadline ends before at, when h may
// send, seen at now.
func unmetError(h *host, at, now time.Time) error {
	why := "waits for a rate token"
	if !h.pausedTo.Before(at) {
		why = "is paused by its server"
	}
	return fmt.Errorf("%w: %s %s for %v: %w", errUnmet, h.key, why, at.Sub(now).Round(time.Millisecond), context.DeadlineExceeded)
}

// unmetLocked returns the error of f, to be queued for h, if h waits for a time that f's deadline
// ends before; nil if not. It requires s.mu held.
func (s *Scheduler) unmetLocked(h *host, f *Future) error {
	if h.timerIdx < 0 || !deadlineBefore(f, h.wakeAt) {
		return nil
	}
	return unmetError(h, h.wakeAt, time.Now())
}

// unmetHeadLocked fails the requests at the head of h's queue whose deadline ends before h, which
// waits for a rate token, may send: the head first, then the next, until one may wait. It
// requires s.mu held, and releases it while failing them.
func (s *Scheduler) unmetHeadLocked(h *host) {
	var fs []*Future
	for f := h.queue.peek(); f != nil && deadlineBefore(f, h.wakeAt); f = h.queue.peek() {
		s.dequeueLocked(f)
		fs = append(fs, f)
	}
	if fs != nil {
		s.failing = append(s.failing, failing{fs, unmetError(h, h.wakeAt, time.Now())})
		s.flushLocked()
	}
}

// unmetPausedLocked fails the requests queued for h whose deadline ends before until, when the
// pause its server asked for ends: one look at its whole queue. It requires s.mu held; the news
// is delivered by the caller.
func (s *Scheduler) unmetPausedLocked(h *host, until, now time.Time) {
	var fs []*Future
	for _, f := range h.queue.appendAll(nil) {
		if deadlineBefore(f, until) {
			fs = append(fs, f)
		}
	}
	s.failLocked(fs, unmetError(h, until, now))
}

// retryUnmet reports whether the retry of f, due after wait, would be due after the deadline of
// ctx, the request's own context.
func retryUnmet(ctx context.Context, wait time.Duration) bool {
	d, ok := ctx.Deadline()
	return ok && time.Now().Add(wait).After(d)
}
