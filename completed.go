package httpfutures

import (
	"context"
	"iter"
)

// Waiting for many Futures: in the order they resolve, or all of them.

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
