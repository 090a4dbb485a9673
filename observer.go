package httpfutures

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// An Observer is told what a Scheduler sees, as it sees it: each request queued, started, tried
// again, redirected, hedged and resolved; each host paused, resumed, paced, its adaptive limit
// changed, its circuit breaker changed; each Limiter failing. It is what metrics, traces and logs are built on (the package
// otelfutures builds OpenTelemetry metrics and traces on it), and costs nothing where it is not
// set.
//
// Any func may be nil. Each is called in the goroutine that saw the event (a worker, the
// submitter, the pacer), with no lock held, and must return quickly: count, or hand the event
// on. It must not wait for requests of the same Scheduler. A panic in it is recovered and
// dropped: an Observer cannot crash the process nor fail a request. The zero Observer observes
// nothing.
type Observer struct {
	// Queued: f was submitted and waits in its host's queue. The submitter tells it once f is
	// queued, where a worker may already have taken f: it may come after Started, even after
	// Resolved.
	Queued func(f *Future)
	// Started: a worker took f and starts its attempt-th attempt (1 for the first).
	Started func(f *Future, attempt int)
	// Retried: an attempt of f failed and is to be tried again; see Retry.
	Retried func(f *Future, r Retry)
	// Redirected: a Session's request f follows a redirect to req.
	Redirected func(f *Future, req *http.Request)
	// Hedged: a copy of f's round trip was sent (WithHedge).
	Hedged func(f *Future)
	// Resolved: f resolved, with outcome o. Its Result, Timing and Attempts are final. It is
	// called once the Future has resolved: its caller may see the result first.
	Resolved func(f *Future, o Outcome)

	// HostPaused: the server of host asked it to pause (Retry-After, an exhausted RateLimit
	// quota) until until.
	HostPaused func(host string, until time.Time)
	// HostResumed: the pause of host ended, and its queue goes on.
	HostResumed func(host string)
	// HostPaced: the server of host asked for a pace (the RateLimit fields) until until.
	HostPaced func(host string, pace rate.Limit, until time.Time)
	// LimitChanged: the adaptive limit of a host changed, as WithLimitChanged tells it.
	LimitChanged func(c LimitChange)
	// LimiterFailed: a Limiter refused a request to host with err (its Reserve failed).
	LimiterFailed func(host string, err error)
	// CircuitChanged: the circuit breaker of a host changed state (WithCircuitBreaker). Changes
	// are told one at a time, in the order they were made, as are LimitChanged's.
	CircuitChanged func(c CircuitChange)

	// Context, if set, returns the context each attempt of f runs under, made from ctx: a tracer
	// puts the request's span in it, so that the next RoundTripper's spans are its children.
	Context func(ctx context.Context, f *Future) context.Context

	// Attached: the Observer was given to s, which is now set up (NewScheduler, or the first use
	// of a transport that makes its own). It is told once per Scheduler, before any request:
	// an Observer that reports gauges (requests queued and in flight, hosts paused) keeps s, to
	// read its Stats and HostStats when they are collected.
	Attached func(s *Scheduler)
}

// A Retry is an attempt that failed and is to be tried again, as Observer.Retried tells it.
type Retry struct {
	Attempt    int           // the attempt that failed, 1 for the first
	Wait       time.Duration // how long the next attempt waits, before it is queued again
	StatusCode int           // the failed attempt's status; 0 if it had no response
	Err        error         // the failed attempt's error; nil if it had a response
}

// An Outcome is how a Future resolved, as Observer.Resolved tells it and Stats count it.
type Outcome uint8

// The outcomes of a Future.
const (
	OutcomeCompleted Outcome = iota // a response, whatever its status
	OutcomeFailed                   // an error: the round trip, a hook, a decoder, a Limiter
	OutcomeCanceled                 // Cancel, the end of its context, or Close
	OutcomeShed                     // refused before it was sent, or sent again, where waiting could not help: ErrQueueFull, ErrCircuitOpen, ErrThrottled, a deadline before its host may send
)

var outcomes = [...]string{"completed", "failed", "canceled", "shed"}

// String names the outcome, as metrics label it.
func (o Outcome) String() string {
	if int(o) < len(outcomes) {
		return outcomes[o]
	}
	return "unknown"
}

// outcomeOf classifies the error a Future resolved with.
func outcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeCompleted
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed):
		return OutcomeCanceled
	case errors.Is(err, ErrQueueFull) || errors.Is(err, ErrCircuitOpen) || errors.Is(err, ErrThrottled) ||
		errors.Is(err, errUnmet):
		return OutcomeShed
	}
	return OutcomeFailed
}

// WithObserver makes the Scheduler tell o what it sees; see Observer. It may be given several
// times: each Observer is told every event, in the order they were given. It configures a
// Scheduler: every transport and session on it is observed.
func WithObserver(o Observer) Option {
	return schedOption("WithObserver", func(c *config) { c.observer = c.observer.And(o) })
}

// And returns an Observer that tells o, then p, each event: for a package whose Observer is
// made of parts. WithObserver(o.And(p)) is WithObserver(o), WithObserver(p).
func (o Observer) And(p Observer) Observer {
	return Observer{
		Queued:         both(o.Queued, p.Queued),
		Started:        both2(o.Started, p.Started),
		Retried:        both2(o.Retried, p.Retried),
		Redirected:     both2(o.Redirected, p.Redirected),
		Hedged:         both(o.Hedged, p.Hedged),
		Resolved:       both2(o.Resolved, p.Resolved),
		HostPaused:     both2(o.HostPaused, p.HostPaused),
		HostResumed:    both(o.HostResumed, p.HostResumed),
		HostPaced:      both3(o.HostPaced, p.HostPaced),
		LimitChanged:   both(o.LimitChanged, p.LimitChanged),
		LimiterFailed:  both2(o.LimiterFailed, p.LimiterFailed),
		CircuitChanged: both(o.CircuitChanged, p.CircuitChanged),
		Context:        chain(o.Context, p.Context),
		Attached:       both(o.Attached, p.Attached),
	}
}

func both[A any](f, g func(A)) func(A) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A) { f(a); g(a) }
}

func both2[A, B any](f, g func(A, B)) func(A, B) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

func both3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(a A, b B, c C) { f(a, b, c); g(a, b, c) }
}

// chain returns a Context func that passes ctx through f, then g.
func chain(f, g func(context.Context, *Future) context.Context) func(context.Context, *Future) context.Context {
	switch {
	case f == nil:
		return g
	case g == nil:
		return f
	}
	return func(ctx context.Context, fu *Future) context.Context { return g(f(ctx, fu), fu) }
}

// attached tells the Observers of s that they observe it. It requires s set up, and its once
// not running: an Observer may call s's methods.
func (s *Scheduler) attached() {
	if fn := s.obs.Attached; fn != nil {
		tell(fn, s)
	}
}

// tell calls fn with a, recovering a panic: an Observer cannot crash the process.
func tell[A any](fn func(A), a A) {
	defer func() { recover() }()
	fn(a)
}

// tell2 is tell for a func of two arguments.
func tell2[A, B any](fn func(A, B), a A, b B) {
	defer func() { recover() }()
	fn(a, b)
}

// tell3 is tell for a func of three arguments.
func tell3[A, B, C any](fn func(A, B, C), a A, b B, c C) {
	defer func() { recover() }()
	fn(a, b, c)
}
