package httpfutures

import (
	"context"
	"fmt"
	"iter"
	"net/http"
)

// Stream starts the requests that reqs yields, keeping at most window of them outstanding, and
// yields their Futures as they resolve, in the order they resolve: the way to fan out a large
// number of requests. A window of 0 means twice the Scheduler's workers, which keeps every
// worker busy while the loop body runs; a negative window panics.
//
// Stream pulls a request only while fewer than window are outstanding (started and not yet
// yielded). Once the window is full, it yields the Futures as they resolve and pulls again when
// half the window has room, or as soon as fewer requests than the workers would be outstanding:
// the requests go in batches, which costs fewer wake-ups than refilling the window one request at
// a time. Memory is bounded by the window, not by how many requests reqs holds: Stream keeps no
// Future it has yielded. Each request pulled is yielded exactly once, unless the loop stops
// early. Invalid requests, nil ones included, are yielded as Futures failed with
// ErrInvalidRequest, as StartRoundTrip makes them; so are those of GetRequests whose URL did not
// parse.
//
// When the loop stops early (break, return, or a panic in its body), Stream stops pulling,
// cancels the requests outstanding (see Future.Cancel) and returns once they have resolved. When
// ctx ends, Stream stops pulling and cancels the requests outstanding too, but goes on yielding
// them as they resolve: those it stopped fail with context.Canceled, and ctx.Err() tells why.
// ctx governs the stream, and through it the requests that the stream has started; a request's
// own context still applies to it, and Stream does not change it. A panic in reqs is the
// caller's: it goes on up through the loop, once the requests outstanding have been canceled and
// have resolved.
//
// Stream starts no goroutine: reqs runs in the caller's goroutine, between the loop's
// iterations, so that Futures that resolve while reqs blocks are yielded once it returns; an
// iterator that may block should watch ctx itself. Streaming costs a map entry and a channel
// send per request beside the request's own cost; see the package documentation.
func (t *AsyncTransport) Stream(ctx context.Context, reqs iter.Seq[*http.Request], window int) iter.Seq[*Future] {
	w := t.window(window)
	return streamCompleted(ctx, reqs, w, t.refill(w), t.startStreamed, identity)
}

// StreamOrdered is like Stream but yields the Futures in the order their requests were pulled,
// as a pool's map does. The window counts the requests pulled and not yet yielded: a slow request
// holds back those after it, and while the oldest is outstanding and the window is full, no new
// request is pulled.
func (t *AsyncTransport) StreamOrdered(ctx context.Context, reqs iter.Seq[*http.Request], window int) iter.Seq[*Future] {
	return streamOrdered(ctx, reqs, t.window(window), t.startStreamed, identity)
}

// Stream is AsyncTransport.Stream for the Session: each request runs as Do runs it, through the
// wrapped client, with its redirects, cookie jar and timeout. A window of 0 means twice the
// workers.
func (s *Session) Stream(ctx context.Context, reqs iter.Seq[*http.Request], window int) iter.Seq[*Future] {
	w := s.Transport().window(window)
	return streamCompleted(ctx, reqs, w, s.Transport().refill(w), s.doStreamed, identity)
}

// StreamOrdered is AsyncTransport.StreamOrdered for the Session: each request runs as Do runs it.
func (s *Session) StreamOrdered(ctx context.Context, reqs iter.Seq[*http.Request], window int) iter.Seq[*Future] {
	return streamOrdered(ctx, reqs, s.Transport().window(window), s.doStreamed, identity)
}

// StreamJSON is Session.Stream for JSON: each response is decoded into a T in the worker, as
// GetJSON does (see DecodeJSON), and the Typed Futures are yielded as they resolve, with the
// window, ctx and early stop of Session.Stream. A response that is not 2xx, or whose body is not
// a T, fails its Future: Value returns the error, and Request tells which request it was.
func StreamJSON[T any](ctx context.Context, s *Session, reqs iter.Seq[*http.Request], window int) iter.Seq[*Typed[T]] {
	return StreamDecode(ctx, s, reqs, window, DecodeJSON[T])
}

// StreamDecode is Session.Stream with each response decoded by decode in the worker, as Decode
// does; the Typed Futures are yielded as they resolve.
func StreamDecode[T any](ctx context.Context, s *Session, reqs iter.Seq[*http.Request], window int, decode func(*http.Response) (T, error)) iter.Seq[*Typed[T]] {
	start := func(req *http.Request) *Typed[T] {
		if err := requestError(req); err != nil {
			return &Typed[T]{Future: failedFuture(s.Transport(), req, err)}
		}
		return Decode(s, req, decode)
	}
	w := s.Transport().window(window)
	return streamCompleted(ctx, reqs, w, s.Transport().refill(w), start, typedFuture[T])
}

func typedFuture[T any](t *Typed[T]) *Future { return t.Future }

func identity(f *Future) *Future { return f }

// GetRequests turns URLs into GET requests, one for each URL as it is pulled, for Stream. A URL
// that does not parse is not dropped: it becomes a request with a nil URL that Stream yields as a
// Future failed with ErrInvalidRequest and the parse error (a *url.Error, which names the URL).
// Sent by other means, such a request fails with ErrInvalidRequest too, for its nil URL.
func GetRequests(urls iter.Seq[string]) iter.Seq[*http.Request] {
	return func(yield func(*http.Request) bool) {
		for u := range urls {
			req, err := http.NewRequest(http.MethodGet, u, nil)
			if err != nil {
				ctx := context.WithValue(context.Background(), requestErrorKey{}, err)
				req = (&http.Request{Method: http.MethodGet, Header: make(http.Header)}).WithContext(ctx)
			}
			if !yield(req) {
				return
			}
		}
	}
}

// requestErrorKey carries, in the context of a request that GetRequests could not make, why.
type requestErrorKey struct{}

// requestError returns why GetRequests could not make req, or nil.
func requestError(req *http.Request) error {
	if req == nil || req.URL != nil {
		return nil
	}
	if err, ok := req.Context().Value(requestErrorKey{}).(error); ok {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return nil
}

// startStreamed starts req as StartRoundTrip does, with the error of a request GetRequests could
// not make.
func (t *AsyncTransport) startStreamed(req *http.Request) *Future {
	if err := requestError(req); err != nil {
		return failedFuture(t, req, err)
	}
	return t.StartRoundTrip(req)
}

// doStreamed starts req as Do does, with the error of a request GetRequests could not make.
func (s *Session) doStreamed(req *http.Request) *Future {
	if err := requestError(req); err != nil {
		return failedFuture(s.Transport(), req, err)
	}
	return s.Do(req)
}

// window returns the window of a stream given n: n, or twice the workers if n is 0.
func (t *AsyncTransport) window(n int) int {
	t.init()
	switch {
	case n < 0:
		panic(fmt.Sprintf("httpfutures: negative stream window %d", n))
	case n == 0:
		return 2 * t.sched.workers
	}
	return n
}

// refill returns how few requests of a full window must be outstanding before a stream in
// completion order pulls again: half the window, but no fewer than the workers, so that they
// never wait for the stream; a window no larger than the workers is refilled at once. Pulling in
// batches wakes the stream's goroutine less often than refilling the window one request at a
// time.
func (t *AsyncTransport) refill(window int) int {
	return max(window/2, min(window-1, t.sched.workers))
}

// streamCompleted is Stream for any kind of Future: start starts a request, future tells the
// Future of what it returned. Once the window is full, it pulls again when no more than refill
// are outstanding.
func streamCompleted[E any](ctx context.Context, reqs iter.Seq[*http.Request], window, refill int, start func(*http.Request) E, future func(E) *Future) iter.Seq[E] {
	return func(yield func(E) bool) {
		if reqs == nil || ctx.Err() != nil {
			return
		}
		w := &completions[E]{
			ch:  make(chan *Future, window), // one send from each Future outstanding
			out: make(map[*Future]E, window),
		}
		defer w.stop() // on every path: a break, a panic in reqs or in the loop body
	pull:
		for req := range reqs {
			e := start(req)
			f := future(e)
			w.out[f] = e
			f.notify(w.ch)
			if len(w.out) < window {
				// Yield what has resolved, without waiting.
				for more := true; more; {
					select {
					case f := <-w.ch:
						if !yield(w.take(f)) {
							return
						}
					default:
						more = false
					}
				}
			} else {
				// The window is full: yield as they resolve until it has room enough.
				for len(w.out) > refill {
					select {
					case f := <-w.ch:
						if !yield(w.take(f)) {
							return
						}
					case <-ctx.Done():
						break pull
					}
				}
			}
			if ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			w.cancel()
		}
		for len(w.out) > 0 {
			if !yield(w.take(<-w.ch)) {
				return
			}
		}
	}
}

// completions are the Futures of a stream in completion order that are outstanding.
type completions[E any] struct {
	ch  chan *Future  // each Future outstanding is sent on it once it resolves
	out map[*Future]E // the Futures started and not yet yielded, and what was started
}

// take returns what f was started as, and forgets it.
func (w *completions[E]) take(f *Future) E {
	e := w.out[f]
	delete(w.out, f)
	return e
}

// cancel cancels every Future outstanding.
func (w *completions[E]) cancel() {
	for f := range w.out {
		f.Cancel()
	}
}

// stop cancels every Future outstanding and waits until they have resolved.
func (w *completions[E]) stop() {
	w.cancel()
	for len(w.out) > 0 {
		delete(w.out, <-w.ch)
	}
}

// streamOrdered is StreamOrdered for any kind of Future.
func streamOrdered[E any](ctx context.Context, reqs iter.Seq[*http.Request], window int, start func(*http.Request) E, future func(E) *Future) iter.Seq[E] {
	return func(yield func(E) bool) {
		if reqs == nil || ctx.Err() != nil {
			return
		}
		r := &inOrder[E]{ring: make([]E, window), future: future}
		defer r.stop()
		for req := range reqs {
			r.push(start(req))
			// Yield the oldest while it has resolved, and wait for it while the window is full.
			for r.n > 0 {
				f := future(r.ring[r.head])
				if r.n < window {
					select {
					case <-f.Done():
					default:
						f = nil
					}
				} else {
					select {
					case <-f.Done():
					case <-ctx.Done():
						f = nil
					}
				}
				if f == nil {
					break
				}
				if !yield(r.pop()) {
					return
				}
			}
			if ctx.Err() != nil {
				break
			}
		}
		if ctx.Err() != nil {
			r.cancel()
		}
		for r.n > 0 {
			<-future(r.ring[r.head]).Done()
			if !yield(r.pop()) {
				return
			}
		}
	}
}

// inOrder are the Futures of a stream in pull order that are not yet yielded, oldest first, in a
// ring.
type inOrder[E any] struct {
	ring   []E
	head   int // the oldest
	n      int // how many the ring holds
	future func(E) *Future
}

func (r *inOrder[E]) push(e E) {
	r.ring[(r.head+r.n)%len(r.ring)] = e
	r.n++
}

func (r *inOrder[E]) pop() E {
	var zero E
	e := r.ring[r.head]
	r.ring[r.head] = zero // the stream keeps nothing it has yielded
	r.head = (r.head + 1) % len(r.ring)
	r.n--
	return e
}

// cancel cancels every Future not yet yielded.
func (r *inOrder[E]) cancel() {
	for i := range r.n {
		r.future(r.ring[(r.head+i)%len(r.ring)]).Cancel()
	}
}

// stop cancels every Future not yet yielded and waits until they have resolved.
func (r *inOrder[E]) stop() {
	r.cancel()
	for r.n > 0 {
		<-r.future(r.ring[r.head]).Done()
		r.pop()
	}
}
