package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
)

// Errors a Future may resolve with, beside ErrClosed and ErrBodyTooLarge. Match them with
// errors.Is.
var (
	// ErrQueueFull is the error of a request submitted while the queue held as many requests as
	// WithQueueLimit allows.
	ErrQueueFull = errors.New("httpfutures: queue full")
	// ErrInvalidRequest is the error of a request that could not be sent as it is: nil, with no
	// URL or no host, or a bad URL given to a Session.
	ErrInvalidRequest = errors.New("httpfutures: invalid request")
)

// Stats are the counts of a transport, or of a Scheduler as a whole.
type Stats struct {
	Queued    int    // requests waiting to start
	InFlight  int    // requests started and not yet resolved
	Completed uint64 // Futures resolved with a response, of any status
	Failed    uint64 // Futures resolved with an error other than a cancellation or a refusal (Shed)
	Canceled  uint64 // Futures canceled, by Cancel, their context or Close (ErrClosed)
	Shed      uint64 // Futures refused before they were sent (or sent again) where waiting could not help: a full queue, an open circuit, a throttle, a deadline before the host may send
	Retries   uint64 // attempts sent again after a failure (WithRetry)
	Redirects uint64 // redirects a Session followed, each a round trip of the request it is part of
	Hedges    uint64 // copies of slow requests sent (WithHedge)
	Hosts     int    // hosts the Scheduler keeps state for
	Paused    int    // hosts paused by the server's Retry-After or RateLimit fields

	// Bodies is how many streamed response bodies are open: each holds its request's worker slot
	// and host slot until it is closed or read to the end, or its request's context ends.
	Bodies int
	// LeakedBodies counts the streamed bodies that were garbage collected unclosed: their slots
	// came back only then. A client that drops bodies unread shows here.
	LeakedBodies uint64
	// Goroutines is how many goroutines the Scheduler runs: its workers and its pacer while it
	// has work, none once it has been idle for WithWorkerIdleTimeout.
	Goroutines int
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
// documentation). The zero AsyncTransport is ready to use, as NewTransport(nil) makes it. An
// AsyncTransport is safe for concurrent use; Close it when done.
type AsyncTransport struct {
	once sync.Once // runs setup: by NewTransport, or at the first use of a zero AsyncTransport

	// Set by setup, read-only after.
	next     http.RoundTripper
	ownNext  *http.Transport // the transport setup made, whose idle connections Close closes
	sched    *Scheduler
	ownSched bool // setup made sched, and Close closes it
	hooks    []Hooks
	maxBody  int64
	stream   bool
	client   *http.Client // a Session's: the client whose Do runs its requests in a worker
	retry    *retrier     // nil: no retries
	hedge    *hedger      // nil: no hedged requests

	counts counters // the outcomes of its requests, atomic
	tally  tally    // its requests in the Scheduler: the Scheduler's record, guarded by sched.mu
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
	t := &AsyncTransport{}
	t.once.Do(func() { t.setup(next, c) })
	return t
}

// init sets up a zero AsyncTransport with the defaults.
func (t *AsyncTransport) init() {
	t.once.Do(func() { t.setup(nil, newConfig(nil)) })
}

func (t *AsyncTransport) setup(next http.RoundTripper, c *config) {
	t.next, t.sched = next, c.scheduler
	t.maxBody, t.stream = c.maxBodySize, c.stream
	if t.sched == nil {
		t.sched, t.ownSched = &Scheduler{}, true
		t.sched.init(c)
	} else {
		t.sched.init(nil)
	}
	t.sched.register(t)
	if c.retry != nil {
		t.retry = newRetrier(*c.retry)
	}
	if c.hedgeMax > 0 {
		t.hedge = newHedger(c, t.retry)
	}
	if c.hooks.Request != nil || c.hooks.Response != nil {
		t.hooks = []Hooks{c.hooks}
	}
	if next == nil || next == http.DefaultTransport {
		t.ownNext = pooledTransport(t.sched.workers)
		t.next = t.ownNext
	}
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
	t.init()
	return t.startFunc(req, nil)
}

// RoundTrip implements http.RoundTripper: it queues req like StartRoundTrip, then waits for the
// response headers. The body streams: read and close it, as with any RoundTripper; until then the
// request keeps its worker slot and host slot. If req's context ends first, the body is closed
// and the slots come back at once; a body dropped unclosed gives them back when the garbage
// collector finds it, and counts in Stats.LeakedBodies.
func (t *AsyncTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.init()
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
		f.failEarly(err)
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

// Close stops the transport at once, as http.Server's Close does: queued requests fail with
// ErrClosed without being sent, running ones are canceled and fail with an error matching
// ErrClosed and context.Canceled, and new ones fail with ErrClosed. It returns once the round
// trips it canceled have returned; response bodies already handed to callers stay readable. If
// the transport has a Scheduler of its own, Close stops it too, and returns when all its
// goroutines have. To let requests finish, use Shutdown.
func (t *AsyncTransport) Close() error {
	t.init()
	<-t.sched.stopTransport(t, true)
	return t.closeOwned()
}

// Shutdown stops the transport gracefully, as http.Server's Shutdown does: new requests fail
// with ErrClosed, and queued and running ones go on until all have resolved. If ctx ends first,
// Shutdown does what Close does, and returns ctx.Err() once the canceled requests have ended;
// if every request had resolved by then, it returns nil.
func (t *AsyncTransport) Shutdown(ctx context.Context) error {
	t.init()
	var err error
	drained := t.sched.stopTransport(t, false)
	select {
	case <-drained: // drained already: ctx did not end first, whatever its state
	default:
		select {
		case <-drained:
		case <-ctx.Done():
			if t.sched.settled(t) {
				<-drained // every request has resolved: the workers are ending their attempts
				break
			}
			err = ctx.Err()
			<-t.sched.stopTransport(t, true)
		}
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

// count counts the outcome of one of its Futures, in its Stats and its Scheduler's.
func (t *AsyncTransport) count(err error) {
	t.counts.count(err)
	t.sched.counts.count(err)
}

// countBodies counts streamed bodies made (+1) or ended (-1).
func (t *AsyncTransport) countBodies(n int64) {
	t.counts.bodies.Add(n)
	t.sched.counts.bodies.Add(n)
}

// countLeak counts a streamed body collected unclosed, which held its slots until then.
func (t *AsyncTransport) countLeak() {
	t.counts.leaked.Add(1)
	t.sched.counts.leaked.Add(1)
}

// countRetry counts an attempt to be sent again.
func (t *AsyncTransport) countRetry() {
	t.counts.retries.Add(1)
	t.sched.counts.retries.Add(1)
}

// countRedirect counts a redirect followed.
func (t *AsyncTransport) countRedirect() {
	t.counts.redirects.Add(1)
	t.sched.counts.redirects.Add(1)
}

// Stats returns the counts of the transport's own requests, and the Scheduler's hosts.
func (t *AsyncTransport) Stats() Stats {
	t.init()
	st := t.sched.transportStats(t)
	t.counts.fill(&st)
	return st
}

// HostStats returns the state of one host in the transport's Scheduler; see Scheduler.HostStats.
func (t *AsyncTransport) HostStats(host string) HostStats {
	t.init()
	return t.sched.HostStats(host)
}

// Scheduler returns the Scheduler that runs the transport's requests.
func (t *AsyncTransport) Scheduler() *Scheduler {
	t.init()
	return t.sched
}

// CloseIdleConnections closes the idle connections of the next RoundTripper, if it has such a
// method.
func (t *AsyncTransport) CloseIdleConnections() {
	t.init()
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
