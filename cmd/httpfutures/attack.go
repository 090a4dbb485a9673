package main

import (
	"context"
	"errors"
	"io"
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

// attacker sends the requests of one run and records their results. Both models submit with
// StartRoundTrip, which never blocks, and no goroutine waits for a Future: each request is sent
// with a flight as its context, and the worker that runs it records its result where it ends
// (see flight.go). The requests are shallow copies of a template per target.
//
// Closed model (no -rate): -c users, as hey's workers, each with one request at a time: when a
// request ends, the worker that ran it submits its user's next one. Latency runs from queueing.
//
// Open model (-rate): request i falls due at the timetable's offset(i) after the start. One
// feeder goroutine waits with a pacer until each due time and submits the request then; the
// transport's -max-workers workers take it at once when one is free. Latency runs from the due
// time, so that a stalled server shows in every request that fell due during the stall (no
// coordinated omission), and the send lag (when a worker sent it, less its due time) is reported
// apart, so that a late generator is not mistaken for a slow server. When more than maxQueued
// requests wait for a worker, those falling due are dropped. At the end of -duration the feeder
// stops and the requests still waiting are refused by the gate without being sent: they are
// counted as dropped, never sent after the end.
//
// An attacker runs once. Its zero value is not ready: use newAttacker.
type attacker struct {
	cfg     *config
	tr      *httpfutures.AsyncTransport
	httpTr  *http.Transport // nil when a test gives its own RoundTripper
	tg      *targeter
	m       *metrics
	results *resultWriter // nil without -output
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
}

// closedRun is the state of the closed model's users; its zero value is the open model's.
type closedRun struct {
	ctx    context.Context // ends the sending; nil in the open model
	end    time.Time       // zero: no -duration
	next   atomic.Uint64   // the index of the next request
	active atomic.Int64    // users still sending
	done   chan struct{}   // closed when active reaches 0
}

func newAttacker(cfg *config, results *resultWriter) (*attacker, error) {
	base, err := newHTTPTransport(cfg.client)
	if err != nil {
		return nil, err
	}
	a, err := newAttackerOn(cfg, base, results)
	if err != nil {
		return nil, err
	}
	a.httpTr, a.fine = base, cfg.precise
	return a, nil
}

// newAttackerOn is newAttacker with the round trips made by base.
func newAttackerOn(cfg *config, base http.RoundTripper, results *resultWriter) (*attacker, error) {
	tg, err := newTargeter(cfg.targets)
	if err != nil {
		return nil, err
	}
	a := &attacker{cfg: cfg, tg: tg, m: newMetrics(), results: results, workers: cfg.workers}
	if cfg.requests > 0 && cfg.requests < a.workers {
		a.workers = cfg.requests // users past -n would have nothing to send
	}
	if cfg.rate != nil {
		a.workers = cfg.maxWorkers
	}
	opts := []httpfutures.Option{
		httpfutures.WithWorkers(a.workers),
		httpfutures.WithQueueLimit(0), // no bound: the users or the feeder bound the queue
		httpfutures.WithBackpressure(cfg.honorWait),
		httpfutures.WithHooks(httpfutures.Hooks{Response: a.onResponse}),
	}
	if cfg.hostRate > 0 {
		opts = append(opts, httpfutures.WithHostRateLimit(rate.Limit(cfg.hostRate), 1))
	}
	opts = append(opts, cfg.shared.options()...)
	next := base
	if cfg.client.redirects > 0 {
		next = newRedirectTransport(base, cfg.client.redirects)
	}
	a.tr = httpfutures.NewTransport(&gate{a: a, next: next}, opts...)
	return a, nil
}

// submit sends request i with fl as its context.
func (a *attacker) submit(i uint64, fl *flight) {
	req, t := a.tg.request(i, fl)
	fl.t = t
	a.submitted.Add(1)
	if fl.slot >= 0 {
		a.lastOf[fl.slot].Store(fl)
	} else {
		a.waiting.Store(fl, struct{}{}) // before it can reach the gate, which forgets it
	}
	// The flight records the result: the Future is kept only to cancel it at the end, if it is
	// still queued then.
	fl.future.Store(a.tr.StartRoundTrip(req))
	if a.ended.Load() {
		a.dropWaiting(fl)
	}
}

// dropQueued cancels the requests that no worker took to the gate yet, once the run has ended:
// they are not sent, and count as dropped, at once rather than when a worker would take them.
// The gate notes a request before it reads ended, and the run sets ended before this looks: a
// request either was noted, and is sent or refused by the gate, or is canceled here unsent.
func (a *attacker) dropQueued() {
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
func (a *attacker) dropWaiting(fl *flight) {
	if fl.atGate.Load() {
		return
	}
	if f := fl.future.Load(); f != nil && f.Cancel() {
		a.waiting.Delete(fl)
	}
}

// outcome is what a run did, beyond its report.
type outcome struct {
	report *report
	// bottleneck, if not empty, says why the generator rather than the server limited the run.
	bottleneck string
}

// run sends requests until -n or -duration is reached or ctx ends, waits for the outstanding
// ones (each bounded by -timeout) and returns the report. The run ends at its duration plus at
// most -timeout and a second for what is in flight, after which what is left is abandoned.
func (a *attacker) run(ctx context.Context, live io.Writer) outcome {
	if a.httpTr != nil {
		defer a.httpTr.CloseIdleConnections()
	}
	stopLive := startLive(live, a)
	defer stopLive()

	start := time.Now()
	var end time.Time
	if a.cfg.duration > 0 {
		end = start.Add(a.cfg.duration)
	}
	if a.cfg.rate != nil {
		a.runOpen(ctx, start, end)
	} else {
		a.runClosed(ctx, end)
	}
	interrupted := ctx.Err() != nil

	// Past the end, workers no longer send what waits (-n alone lets every request go); let
	// what is in flight finish, and abandon it past the grace period.
	if interrupted || !end.IsZero() && !time.Now().Before(end) {
		a.ended.Store(true)
		a.dropQueued()
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.timeout+time.Second)
	if err := a.tr.Shutdown(sctx); err != nil {
		_ = a.tr.Close()
	}
	cancel()
	_ = a.tr.Close()
	stopLive()
	// What was submitted and never reached the gate (still queued when the transport closed)
	// was not sent.
	if lost := a.submitted.Load() - a.recorded.Load(); lost > 0 {
		a.recorded.Add(lost)
		a.m.addDropped(uint64(lost))
	}

	r := a.m.report()
	r.Interrupted = interrupted
	r.Model = "closed"
	if a.cfg.rate != nil {
		r.Model, r.TargetRate = "open", a.cfg.rate.String()
	}
	return outcome{report: r, bottleneck: a.bottleneck(r)}
}

// bottleneck says whether the generator, not the server, held the open model back.
func (a *attacker) bottleneck(r *report) string {
	if a.cfg.rate == nil {
		return ""
	}
	allBusy := a.busyPeak.Load() >= int64(a.workers)
	switch {
	case allBusy && (r.Sent.Dropped > 0 || r.Sent.Late > 0):
		return "every one of the " + strconv.Itoa(a.workers) + " workers was busy and requests waited for one: raise -max-workers, or the server is saturated"
	case r.Sent.Dropped > 0 || r.Sent.LagP99 >= warnLag:
		return "requests were sent late while workers were free: the generator's CPU is the bottleneck (send lag p99 " + fmtDuration(r.Sent.LagP99) + ")"
	}
	return ""
}

// runClosed runs -c users until -n requests were sent, the end passed or ctx ended, and each
// user's last request has ended.
func (a *attacker) runClosed(ctx context.Context, end time.Time) {
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
	var ends <-chan time.Time // the end of -duration, if any
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
func (a *attacker) launch(k int) {
	u := &a.users
	if u.ctx == nil { // the open model
		return
	}
	i := u.next.Add(1) - 1
	if u.ctx.Err() != nil || !u.end.IsZero() && !time.Now().Before(u.end) ||
		a.cfg.requests > 0 && i >= uint64(a.cfg.requests) {
		if u.active.Add(-1) == 0 {
			close(u.done)
		}
		return
	}
	a.submit(i, &flight{Context: context.Background(), seq: i, slot: k, from: time.Now()})
}

// runOpen runs the feeder until the timetable, -n or -duration ends or ctx ends, and counts
// what fell due and was not sent. The requests in flight end after, in the transport's
// Shutdown.
func (a *attacker) runOpen(ctx context.Context, start, end time.Time) {
	var fed sync.WaitGroup
	var dropped uint64
	fed.Go(func() {
		p := newPacer(a.fine)
		defer p.stop()
		dropped = a.feed(ctx, p, start, end)
		if !end.IsZero() && (a.cfg.requests == 0 || a.submitted.Load() < int64(a.cfg.requests)) {
			// The timetable reached the end: the last request has until then to find a worker.
			p.waitUntil(ctx, end)
		}
	})
	fed.Wait()
	a.m.addDropped(dropped)
}

// feed submits each request at its due time and returns how many fell due and were dropped.
func (a *attacker) feed(ctx context.Context, p *pacer, start, end time.Time) (dropped uint64) {
	sched := a.cfg.rate
	limit := uint64(a.cfg.requests) // 0: none
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
