package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

// maxQueued bounds how many requests of the open model wait for a worker: past it, what falls
// due is dropped (and counted) instead of queued, so that memory stays bounded at any rate.
const maxQueued = 4096

// warnLag is the 99th percentile of the send lag from which the run ends with a warning that
// the generator could not keep its timetable.
const warnLag = 5 * time.Millisecond

// errNotSent is the error of a request that a worker took after the run's end: it is not sent,
// and counts as dropped.
var errNotSent = errors.New("not sent: the run had ended")

// An Attacker sends the requests of one run and records their results: Run returns the
// report, Progress tells how far it is while it runs, and Config.Results and Config.OnResult
// get each result. Both models submit with StartRoundTrip, which never blocks, and no goroutine
// waits for a Future: each request is sent with a flight as its context, and the worker that
// runs it records its result where it ends (see flight.go). The requests are shallow copies of
// a template per target.
//
// Closed model (Rate nil): Workers users, as hey's workers, each with one request at a time:
// when a request ends, the worker that ran it submits its user's next one. Latency runs from
// queueing.
//
// Open model (Rate): request i falls due at the timetable's offset(i) after the start. One
// feeder goroutine waits with a pacer until each due time and submits the request then; the
// transport's MaxWorkers workers take it at once when one is free. Latency runs from the due
// time, so that a stalled server shows in every request that fell due during the stall (no
// coordinated omission), and the send lag (when a worker sent it, less its due time) is reported
// apart, so that a late generator is not mistaken for a slow server. When more than maxQueued
// requests wait for a worker, those falling due are dropped. At the end of Duration the feeder
// stops and the requests still waiting are refused by the gate without being sent: they are
// counted as dropped, never sent after the end.
//
// An Attacker runs once. Its zero value is not ready: use New. Its methods are safe for
// concurrent use.
type Attacker struct {
	cfg     *Config
	tr      *httpfutures.AsyncTransport
	httpTr  *http.Transport // nil when a test gives its own RoundTripper
	tg      *targeter
	m       *Metrics
	results *ResultWriter // nil: none kept
	workers int           // of the transport
	fine    bool          // the pacer's fine waits (off in tests on a fake clock)

	// Counters of requests submitted, taken by a worker, finished by the next RoundTripper and
	// recorded (or dropped).
	ended     atomic.Bool // set at the end of the run: workers no longer send
	submitted atomic.Int64
	started   atomic.Int64
	finished  atomic.Int64
	recorded  atomic.Int64
	busyPeak  atomic.Int64 // the most requests in flight at once
	// The requests submitted and maybe not yet taken to the gate, to drop at the end: each
	// user's last (closed model), and the open model's in a map.
	lastOf  []atomic.Pointer[flight] // by user
	waiting sync.Map                 // of *flight

	users closedRun // the closed model's users

	watches sync.Pool // of *watch, stopped: see watchFor

	// Set once by New or Run.
	timeout  time.Duration // of each request, from its send to the end of its body
	onResult func(*Result)
	ran      atomic.Bool
	start    atomic.Pointer[time.Time]
}

// closedRun is the state of the closed model's users; its zero value is the open model's.
type closedRun struct {
	ctx    context.Context // ends the sending; nil in the open model
	end    time.Time       // zero: no Duration
	next   atomic.Uint64   // the index of the next request
	active atomic.Int64    // users still sending
	done   chan struct{}   // closed when active reaches 0
}

// New returns an Attacker for cfg, which it copies: the zero fields take their defaults.
func New(cfg Config) (*Attacker, error) {
	c := cfg
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MaxWorkers == 0 {
		c.MaxWorkers = DefaultMaxWorkers
	}
	switch {
	case len(c.Targets) == 0:
		return nil, errors.New("loadgen: no target")
	case c.Requests < 0 || c.Duration < 0:
		return nil, errors.New("loadgen: Requests and Duration must not be negative")
	case c.Workers < 0 || c.Workers > MaxConcurrency || c.MaxWorkers < 0 || c.MaxWorkers > MaxConcurrency:
		return nil, fmt.Errorf("loadgen: Workers and MaxWorkers must be from 1 to %d", MaxConcurrency)
	}
	tg, err := newTargeter(c.Targets)
	if err != nil {
		return nil, err
	}
	a := &Attacker{cfg: &c, tg: tg, m: NewMetrics(), results: c.Results, workers: c.Workers, onResult: c.OnResult}
	if c.Requests > 0 && c.Requests < a.workers {
		a.workers = c.Requests // users past Requests would have nothing to send
	}
	if c.Rate != nil {
		a.workers = c.MaxWorkers
	}
	a.timeout = c.Client.timeout()
	base := c.Transport
	if base == nil {
		if a.httpTr, err = newHTTPTransport(c.Client, a.workers); err != nil {
			return nil, err
		}
		base, a.fine = a.httpTr, !c.CoarseTimer
	}
	opts := []httpfutures.Option{
		httpfutures.WithWorkers(a.workers),
		httpfutures.WithQueueLimit(0), // no bound: the users or the feeder bound the queue
		httpfutures.WithBackpressure(c.HonorWait),
		httpfutures.WithHooks(httpfutures.Hooks{Response: a.onResponse}),
	}
	if c.HostRate > 0 {
		opts = append(opts, httpfutures.WithHostRateLimit(rate.Limit(c.HostRate), 1))
	}
	opts = append(opts, c.Options...)
	next := base
	if c.Client.Redirects > 0 {
		next = newRedirectTransport(base, c.Client.Redirects)
	}
	a.tr = httpfutures.NewTransport(&gate{a: a, next: next}, opts...)
	return a, nil
}

// submit sends request i with fl as its context.
func (a *Attacker) submit(i uint64, fl *flight) {
	req, t, u := a.tg.request(i, fl)
	fl.t, fl.url = t, u
	a.submitted.Add(1)
	if fl.slot >= 0 {
		a.lastOf[fl.slot].Store(fl)
	} else {
		a.waiting.Store(fl, struct{}{}) // before it can reach the gate, which forgets it
	}
	// The flight records the result: the Future is kept only to cancel it at the end, if it is
	// still queued then.
	f := a.tr.StartRoundTrip(req)
	fl.future.Store(f)
	if fl.timedOut.Load() { // its timer fired before the Future was stored
		f.Cancel()
	}
	if a.ended.Load() {
		a.dropWaiting(fl)
	}
}

// dropQueued cancels the requests that no worker took to the gate yet, once the run has ended:
// they are not sent, and count as dropped, at once rather than when a worker would take them.
// The gate notes a request before it reads ended, and the run sets ended before this looks: a
// request either was noted, and is sent or refused by the gate, or is canceled here unsent.
func (a *Attacker) dropQueued() {
	for i := range a.lastOf {
		if fl := a.lastOf[i].Load(); fl != nil {
			a.dropWaiting(fl)
		}
	}
	a.waiting.Range(func(k, _ any) bool {
		a.dropWaiting(k.(*flight))
		return true
	})
}

// dropWaiting cancels fl if no worker took it to the gate.
func (a *Attacker) dropWaiting(fl *flight) {
	if fl.atGate.Load() {
		return
	}
	if f := fl.future.Load(); f != nil && f.Cancel() {
		a.waiting.Delete(fl)
	}
}

// Run sends requests until Requests or Duration is reached or ctx ends, waits for the
// outstanding ones (each bounded by the Timeout) and returns the report. The run ends at its
// Duration plus at most the Timeout and a second for what is in flight, after which what is
// left is abandoned. An Attacker runs once.
func (a *Attacker) Run(ctx context.Context) *Report {
	if !a.ran.CompareAndSwap(false, true) {
		panic("loadgen: an Attacker runs once")
	}
	if a.httpTr != nil {
		defer a.httpTr.CloseIdleConnections()
	}
	start := time.Now()
	a.start.Store(&start)
	var end time.Time
	if a.cfg.Duration > 0 {
		end = start.Add(a.cfg.Duration)
	}
	if a.cfg.Rate != nil {
		a.runOpen(ctx, start, end)
	} else {
		a.runClosed(ctx, end)
	}
	interrupted := ctx.Err() != nil

	// Past the end, workers no longer send what waits (Requests alone lets every request go);
	// let what is in flight finish, and abandon it past the grace period.
	if interrupted || !end.IsZero() && !time.Now().Before(end) {
		a.ended.Store(true)
		a.dropQueued()
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.timeout+time.Second)
	if err := a.tr.Shutdown(sctx); err != nil {
		_ = a.tr.Close()
	}
	cancel()
	_ = a.tr.Close()
	// What was submitted and never reached the gate (still queued when the transport closed)
	// was not sent.
	if lost := a.submitted.Load() - a.recorded.Load(); lost > 0 {
		a.recorded.Add(lost)
		a.m.addDropped(uint64(lost))
	}

	r := a.m.Report()
	r.Interrupted = interrupted
	r.Model = "closed"
	if a.cfg.Rate != nil {
		r.Model, r.TargetRate = "open", a.cfg.Rate.String()
		r.Asked = r.Requests + r.Sent.Dropped
		r.AskedRate = a.cfg.Rate.meanRate(int(r.Asked))
	}
	r.Bottleneck = a.bottleneck(r)
	return r
}

// bottleneck names what held the open model back, if the generator rather than the server
// did: too few workers for the server's latency, or the generator's CPU.
func (a *Attacker) bottleneck(r *Report) string {
	if a.cfg.Rate == nil {
		return ""
	}
	allBusy := a.busyPeak.Load() >= int64(a.workers)
	peak := a.cfg.Rate.Peak()
	switch {
	case allBusy && (r.Sent.Dropped > 0 || r.Sent.Late > 0):
		svc := r.Sent.ServiceMean
		if svc <= 0 {
			return fmt.Sprintf("the workers: all %d were busy and requests waited for one", a.workers)
		}
		can := float64(a.workers) / svc.Seconds()
		if can < peak {
			need := int(math.Ceil(peak * svc.Seconds() * 1.2))
			return fmt.Sprintf("the workers: at the server's mean latency of %s, %d workers send at most %.0f req/s, below the %s req/s asked; %d workers (-max-workers) would keep up",
				FormatDuration(svc), a.workers, can, strconv.FormatFloat(peak, 'g', 6, 64), need)
		}
		return fmt.Sprintf("the server's slow responses: all %d workers were busy while some took up to %s, though at its mean latency of %s they would keep up",
			a.workers, FormatDuration(r.Latencies.Max), FormatDuration(svc))
	case r.Sent.Dropped > 0 || r.Sent.LagP99 >= warnLag:
		return "the generator's CPU: requests were sent late while workers were free (send lag p99 " + FormatDuration(r.Sent.LagP99) + ")"
	}
	return ""
}

// runClosed runs the Workers users until Requests were sent, the end passed or ctx ended, and each
// user's last request has ended.
func (a *Attacker) runClosed(ctx context.Context, end time.Time) {
	u := &a.users
	u.ctx, u.end, u.done = ctx, end, make(chan struct{})
	a.lastOf = make([]atomic.Pointer[flight], a.workers)
	u.active.Store(int64(a.workers))
	for k := range a.workers {
		a.launch(k)
	}
	// Every request ends in the gate, its body or the response hook, which launch the next; a
	// request that ended some other way would leave its user waiting for ever, so the transport
	// is watched too: idle twice in a row with users still active, those users are done.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var ends <-chan time.Time // the end of Duration, if any
	if !end.IsZero() {
		t := time.NewTimer(time.Until(end))
		defer t.Stop()
		ends = t.C
	}
	idle := 0
	for {
		select {
		case <-u.done:
			return
		case <-ctx.Done(): // what is in flight ends in the transport's Shutdown
			return
		case <-ends:
			return
		case <-tick.C:
			if st := a.tr.Stats(); st.Queued == 0 && st.InFlight == 0 && a.submitted.Load() == a.recorded.Load() {
				idle++
			} else {
				idle = 0
			}
			if idle >= 2 {
				return
			}
		}
	}
}

// launch submits the next request of user k, or ends the user when the run is over.
func (a *Attacker) launch(k int) {
	u := &a.users
	if u.ctx == nil { // the open model
		return
	}
	i := u.next.Add(1) - 1
	if u.ctx.Err() != nil || !u.end.IsZero() && !time.Now().Before(u.end) ||
		a.cfg.Requests > 0 && i >= uint64(a.cfg.Requests) {
		if u.active.Add(-1) == 0 {
			close(u.done)
		}
		return
	}
	a.submit(i, &flight{Context: context.Background(), seq: i, slot: k, from: time.Now()})
}

// runOpen runs the feeder until the timetable, Requests or Duration ends or ctx ends, and counts
// what fell due and was not sent. The requests in flight end after, in the transport's
// Shutdown.
func (a *Attacker) runOpen(ctx context.Context, start, end time.Time) {
	var fed sync.WaitGroup
	var dropped uint64
	fed.Go(func() {
		p := newPacer(a.fine)
		defer p.stop()
		dropped = a.feed(ctx, p, start, end)
		if !end.IsZero() && (a.cfg.Requests == 0 || a.submitted.Load() < int64(a.cfg.Requests)) {
			// The timetable reached the end: the last request has until then to find a worker.
			p.waitUntil(ctx, end)
		}
	})
	fed.Wait()
	a.m.addDropped(dropped)
}

// feed submits each request at its due time and returns how many fell due and were dropped.
func (a *Attacker) feed(ctx context.Context, p *pacer, start, end time.Time) (dropped uint64) {
	sched := a.cfg.Rate
	limit := uint64(a.cfg.Requests) // 0: none
	for i := uint64(0); limit == 0 || i < limit; i++ {
		off, ok := sched.offset(int(i))
		if !ok {
			return dropped
		}
		due := start.Add(off)
		if !end.IsZero() && !due.Before(end) {
			return dropped
		}
		if !p.waitUntil(ctx, due) {
			return dropped
		}
		if a.submitted.Load()-a.started.Load() >= maxQueued {
			// Nothing can take it: drop it, and every other one due by now.
			now := int(i) + 1
			if n := sched.due(time.Since(start)); n > now {
				now = n
			}
			skip := uint64(now) - i
			if limit > 0 {
				skip = min(skip, limit-i)
			}
			dropped += skip
			i += skip - 1
			continue
		}
		a.submit(i, &flight{Context: context.Background(), seq: i, slot: -1, from: due, open: true})
	}
	return dropped
}

// Progress is how far a run is, as Attacker.Progress tells it.
type Progress struct {
	Elapsed    time.Duration // since Run started; 0 before
	Done       uint64        // results recorded
	Failed     uint64        // of them, not a success
	InFlight   int64         // submitted and not yet ended
	TargetRate float64       // the timetable's rate now, requests per second; 0 in the closed model
}

// Progress tells how far the run is. It never waits for a request, and may be called from any
// goroutine, during Run or after.
func (a *Attacker) Progress() Progress {
	p := Progress{
		Done:     a.m.done.Load(),
		Failed:   a.m.failed.Load(),
		InFlight: a.submitted.Load() - a.finished.Load(),
	}
	if start := a.start.Load(); start != nil {
		p.Elapsed = time.Since(*start)
	}
	if a.cfg.Rate != nil && p.Elapsed > 0 {
		p.TargetRate = a.cfg.Rate.At(p.Elapsed)
	}
	return p
}
