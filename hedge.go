package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Hedged requests: a copy of a slow request sent while it runs, the first response kept.

// WithHedge makes a transport or session hedge its idempotent requests: if no response has come
// delay after a round trip was sent, a copy is sent, and another each delay after, up to max
// copies; the first response wins, and the other round trips are canceled, their bodies drained
// and closed. A zero delay means the host's recent latency at the percentile WithHedgePercentile
// sets (the 95th by default), once the host has answered enough requests to tell it.
//
// A copy is the round trip's request as it was sent: the request hooks do not run again for it.
// Only requests that may be sent twice are hedged: an idempotent method (GET, HEAD, OPTIONS,
// TRACE, PUT, DELETE) or an Idempotency-Key header, and a body that GetBody can replay. Streamed
// requests (WithStreaming, ContextWithStreaming, and RoundTrip) are not hedged. A copy is queued
// and paced like any request: it waits for the host's rate tokens and a slot, so hedging never
// exceeds a rate limit. Copies are bounded by the retry budget (WithRetry's, or the default
// RetryBudget if there is none) and counted in Stats.Hedges. A max of zero turns hedging off.
// It configures a transport or a session.
func WithHedge(delay time.Duration, max int) Option {
	nonNegative("WithHedge delay", int64(delay))
	nonNegative("WithHedge max", int64(max))
	return optionFunc(func(c *config) {
		c.hedgeDelay, c.hedgeMax = delay, max
	})
}

// WithHedgePercentile sets the percentile of a host's recent latency that WithHedge(0, max)
// waits before sending a copy, in (0, 100). The default is 95.
// It configures a transport or a session.
func WithHedgePercentile(p float64) Option {
	if !(p > 0 && p < 100) {
		panic(fmt.Sprintf("httpfutures: WithHedgePercentile: %v is not in (0, 100)", p))
	}
	return optionFunc(func(c *config) { c.hedgePercentile = p })
}

// The defaults of hedging.
const (
	defaultHedgePercentile = 95
	latencySamples         = 128 // the recent round trips a host's percentile is taken over
	minLatencySamples      = 20  // the round trips a host needs before its percentile is used
	maxLatencyHosts        = 1024
)

// errHedgeLost is the error of a copy whose request was answered first by another round trip.
var errHedgeLost = errors.New("httpfutures: another round trip of the request answered first")

// A hedger is a transport's hedging policy, with its budget and the recent latency of hosts.
type hedger struct {
	delay      time.Duration // zero: the host's latency at percentile
	max        int
	percentile float64
	budget     *retryBudget // the retry policy's, or own
	ownBudget  bool         // budget counts requests itself: there is no retry policy to count them

	mu    sync.Mutex
	hosts map[string]*latencies // guarded by mu; forgotten all at once past maxLatencyHosts
}

func newHedger(c *config, r *retrier) *hedger {
	hg := &hedger{delay: c.hedgeDelay, max: c.hedgeMax, percentile: c.hedgePercentile}
	if r != nil {
		hg.budget = &r.budget
	} else {
		hg.budget, hg.ownBudget = &retryBudget{}, true
		hg.budget.init(RetryBudget{}.withDefaults())
	}
	if hg.delay == 0 {
		hg.hosts = make(map[string]*latencies)
	}
	return hg
}

// latencies are a host's recent round trips, and their percentile.
type latencies struct {
	ring  [latencySamples]time.Duration
	n     int           // samples taken, all time
	at    time.Duration // the percentile, as of the sample it was last taken at
	fresh int           // n when at was taken
}

// hedges reports whether f's round trip req may be hedged.
func (hg *hedger) hedges(f *Future, req *http.Request) bool {
	return f.flags&(flagHedge|flagStream) == 0 && idempotent(req) && (!hasBody(req) || req.GetBody != nil)
}

// delayFor returns how long a round trip to the host named key goes before a copy is sent, and
// false if none is to be sent yet.
func (hg *hedger) delayFor(key string) (time.Duration, bool) {
	if hg.delay > 0 {
		return hg.delay, true
	}
	hg.mu.Lock()
	defer hg.mu.Unlock()
	l := hg.hosts[key]
	if l == nil || l.n < minLatencySamples {
		return 0, false
	}
	if l.n-l.fresh >= latencySamples/8 || l.at == 0 {
		sorted := slices.Clone(l.ring[:min(l.n, latencySamples)])
		slices.Sort(sorted)
		i := int(math.Ceil(hg.percentile/100*float64(len(sorted)))) - 1
		l.at, l.fresh = sorted[max(i, 0)], l.n
	}
	return l.at, true
}

// record adds a round trip to the host named key to its recent latency.
func (hg *hedger) record(key string, d time.Duration) {
	if hg.hosts == nil {
		return
	}
	hg.mu.Lock()
	defer hg.mu.Unlock()
	l := hg.hosts[key]
	if l == nil {
		if len(hg.hosts) >= maxLatencyHosts {
			clear(hg.hosts)
		}
		l = &latencies{}
		hg.hosts[key] = l
	}
	l.ring[l.n%latencySamples] = d
	l.n++
}

// A hedgeRace is one round trip and its copies: the first response wins.
type hedgeRace struct {
	mu     sync.Mutex
	done   bool           // a round trip won, or the first ended
	resp   *http.Response // the winning copy's response, its body in memory
	copies []*Future      // the copies queued
	cancel context.CancelFunc
	origin *Future // the Future whose round trip the copies race
}

// hedgeKey is the context key of the race a copy runs in.
type hedgeKey struct{}

// offer hands the response of a copy to the race, and reports whether it won.
func (r *hedgeRace) offer(resp *http.Response) bool {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return false
	}
	r.done, r.resp = true, resp
	r.mu.Unlock()
	r.cancel() // the first round trip
	return true
}

// end ends the race for the first round trip, and returns the winning copy's response, or nil
// if the first round trip won.
func (r *hedgeRace) end() *http.Response {
	r.mu.Lock()
	r.done = true
	resp := r.resp
	r.mu.Unlock()
	return resp
}

// over reports whether the race has ended.
func (r *hedgeRace) over() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// hedgedSend is send for a round trip that copies may race: it queues the copies, each delay
// after the one before, makes the round trip, and returns the first response.
func (t *AsyncTransport) hedgedSend(f *Future, h *host, req *http.Request) (*http.Response, error) {
	hg := t.hedge
	if hg.ownBudget {
		hg.budget.add(time.Now(), 1, 0)
	}
	delay, ok := hg.delayFor(h.key)
	if !ok {
		start := time.Now()
		resp, err := t.nextRoundTrip(req)
		if err == nil {
			hg.record(h.key, time.Since(start))
		}
		return resp, err
	}
	ctx, cancel := context.WithCancel(req.Context())
	r := &hedgeRace{cancel: cancel, origin: f}
	if err := t.hedgeCopies(f, req, r, delay); err != nil {
		// A GetBody panicked: the race ends before it began, with nothing sent.
		if won := r.end(); won != nil {
			discard(won, t.maxDrain())
		}
		for _, c := range r.copies {
			t.sched.cancel(c)
		}
		cancel()
		closeBody(req)
		panic(err)
	}
	start := time.Now()
	resp, err := t.nextRoundTrip(req.WithContext(ctx))
	won := r.end()
	for _, c := range r.copies {
		t.sched.cancel(c)
	}
	if won == nil {
		if err != nil {
			cancel()
			return nil, err
		}
		hg.record(h.key, time.Since(start))
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	if resp != nil {
		discard(resp, t.maxDrain())
	}
	cancel()
	won.Request = req
	return won, nil
}

// hedgeCopies queues the copies of req that race it, each delay after the one before, until
// one cannot be. It returns a *PanicError if a GetBody panicked, the copies queued before in
// r.copies.
func (t *AsyncTransport) hedgeCopies(f *Future, req *http.Request, r *hedgeRace, delay time.Duration) (err error) {
	defer recoverInto(&err)
	for i := 1; i <= t.hedge.max; i++ {
		c := t.hedgeCopy(f, req, r, time.Duration(i)*delay)
		if c == nil {
			break
		}
		r.copies = append(r.copies, c)
	}
	return nil
}

// hedgeCopy queues a copy of req, the round trip of f, to be sent after wait in race r. It
// returns nil if none could be queued.
func (t *AsyncTransport) hedgeCopy(f *Future, req *http.Request, r *hedgeRace, wait time.Duration) *Future {
	// A shallow copy: round trips only read the header, and hooks change a clone of their own.
	creq := req.WithContext(context.WithValue(req.Context(), hedgeKey{}, r))
	if hasBody(req) {
		body, err := req.GetBody()
		if err != nil {
			return nil
		}
		creq.Body = body
	}
	c := newFuture(t, creq)
	c.flags |= flagHedge
	c.opts = f.opts
	if err := t.sched.submitAfter(c, wait); err != nil {
		closeBody(creq)
		return nil
	}
	return c
}

// maxDrain is how much of a losing response's body is read before it is closed.
func (t *AsyncTransport) maxDrain() int64 {
	if t.retry != nil {
		return t.retry.MaxDrain
	}
	return defaultMaxDrain
}

// hedgeStart reports whether the copy f is to be sent: its race still runs, and the budget
// allows it, which it spends.
func (t *AsyncTransport) hedgeStart(f *Future) error {
	r, _ := f.req.Context().Value(hedgeKey{}).(*hedgeRace)
	if r == nil || r.over() {
		return errHedgeLost
	}
	if !t.hedge.budget.take(time.Now()) {
		return ErrRetryBudget
	}
	t.counts.hedges.Add(1)
	t.sched.counts.hedges.Add(1)
	if fn := t.sched.obs.Hedged; fn != nil {
		tell(fn, r.origin)
	}
	return nil
}

// endHedge ends the attempt of a copy: its response, read into memory, goes to its race if it
// is the first; otherwise it is drained and closed.
func (a *attempt) endHedge(resp *http.Response, err error, sentAt instant) outcome {
	t := a.t
	a.resp = nil // handed to the race, or closed here
	if err == nil {
		if err = readBody(resp, t.maxBody); err != nil {
			resp = nil // closed by readBody
		}
	}
	if err != nil {
		return a.fail(err)
	}
	t.hedge.record(a.f.host.key, time.Duration(t.sched.now()-sentAt))
	r, _ := a.f.req.Context().Value(hedgeKey{}).(*hedgeRace)
	if r == nil || !r.offer(resp) {
		a.resp = resp // to be closed by fail
	}
	return a.fail(errHedgeLost)
}

// cancelBody is a response body that ends its round trip's context when it is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Close closes the body and ends the context.
func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
