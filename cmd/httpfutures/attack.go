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

// attacker sends the requests of one run and records their results. Each model has its own
// loop; both submit with StartRoundTrip (which never blocks) and read the times from the
// Future's Timing. The requests have context.Background() as their context, so that the
// transport runs them under the Future's own context, with no context made per request, and
// they are shallow copies of a template per target.
//
// Closed model (no -rate): -c users, each a goroutine that submits a request, waits for its
// Future and records it, like hey's workers; latency runs from queueing.
//
// Open model (-rate): request i falls due at the timetable's offset(i) after the start. One
// feeder goroutine waits with a pacer until each due time and submits the request then; the
// transport's -max-workers workers take it at once when one is free. Latency runs from the due
// time, so that a stalled server shows in every request that fell due during the stall (no
// coordinated omission), and the send lag (when a worker sent it, less its due time) is reported
// apart, so that a late generator is not mistaken for a slow server. When more than maxQueued
// requests wait for a worker, those falling due are dropped. At the end of -duration the feeder
// stops and the requests still waiting are refused by the gate below without being sent: they
// are counted as dropped, never sent after the end. The Futures go in submission order on a
// channel to collectors, which record them; more collectors are started when they fall behind.
type attacker struct {
	cfg     *config
	tr      *httpfutures.AsyncTransport
	httpTr  *http.Transport // nil when a test gives its own RoundTripper
	tg      *targeter
	m       *metrics
	results *resultWriter // nil without -output
	workers int           // of the transport
	fine    bool          // the pacer's fine waits (off in tests on a fake clock)

	// The gate's counters, of requests handed to the transport and taken by a worker.
	ended     atomic.Bool // set at the end of the run: workers no longer send
	submitted atomic.Int64
	started   atomic.Int64
	finished  atomic.Int64
	busyPeak  atomic.Int64 // the most requests in flight at once

	collectors sync.WaitGroup
	nCollect   atomic.Int64
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
	if cfg.rate != nil {
		a.workers = cfg.maxWorkers
	}
	opts := []httpfutures.Option{
		httpfutures.WithWorkers(a.workers),
		httpfutures.WithQueueLimit(0), // no bound: the users or the feeder bound the queue
		httpfutures.WithBackpressure(cfg.honorWait),
	}
	if cfg.hostRate > 0 {
		opts = append(opts, httpfutures.WithHostRateLimit(rate.Limit(cfg.hostRate), 1))
	}
	next := base
	if cfg.client.redirects > 0 {
		next = newRedirectTransport(base, cfg.client.redirects)
	}
	a.tr = httpfutures.NewTransport(&gate{a: a, next: next}, opts...)
	return a, nil
}

// gate is the transport's next RoundTripper: it counts the requests that workers take, and
// refuses to send them once the run has ended.
type gate struct {
	a    *attacker
	next http.RoundTripper
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	a := g.a
	if a.ended.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errNotSent
	}
	busy := a.started.Add(1) - a.finished.Load()
	if busy > a.busyPeak.Load() {
		a.busyPeak.Store(busy) // racy but monotone enough for a warning
	}
	resp, err := g.next.RoundTrip(req)
	a.finished.Add(1)
	return resp, err
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
	}
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.timeout+time.Second)
	if err := a.tr.Shutdown(sctx); err != nil {
		_ = a.tr.Close()
	}
	cancel()
	_ = a.tr.Close()
	a.collectors.Wait()
	stopLive()

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
// user has recorded its last request.
func (a *attacker) runClosed(ctx context.Context, end time.Time) {
	if !end.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, end)
		defer cancel()
	}
	var next atomic.Uint64 // the index of the next request, shared by the users
	var users sync.WaitGroup
	for range a.cfg.workers {
		users.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if a.cfg.requests > 0 && i >= uint64(a.cfg.requests) {
					return
				}
				req, t := a.tg.request(i)
				a.submitted.Add(1)
				f := a.tr.StartRoundTrip(req)
				<-f.Done()
				a.record(f, t, i, time.Time{})
			}
		})
	}
	users.Wait()
}

// pending is a submitted request of the open model on its way to a collector.
type pending struct {
	f   *httpfutures.Future
	t   *target
	seq uint64
	due time.Time
}

// runOpen runs the feeder until the timetable, -n or -duration ends or ctx ends, and counts
// what fell due and was not sent. The collectors go on recording until the requests still
// in flight are done; run waits for them after the transport's Shutdown.
func (a *attacker) runOpen(ctx context.Context, start, end time.Time) {
	out := make(chan pending, 1024)
	a.addCollector(out)
	var fed sync.WaitGroup
	var dropped uint64
	// The feeder has a goroutine of its own: its pacer locks it to a thread.
	fed.Go(func() {
		dropped = a.feed(ctx, start, end, out)
		if !end.IsZero() && (a.cfg.requests == 0 || a.submitted.Load() < int64(a.cfg.requests)) {
			// The timetable reached the end: the last request has until then to find a worker.
			p := newPacer(a.fine)
			p.waitUntil(ctx, end)
			p.stop()
		}
	})
	fed.Wait()
	close(out)
	a.m.addDropped(dropped)
}

// feed submits each request at its due time and returns how many fell due and were dropped.
func (a *attacker) feed(ctx context.Context, start, end time.Time, out chan pending) (dropped uint64) {
	p := newPacer(a.fine)
	defer p.stop()
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
		req, t := a.tg.request(i)
		a.submitted.Add(1)
		f := a.tr.StartRoundTrip(req)
		pd := pending{f: f, t: t, seq: i, due: due}
		select {
		case out <- pd:
		default: // the collectors are behind: one more
			a.addCollector(out)
			out <- pd
		}
	}
	return dropped
}

func (a *attacker) addCollector(in <-chan pending) {
	a.nCollect.Add(1)
	a.collectors.Go(func() {
		for p := range in {
			<-p.f.Done()
			a.record(p.f, p.t, p.seq, p.due)
		}
	})
}

// record adds the result of f, request seq of target t; due is zero in the closed model.
func (a *attacker) record(f *httpfutures.Future, t *target, seq uint64, due time.Time) {
	resp, err := f.Result()
	if errors.Is(err, errNotSent) || errors.Is(err, httpfutures.ErrClosed) && f.Timing().Started.IsZero() {
		a.m.addDropped(1)
		return
	}
	tm := f.Timing()
	from := tm.Queued
	if !due.IsZero() {
		from = due
	}
	started := tm.Started
	if started.IsZero() {
		started = tm.Finished
	}
	finished := tm.Finished
	r := Result{
		Attack:    a.cfg.name,
		Seq:       seq,
		Timestamp: from,
		Latency:   finished.Sub(from),
		Lag:       max(started.Sub(from), 0),
		BytesOut:  uint64(len(t.body)),
		Method:    t.method,
		URL:       t.url,
	}
	if due.IsZero() {
		r.Lag = 0 // the closed model has no timetable to be late on
	}
	kind := ""
	if err != nil {
		r.Error, kind = err.Error(), errorKind(err)
	} else {
		// The body was read into memory by the worker before the Future resolved; this copy
		// only counts it.
		n, rerr := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.Code, r.BytesIn = uint16(resp.StatusCode), uint64(n)
		if rerr != nil { // cannot happen with an in-memory body; count it if it does
			r.Code, r.Error, kind = 0, rerr.Error(), errorKind(rerr)
		}
	}
	a.m.add(&r, kind)
	if a.results != nil {
		w := r // only this copy goes to the heap, and only with -output
		a.results.write(&w)
	}
}
