package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

// How far ahead of its scheduled time the open model submits a request: at most maxLead, and at
// most maxAhead requests, so that memory stays bounded however long the run. The schedule, a
// Limiter of the transport, not the feeder's timers, decides when each request leaves.
const (
	maxLead  = 100 * time.Millisecond
	maxAhead = 1000
	minNap   = time.Millisecond
)

// pending is a submitted request on its way to a collector.
type pending struct {
	f *httpfutures.Future
	i int // its index in the open model's schedule; -1 in the closed model
}

// attacker sends the requests of one run and records their results. Each model has its own
// loop; both submit with StartRoundTrip (which never blocks) and read the times from the
// Future's Timing, so no goroutine is started per request.
//
// Closed model (no -rate): -c users, each a goroutine that submits a request, waits for its
// Future and records it, like hey's workers. With as many users as transport workers, a request
// always finds a free worker, so its time in the queue is only the hand-over, and latency from
// queueing is in effect latency from sending. A single feeder that kept the queue topped up
// instead would either leave workers idle between requests (no request queued in advance) or
// make some requests wait a whole response time in the queue (requests queued in advance),
// which doubles their latency against a slow server.
//
// Open model (-rate): request i is due at t0+i/rate, t0 being when the first request could
// leave. The transport is built with a schedule as its Limiter (see schedule) and no queue
// limit: the same timetable decides when each request leaves and is what its latency is
// measured from, so the two cannot drift apart. One feeder goroutine submits each request a
// little ahead of its due time (at most maxLead, at most maxAhead requests), so the schedule
// always has the next one at hand, and passes the Future, in submission order, on a buffered
// channel to a fixed set of collectors, one per worker. A collector waits for its Future's Done
// channel and records the result; completion order does not matter since latencies come from
// the Timing and the due time. With one collector per worker, a slow response holds up only its
// own collector. If the server stalls, the queue stops draining and the feeder waits, but
// request i keeps its due time: the stall shows in the latencies of every request that fell due
// during it (no coordinated omission). Once workers are free again, the requests already due
// leave at once, as in wrk2 and vegeta, and the schedule goes on from t0: a stall, or a slow
// start, shows in the latencies of the requests it delayed, not as an offset in all of the
// ones that follow.
type attacker struct {
	cfg     *config
	tr      *httpfutures.AsyncTransport
	base    http.RoundTripper // under the timeouts
	reqs    []*http.Request   // one template per target, cycled through
	reqCtx  context.Context   // the context of every request; canceled to abandon in-flight ones
	abandon context.CancelFunc
	m       *metrics

	collectors sync.WaitGroup // open model
	sched      *schedule      // open model: when request i is due
}

func newAttacker(cfg *config, targets []string) (*attacker, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = 0 // no overall bound; per host, one per worker
	base.MaxIdleConnsPerHost = cfg.workers
	return newAttackerOn(cfg, targets, base)
}

// newAttackerOn is newAttacker with the round trips made by base.
func newAttackerOn(cfg *config, targets []string, base http.RoundTripper) (*attacker, error) {
	opts := []httpfutures.Option{
		httpfutures.WithWorkers(cfg.workers),
		httpfutures.WithQueueLimit(0), // no bound: the users or the feeder bound the queue
		httpfutures.WithBackpressure(cfg.honorWait),
	}
	var sched *schedule
	if cfg.rate > 0 {
		sched = newSchedule(cfg.rate)
		opts = append(opts, httpfutures.WithLimiter(sched))
	}
	if cfg.hostRate > 0 {
		opts = append(opts, httpfutures.WithHostRateLimit(rate.Limit(cfg.hostRate), 1))
	}
	opts = append(opts, cfg.shared.options()...)

	reqCtx, abandon := context.WithCancel(context.Background())
	a := &attacker{
		cfg:     cfg,
		base:    base,
		reqCtx:  reqCtx,
		abandon: abandon,
		m:       newMetrics(),
		sched:   sched,
	}
	for _, t := range targets {
		req, err := http.NewRequestWithContext(reqCtx, cfg.method, t, nil)
		if err != nil {
			abandon()
			return nil, err
		}
		req.Header = cfg.header.Clone()
		if cfg.host != "" {
			req.Host = cfg.host
		}
		a.reqs = append(a.reqs, req)
	}
	a.tr = httpfutures.NewTransport(&timeoutTransport{next: base, timeout: cfg.timeout}, opts...)
	return a, nil
}

// newRequest returns the i-th request: a copy of a template with its own replayable body.
func (a *attacker) newRequest(i int) *http.Request {
	req := a.reqs[i%len(a.reqs)].Clone(a.reqCtx)
	switch body := a.cfg.body; {
	case body == nil:
	case len(body) == 0: // an explicit empty body: Content-Length: 0, not chunked
		req.ContentLength = 0
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	default:
		// The same bytes for every request, and again on a retry of the connection (GetBody).
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req
}

// run sends requests until -n or -duration is reached or ctx ends, waits for the outstanding
// ones and returns the report. Each request is bounded by -timeout from when it is sent, and
// the transport's Shutdown by -timeout plus a second, after which what is left is abandoned.
func (a *attacker) run(ctx context.Context, progress io.Writer) *report {
	defer a.abandon()
	if c, ok := a.base.(interface{ CloseIdleConnections() }); ok {
		defer c.CloseIdleConnections()
	}

	stopProgress := startProgress(progress, a.m, a.tr)
	defer stopProgress()

	if a.cfg.rate > 0 {
		a.runOpen(ctx)
	} else {
		a.runClosed(ctx)
	}
	interrupted := ctx.Err() != nil

	// Let what is queued and in flight finish; past the grace period, abandon it.
	grace := a.cfg.timeout + time.Second
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	if err := a.tr.Shutdown(sctx); err != nil {
		a.abandon()
	}
	cancel()
	_ = a.tr.Close()
	a.collectors.Wait()

	r := a.m.report(a.cfg.rate)
	r.Interrupted = interrupted
	return r
}

// runClosed runs -c users until -n requests were sent, -duration passed or ctx ended, and each
// user has recorded its last request.
func (a *attacker) runClosed(ctx context.Context) {
	if a.cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.cfg.duration)
		defer cancel()
	}
	var next atomic.Int64 // the index of the next request, shared by the users
	var users sync.WaitGroup
	for range a.cfg.workers {
		users.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if a.cfg.requests > 0 && i >= int64(a.cfg.requests) {
					return
				}
				f := a.tr.StartRoundTrip(a.newRequest(int(i)))
				<-f.Done()
				a.record(pending{f: f, i: -1})
			}
		})
	}
	users.Wait()
}

// runOpen starts the collectors and runs the feeder until -n or -duration is reached or ctx
// ends. The collectors go on recording until the requests still queued or in flight are done;
// run waits for them after the transport's Shutdown.
func (a *attacker) runOpen(ctx context.Context) {
	// Room for the queue, the requests in flight and as many finished ones waiting for a
	// collector, so that the feeder seldom waits for the collectors.
	out := make(chan pending, maxAhead+2*a.cfg.workers)
	for range a.cfg.workers {
		a.collectors.Go(func() { a.collect(out) })
	}
	a.feedOpen(ctx, out)
	close(out)
}

// feedOpen submits request i, due at start+i/rate, once it is within the lead time and the
// queue has room. It wakes at most every nap to top the queue up.
func (a *attacker) feedOpen(ctx context.Context, out chan<- pending) {
	interval := a.sched.interval
	lead := min(maxLead, time.Duration(maxAhead*interval))
	maxQueued := max(1, int(math.Ceil(float64(lead)/interval)))
	nap := max(lead/4, minNap)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// The feeder's own timetable starts now, a little before the schedule's t0 (the first
	// request's admission): requests are submitted ahead of their due time, never behind it.
	start := time.Now()
	var end time.Time
	if a.cfg.duration > 0 {
		end = start.Add(a.cfg.duration)
	}
	for i := 0; ; {
		room := maxQueued - a.tr.Stats().Queued
		horizon := time.Now().Add(lead)
		var due time.Time
		for {
			if a.cfg.requests > 0 && i >= a.cfg.requests {
				return
			}
			due = start.Add(time.Duration(float64(i) * interval))
			if !end.IsZero() && !due.Before(end) {
				return
			}
			if room <= 0 || due.After(horizon) {
				break
			}
			f := a.tr.StartRoundTrip(a.newRequest(i))
			out <- pending{f: f, i: i}
			i++
			room--
		}
		wait := nap
		if room > 0 { // not held back by the queue: sleep until the next one is within the lead
			wait = max(time.Until(due.Add(-lead)), nap)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
	}
}

func (a *attacker) collect(in <-chan pending) {
	for p := range in {
		<-p.f.Done()
		a.record(p)
	}
}

func (a *attacker) record(p pending) {
	resp, err := p.f.Result()
	tm := p.f.Timing()
	if tm.Started.IsZero() {
		// Never sent: it was still queued when the transport closed, or was abandoned there.
		if resp != nil {
			resp.Body.Close()
		}
		a.m.addNotStarted()
		return
	}
	from := tm.Queued
	if p.i >= 0 {
		// From the scheduled time; from the real start should it ever have gone earlier, so that
		// a latency is never shorter than its round trip.
		from = tm.Started
		if due, ok := a.sched.due(p.i); ok && due.Before(from) {
			from = due
		}
	}
	r := result{
		sent:     tm.Started,
		latency:  tm.Finished.Sub(from),
		end:      tm.Finished,
		bytesOut: int64(len(a.cfg.body)),
		err:      err,
	}
	if err == nil {
		// The body was read into memory by the worker before the Future resolved; this copy
		// only counts it.
		n, rerr := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.code, r.bytesIn = resp.StatusCode, n
		if rerr != nil { // cannot happen with an in-memory body; count it if it does
			r.code, r.err = 0, rerr
		}
	}
	a.m.add(r)
}

// schedule is the open model's timetable, and the Limiter that holds the transport to it: the
// k-th token is due at t0 + k*interval, t0 being when the first was asked for, that is when the
// first request could leave (the program's own start-up is not counted as latency). A token
// that has come due is handed out at once however late it is asked for, so the schedule never
// restarts, and request i, being the i-th to reach the Limiter (one host, and requests to a host
// leave in the order submitted), leaves at due(i) or as soon as a worker is free after it.
//
// A rate limiter of the transport would not do: it keeps its grid only while requests queue on
// it, and restarts it from the time of asking when the previous token was free at once, or
// after all the workers were busy for a while. Early in a run, while the workers are started
// and the first connections dialed, a worker may ask more than one interval after the last one
// did; each such restart moves the whole rest of the run later by a few milliseconds against a
// timetable anchored at the first request, which then shows as an offset in every latency.
type schedule struct {
	interval float64 // nanoseconds

	mu sync.Mutex
	n  int // tokens handed out; guarded by mu
	t0 atomic.Pointer[time.Time]
}

func newSchedule(r float64) *schedule {
	return &schedule{interval: float64(time.Second) / r}
}

// Reserve implements httpfutures.Limiter: it hands out the next token of the schedule.
func (s *schedule) Reserve(_ context.Context, _ string, now time.Time) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t0 := s.t0.Load()
	if t0 == nil {
		t0 = &now
		s.t0.Store(t0)
	}
	due := s.at(*t0, s.n)
	s.n++
	return due, nil
}

// due returns when request i is due, and false if no request was let go yet (t0 is unknown).
func (s *schedule) due(i int) (time.Time, bool) {
	t0 := s.t0.Load()
	if t0 == nil {
		return time.Time{}, false
	}
	return s.at(*t0, i), true
}

func (s *schedule) at(t0 time.Time, i int) time.Time {
	return t0.Add(time.Duration(float64(i) * s.interval))
}

// timeoutTransport bounds each round trip, body read included, by timeout. The clock starts when
// a worker sends the request, not when it was queued, so queueing ahead of the schedule never
// eats into the timeout.
type timeoutTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody releases the request's timeout once the body is read to the end or closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.cancel()
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
