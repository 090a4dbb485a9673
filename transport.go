package httpfutures

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Errors a Future may resolve with. Match them with errors.Is.
var (
	// ErrClosed: the transport or its Scheduler was closed before the request was sent.
	ErrClosed = errors.New("httpfutures: closed")
	// ErrQueueFull: the queue held as many requests as WithQueueLimit allows.
	ErrQueueFull = errors.New("httpfutures: queue full")
	// ErrBodyTooLarge: the response body was larger than WithMaxBodySize allows.
	ErrBodyTooLarge = errors.New("httpfutures: response body too large")
	// ErrInvalidRequest: the request could not be sent as it is (nil, no URL, no host).
	ErrInvalidRequest = errors.New("httpfutures: invalid request")
)

// Stats are the counts of a transport, or of a Scheduler as a whole.
type Stats struct {
	Queued    int    // requests waiting to start
	InFlight  int    // requests started and not yet resolved (for a Scheduler: slots taken)
	Completed uint64 // Futures resolved with a response, of any status
	Failed    uint64 // Futures resolved with an error other than a cancellation
	Canceled  uint64 // Futures canceled, by Cancel, their context or Close (ErrClosed)
	Retries   uint64 // attempts sent again after a failure (WithRetry)
	Hosts     int    // hosts the Scheduler keeps state for
	Paused    int    // hosts paused by the server's Retry-After or RateLimit fields
}

// An AsyncTransport is an http.RoundTripper that runs round trips on a Scheduler: queued per
// host, paced, limited and fair. StartRoundTrip returns a Future at once; RoundTrip is the same,
// waited for, so an http.Client gains the limits by using an AsyncTransport as its Transport.
//
// It keeps the RoundTripper contract of net/http: the request is never modified, its body is
// closed exactly once on every path, and a round trip yields a response or an error, never both;
// a non-2xx response is not an error.
//
// Each request costs about a microsecond of scheduling and two allocations (see the package
// documentation). An AsyncTransport is safe for concurrent use; Close it when done.
type AsyncTransport struct {
	next      http.RoundTripper
	ownNext   *http.Transport // the transport NewTransport made, closed by Close
	sched     *Scheduler
	ownSched  bool
	hooks     []Hooks
	maxBody   int64
	stream    bool
	client    *http.Client  // a Session's: the client whose Do runs its requests in a worker
	retry     *retrier      // nil: no retries
	drained   chan struct{} // closed once closing and nothing is queued or running
	completed atomic.Uint64
	failed    atomic.Uint64
	canceled  atomic.Uint64
	retries   atomic.Uint64

	// Guarded by sched.mu.
	closing       bool
	drainedClosed bool
	queued        int
	inflight      int
	aborting      int  // taken out of the queue and not yet resolved
	closeNow      bool // Close, or a Shutdown whose context ended: retries end too
}

// NewTransport returns an AsyncTransport that sends requests with next. If next is nil or
// http.DefaultTransport, it uses a clone of http.DefaultTransport whose idle pool is sized to
// the workers (the default keeps two idle connections per host, and churns connections under a
// fan-out). Unless WithScheduler is given, the transport has a Scheduler of its own, configured
// by opts.
func NewTransport(next http.RoundTripper, opts ...Option) *AsyncTransport {
	return newTransport(next, newConfig(opts))
}

func newTransport(next http.RoundTripper, c *config) *AsyncTransport {
	t := &AsyncTransport{
		next:    next,
		sched:   c.scheduler,
		maxBody: c.maxBodySize,
		stream:  c.stream,
		drained: make(chan struct{}),
	}
	if t.sched == nil {
		t.sched, t.ownSched = newScheduler(c), true
	}
	if c.retry != nil {
		t.retry = newRetrier(*c.retry)
	}
	if c.hooks.Request != nil || c.hooks.Response != nil {
		t.hooks = []Hooks{c.hooks}
	}
	if next == nil || next == http.DefaultTransport {
		t.ownNext = pooledTransport(t.sched.workers)
		t.next = t.ownNext
	}
	return t
}

// pooledTransport clones http.DefaultTransport and keeps as many idle connections per host as
// there are workers, so that a fan-out reuses its connections.
func pooledTransport(workers int) *http.Transport {
	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		base = &http.Transport{}
	}
	tr := base.Clone()
	tr.MaxIdleConnsPerHost = max(workers, http.DefaultMaxIdleConnsPerHost)
	tr.MaxIdleConns = max(tr.MaxIdleConns, workers)
	return tr
}

// StartRoundTrip queues req and returns its Future at once. It never blocks and never returns
// nil: an invalid request, a full queue or a closed transport resolve the Future with an error.
func (t *AsyncTransport) StartRoundTrip(req *http.Request) *Future {
	return t.startFunc(req, nil)
}

// RoundTrip implements http.RoundTripper: it queues req like StartRoundTrip, then waits for the
// response headers. The body streams: read and close it, as with any RoundTripper; until then the
// request keeps its worker slot and host slot.
func (t *AsyncTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.startFunc(req, streamFuture).Result()
}

func streamFuture(f *Future) { f.flags |= flagStream }

// startFunc queues req; setup, if not nil, adjusts the Future before it is queued.
func (t *AsyncTransport) startFunc(req *http.Request, setup func(*Future)) *Future {
	if err := validate(req); err != nil {
		closeBody(req)
		return failedFuture(t, req, err)
	}
	return t.start(newFuture(t, req), setup)
}

// start queues f, whose request is valid.
func (t *AsyncTransport) start(f *Future, setup func(*Future)) *Future {
	req := f.req
	if !f.is(flagOwnCtx) {
		f.opts = optionsFrom(req.Context())
	}
	if t.stream || (f.opts != nil && f.opts.stream) {
		f.flags |= flagStream
	}
	if setup != nil {
		setup(f)
	}
	if err := t.sched.submit(f); err != nil {
		closeBody(req)
		f.state.Store(stateDone)
		f.finish(nil, err)
	}
	return f
}

func validate(req *http.Request) error {
	switch {
	case req == nil:
		return fmt.Errorf("%w: nil request", ErrInvalidRequest)
	case req.URL == nil:
		return fmt.Errorf("%w: nil URL", ErrInvalidRequest)
	case req.URL.Host == "" && (req.URL.Scheme == "" || req.URL.Scheme == "http" || req.URL.Scheme == "https"):
		return fmt.Errorf("%w: no host in URL %q", ErrInvalidRequest, req.URL.String())
	}
	return nil
}

func closeBody(req *http.Request) {
	if req != nil && req.Body != nil {
		req.Body.Close()
	}
}

// Close stops the transport: queued requests fail with ErrClosed without being sent, new ones
// fail with ErrClosed, and running ones finish; Close returns when they have. If the transport
// has a Scheduler of its own, Close stops it too, and returns when all its goroutines have.
func (t *AsyncTransport) Close() error {
	s := t.sched
	s.mu.Lock()
	t.closing, t.closeNow = true, true
	failed := t.dequeueAllLocked()
	t.checkDrainedLocked()
	s.mu.Unlock()
	s.abortAll(failed, ErrClosed)
	<-t.drained
	return t.closeOwned()
}

// Shutdown stops the transport gracefully: new requests fail with ErrClosed, and queued and
// running ones go on until all have resolved. If ctx ends first, Shutdown closes the transport
// as Close does, cancels the requests still running, and returns ctx.Err() once they end.
func (t *AsyncTransport) Shutdown(ctx context.Context) error {
	s := t.sched
	s.mu.Lock()
	t.closing = true
	t.checkDrainedLocked()
	s.mu.Unlock()
	var err error
	select {
	case <-t.drained:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		t.closeNow = true
		failed := t.dequeueAllLocked()
		running := s.runningLocked(t, nil)
		t.checkDrainedLocked()
		s.mu.Unlock()
		s.abortAll(failed, ErrClosed)
		for _, f := range running {
			s.cancel(f, context.Canceled)
		}
		<-t.drained
	}
	if cerr := t.closeOwned(); err == nil {
		err = cerr
	}
	return err
}

func (t *AsyncTransport) closeOwned() error {
	var err error
	if t.ownSched {
		err = t.sched.Close()
	}
	if t.ownNext != nil {
		t.ownNext.CloseIdleConnections()
	}
	return err
}

// dequeueAllLocked takes the transport's queued requests out of their queues. It requires
// sched.mu held.
func (t *AsyncTransport) dequeueAllLocked() []*Future {
	var out []*Future
	if t.queued == 0 {
		return nil
	}
	var all []*Future
	for _, h := range t.sched.hosts {
		all = h.queue.appendAll(all)
	}
	all = append(all, t.sched.delayed.items...)
	for _, f := range all {
		if f.t == t && !f.is(flagHop) { // a hop is part of a running request, which finishes
			t.sched.dequeueLocked(f)
			out = append(out, f)
		}
	}
	return out
}

// checkDrainedLocked closes drained once the transport is closing and idle.
func (t *AsyncTransport) checkDrainedLocked() {
	if t.closing && !t.drainedClosed && t.queued == 0 && t.inflight == 0 && t.aborting == 0 {
		t.drainedClosed = true
		close(t.drained)
	}
}

// doneLocked ends the accounting of a Future that ran. It requires sched.mu held.
func (t *AsyncTransport) doneLocked() {
	t.inflight--
	t.checkDrainedLocked()
}

func (t *AsyncTransport) count(err error) {
	switch {
	case err == nil:
		t.completed.Add(1)
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed):
		t.canceled.Add(1)
	default:
		t.failed.Add(1)
	}
}

// Stats returns the counts of the transport's own requests, and the Scheduler's hosts.
func (t *AsyncTransport) Stats() Stats {
	s := t.sched
	s.mu.Lock()
	st := Stats{Queued: t.queued, InFlight: t.inflight, Hosts: len(s.hosts), Paused: s.pausedLocked(time.Now())}
	s.mu.Unlock()
	st.Completed, st.Failed, st.Canceled = t.completed.Load(), t.failed.Load(), t.canceled.Load()
	st.Retries = t.retries.Load()
	return st
}

// HostStats returns the state of one host in the transport's Scheduler.
func (t *AsyncTransport) HostStats(host string) HostStats { return t.sched.HostStats(host) }

// Scheduler returns the Scheduler that runs the transport's requests.
func (t *AsyncTransport) Scheduler() *Scheduler { return t.sched }

// CloseIdleConnections closes the idle connections of the next RoundTripper, if it has such a
// method.
func (t *AsyncTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// run performs an attempt of f in a worker, and resolves f unless the attempt is to be tried
// again (f.again). It reports whether a streamed body now holds f's slots, to give them back
// when it is closed.
func (t *AsyncTransport) run(f *Future) (bodyHolds bool) {
	parent := (*runCtx)(f).parent() // the request's context, or none for a Session's own
	if err := parent.Err(); err != nil {
		f.closePendingBody()
		f.resolve(nil, err)
		return false
	}
	if f.started.Load() == 0 {
		f.started.Store(int64(t.sched.now()))
	}
	ctx, cancel, own := t.attemptContext(f, parent)
	if own {
		// Cancel cancels runCtx whenever it comes: nothing to publish, nothing to release.
		cancel = func() {}
	} else {
		f.mu.Lock()
		f.cancelRun = cancel
		f.mu.Unlock()
		if f.state.Load() == stateCanceling { // Cancel came before it could see cancelRun
			cancel()
		}
	}

	hooks := t.hooks
	var reqHooks []Hooks
	var decode func(*http.Response) error
	if f.opts != nil {
		reqHooks, decode = f.opts.hooks, f.opts.decode
	}
	if f.is(flagHop) {
		hooks = nil // a redirect of a Session request: the hooks are for the request as a whole
	}
	hooked := hasRequestHook(hooks) || hasRequestHook(reqHooks)
	var req *http.Request
	switch {
	case hooked || f.is(flagClient) && t.client.Jar != nil:
		// The hooks may change the request, and http.Client adds the jar's cookies to the one it
		// is given: they change a copy, and the caller's request stays as it was.
		req = f.req.Clone(ctx)
	case ctx == f.req.Context():
		req = f.req // a Session's own request, made with the Future's context
	default:
		req = f.req.WithContext(ctx)
	}
	if f.retry != nil && f.retry.nextBody != nil { // a retry: the body again, from GetBody
		req.Body, f.retry.nextBody = f.retry.nextBody, nil
	}
	if hooked {
		err := runRequestHooks(req, hooks...)
		if err == nil {
			err = runRequestHooks(req, reqHooks...)
		}
		if err != nil {
			cancel()
			closeBody(req)
			f.resolve(nil, err)
			return false
		}
	}

	var resp *http.Response
	var err error
	f.attempts.Add(1)
	if f.is(flagClient) {
		resp, err = t.client.Do(req)
	} else {
		resp, err = t.send(f, req)
	}
	if t.retry != nil && !f.is(flagHop) {
		var wait time.Duration
		resp, err, wait, f.again = t.retry.after(t, f, parent, resp, err)
		if f.again {
			f.retryState().wait = wait
			cancel()
			return false
		}
	}
	if err != nil {
		cancel()
		f.resolve(nil, err)
		return false
	}
	if !f.is(flagClient) {
		resp.Request = f.req
	}

	if f.is(flagStream) {
		resp.Body = &streamBody{ReadCloser: resp.Body, f: f, cancel: cancel}
		bodyHolds = !f.detached
	} else {
		err = readBody(resp, t.maxBody)
		cancel()
		if err != nil {
			f.resolve(nil, err)
			return false
		}
	}
	if len(hooks) > 0 || len(reqHooks) > 0 || decode != nil {
		err := runResponseHooks(resp, hooks...)
		if err == nil {
			err = runResponseHooks(resp, reqHooks...)
		}
		if err == nil && decode != nil {
			err = runResponseHooks(resp, Hooks{Response: decode})
		}
		if err != nil {
			resp.Body.Close()
			f.resolve(nil, err)
			return false
		}
		if b, ok := resp.Body.(*memBody); ok {
			b.Seek(0, io.SeekStart) // the caller reads the body from the start
		}
	}
	f.resolve(resp, nil)
	return bodyHolds
}

// attemptContext returns the context an attempt of f runs under and the function that cancels
// it. The first attempt of a request whose context can never end runs under the Future's runCtx,
// which costs nothing and which Cancel cancels (own is true, cancel nil); other attempts under a
// child of parent, with AttemptTimeout if set. A Session request's context carries its Future.
func (t *AsyncTransport) attemptContext(f *Future, parent context.Context) (ctx context.Context, cancel context.CancelFunc, own bool) {
	timeout := time.Duration(0)
	if t.retry != nil && !f.is(flagHop) {
		timeout = t.retry.AttemptTimeout
	}
	if timeout == 0 && f.attempts.Load() == 0 && parent.Done() == nil {
		return (*runCtx)(f), nil, true
	}
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(parent, timeout)
	} else {
		ctx, cancel = context.WithCancel(parent)
	}
	if f.is(flagClient) {
		ctx = context.WithValue(ctx, futureKey{}, f)
	}
	return ctx, cancel, false
}

func hasRequestHook(hooks []Hooks) bool {
	for _, h := range hooks {
		if h.Request != nil {
			return true
		}
	}
	return false
}

// send is one round trip on the next RoundTripper, with the backpressure its response asks for.
func (t *AsyncTransport) send(f *Future, req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if s := t.sched; s.backpressure && asksBackpressure(resp) {
		now := time.Now()
		s.mu.Lock()
		s.observeLocked(f.host, resp, now)
		bp := s.backpressureLocked(f.host, now)
		s.mu.Unlock()
		s.shareBackpressure(f.host.key, bp)
	}
	return resp, nil
}

// resolve resolves a running Future, or with context.Canceled if it was canceled meanwhile.
func (f *Future) resolve(resp *http.Response, err error) {
	if !f.state.CompareAndSwap(stateRunning, stateDone) {
		f.state.Store(stateDone)
		if resp != nil {
			resp.Body.Close()
		}
		resp, err = nil, context.Canceled
	}
	f.finish(resp, err)
}

// readBody reads the whole body into memory, at most max bytes, and closes it.
func readBody(resp *http.Response, max int64) error {
	body := resp.Body
	if _, read := body.(*memBody); read || body == http.NoBody {
		return nil
	}
	defer body.Close()
	if resp.ContentLength > max {
		return fmt.Errorf("%w: Content-Length %d is over the limit of %d bytes (raise WithMaxBodySize, or stream the body)", ErrBodyTooLarge, resp.ContentLength, max)
	}
	size := int64(512)
	if resp.ContentLength >= 0 {
		size = resp.ContentLength + 1 // room to read the EOF without growing
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return fmt.Errorf("%w: over the limit of %d bytes (raise WithMaxBodySize, or stream the body)", ErrBodyTooLarge, max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &bodyReadError{err}
		}
	}
	if len(buf) == 0 {
		resp.Body = http.NoBody
		return nil
	}
	resp.Body = &memBody{Reader: *bytes.NewReader(buf)}
	return nil
}

// bodyReadError is the error of a response whose body could not be read whole: a connection
// reset or a truncated body.
type bodyReadError struct{ err error }

// Error tells what the read failed with.
func (e *bodyReadError) Error() string { return "httpfutures: reading response body: " + e.err.Error() }

// Unwrap returns the read's error.
func (e *bodyReadError) Unwrap() error { return e.err }

// memBody is a response body read into memory.
type memBody struct{ bytes.Reader }

// Close does nothing: the connection was released when the body was read.
func (*memBody) Close() error { return nil }

// streamBody is a streamed response body that gives back its request's slots and context when it
// is closed or read to the end.
type streamBody struct {
	io.ReadCloser
	f      *Future
	cancel context.CancelFunc
	done   atomic.Bool
}

// Read reads the body, giving back the slots at its end.
func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.release()
	}
	return n, err
}

// Close closes the body and gives back the slots.
func (b *streamBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

func (b *streamBody) release() {
	if b.done.CompareAndSwap(false, true) {
		b.f.t.sched.releaseSlot(b.f)
		b.cancel()
	}
}
