package httpfutures

import (
	"net/http"
	"time"
	"unsafe"
)

// Unexported functions that the external tests call directly.
var (
	ParseRetryAfter = parseRetryAfter
	ParseRateLimit  = parseRateLimit
)

// ReserveSince is the reservation a Scheduler makes: a token at now for a request that has waited
// since since, with no time lost for want of a slot. The public Reserve is ReserveSince(now, now).
func (l *RateLimiter) ReserveSince(now, since time.Time) time.Time { return l.reserve(now, since, 0) }

var FutureSize = unsafe.Sizeof(Future{})

// FutureTakenEnd is where the fields a worker touches as it takes a Future end: its queue slot
// and its phase.
var FutureTakenEnd = unsafe.Offsetof(Future{}.phase) + unsafe.Sizeof(Future{}.phase)

var HostSize = unsafe.Sizeof(host{})

// RunAsTakenAfter runs req as a worker does that took it without waiting, right after ending a
// request that resolved ago before req was queued: the worker's last reading of the clock is
// older than req. It returns req's Future, resolved.
func (t *AsyncTransport) RunAsTakenAfter(req *http.Request, ago time.Duration) *Future {
	t.init()
	f := newFuture(t, req)
	f.opts = optionsFrom(req.Context())
	f.phase.take()
	t.run(f, f.queued-instant(ago))
	return f
}

// CircuitOf is a host's closed breaker as c configures it, without a Scheduler: record counts an
// attempt at now, failed or not, and reports whether the breaker opened at it.
func CircuitOf(c CircuitBreaker) (record func(now time.Time, failed bool) (opened bool)) {
	c = c.withDefaults()
	var b circuit
	b.init(&c)
	return func(now time.Time, failed bool) bool {
		ch := b.record(&c, now, failed, false)
		return ch != nil && ch.To == CircuitOpen
	}
}

// An Estimate is a host's adaptive limit without a Scheduler, steady (its slow start over), fed
// the outcomes of requests by hand: times are offsets from its start.
type Estimate struct {
	a   adaptiveState
	cfg AdaptiveLimit
}

// NewEstimate returns an Estimate at limit, under cfg, whose successes have taken srtt.
func NewEstimate(cfg AdaptiveLimit, limit float64, srtt time.Duration) *Estimate {
	e := &Estimate{cfg: cfg.withDefaults()}
	e.a.limit, e.a.cur, e.a.ceiling, e.a.steady, e.a.srtt = limit, int(limit), e.cfg.Max, true, srtt
	e.a.gain, e.a.gainFrom = 1, limit
	return e
}

// Succeed feeds a success of a request sent at start with load in flight, ended at end.
func (e *Estimate) Succeed(start, end time.Duration, load int) {
	o := observation{start: instant(start), sig: sigSuccess, sent: sendState{load: load, done: e.a.done}}
	e.a.succeeded(&e.cfg, end-start, o, instant(end), e.a.cur)
	e.a.cur = max(int(e.a.limit), 1)
}

// Fail feeds an overload (a 503) of a request sent at start, ended at end.
func (e *Estimate) Fail(start, end time.Duration, load int) {
	e.a.decrease(instant(start) <= e.a.cut, instant(end), e.cfg.Backoff, load)
	e.a.cur = max(int(e.a.limit), 1)
}

// Limit returns the estimate; Peak the limit that last failed, zero if none or passed.
func (e *Estimate) Limit() float64 { return e.a.limit }
func (e *Estimate) Peak() float64  { return e.a.peak }
