package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Circuit breaking: a host that keeps failing is not sent requests for a while, and then only a
// probe, so that a dead upstream costs its callers no waiting and gets no load while it recovers.

// ErrCircuitOpen is the error of a request to a host whose circuit breaker is open
// (WithCircuitBreaker): the request was never sent.
var ErrCircuitOpen = errors.New("httpfutures: circuit open")

// CircuitBreaker configures the circuit breaker each host has with WithCircuitBreaker.
//
// A host's breaker starts closed: requests go, and the breaker counts its attempts over Window.
// Once Window holds at least MinRequests attempts, and FailureRatio of them or more failed (as
// IsFailure judges them), it opens: the host's queued requests fail at once with ErrCircuitOpen,
// and so do new ones, never sent. After Cooldown it is half-open: the next Probes requests go as
// probes, and the others fail as when it was open. If every probe succeeds the breaker closes,
// its counts forgotten; if one fails it opens for another Cooldown. A ratio over a window with a
// minimum, not a count of failures, so that a busy healthy host does not trip on its few errors.
//
// A zero field means its default, as documented on it; the zero CircuitBreaker is the defaults.
type CircuitBreaker struct {
	// Cooldown is how long an open breaker refuses requests before it lets probes through. Zero
	// means 5 seconds.
	Cooldown time.Duration
	// FailureRatio is the share of failed attempts, over Window, at which the breaker opens, in
	// (0, 1]. Zero means 0.5.
	FailureRatio float64
	// MinRequests is how many attempts Window must hold before their ratio counts. Zero means 20.
	// Set it high enough that a chance cluster of a healthy host's errors cannot reach
	// FailureRatio: against 1% of errors at random and a FailureRatio of 0.1, a breaker with 20
	// opens in about 1.7% of runs, with 50 in about 0.02%, with 100 practically never.
	MinRequests int
	// Window is how far back the breaker counts. Zero means 10 seconds.
	Window time.Duration
	// Probes is how many requests a half-open breaker sends, all of which must succeed for it to
	// close. Zero means 1.
	Probes int
	// IsFailure judges an attempt: whether its response, or its error, counts against the host.
	// Attempts that the caller canceled, or that a Close ended, never count. Nil means
	// DefaultIsFailure.
	IsFailure func(resp *http.Response, err error) bool
}

// The defaults of a CircuitBreaker, for its zero fields.
const (
	defaultCooldown      = 5 * time.Second
	defaultFailureRatio  = 0.5
	defaultMinRequests   = 20
	defaultCircuitWindow = 10 * time.Second
	defaultProbes        = 1
)

// DefaultIsFailure is the IsFailure of a CircuitBreaker that sets none: an attempt fails that
// got no response (a refused or reset connection, a timeout), a 5xx response, or a 429 without
// Retry-After. A 429 with Retry-After is a healthy server asking for a pause, which the host
// takes (see WithBackpressure), and other statuses are the server answering.
func DefaultIsFailure(resp *http.Response, err error) bool {
	switch {
	case err != nil:
		return true
	case resp.StatusCode >= 500:
		return true
	case resp.StatusCode == http.StatusTooManyRequests:
		return resp.Header.Get("Retry-After") == ""
	}
	return false
}

// WithCircuitBreaker gives each host a circuit breaker configured by c; see CircuitBreaker. It
// composes: Retry-After pauses, rate limits and adaptive limits still apply to a closed breaker's
// host, and each attempt of a retried request counts. The requests it refuses fail with
// ErrCircuitOpen and count in Stats.Shed; HostStats shows each host's state, with every attempt
// of a resolved Future counted, and Observer.CircuitChanged is told each change. It configures a
// Scheduler.
func WithCircuitBreaker(c CircuitBreaker) Option {
	nonNegative("WithCircuitBreaker Cooldown", int64(c.Cooldown))
	nonNegative("WithCircuitBreaker MinRequests", int64(c.MinRequests))
	nonNegative("WithCircuitBreaker Window", int64(c.Window))
	nonNegative("WithCircuitBreaker Probes", int64(c.Probes))
	if c.FailureRatio != 0 && !(c.FailureRatio > 0 && c.FailureRatio <= 1) {
		panic(fmt.Sprintf("httpfutures: WithCircuitBreaker FailureRatio: %v is not in (0, 1]", c.FailureRatio))
	}
	return schedOption("WithCircuitBreaker", func(cfg *config) { cfg.breaker = &c })
}

// withDefaults returns c with its zero fields set to their defaults.
func (c CircuitBreaker) withDefaults() CircuitBreaker {
	if c.Cooldown == 0 {
		c.Cooldown = defaultCooldown
	}
	if c.FailureRatio == 0 {
		c.FailureRatio = defaultFailureRatio
	}
	if c.MinRequests == 0 {
		c.MinRequests = defaultMinRequests
	}
	if c.Window == 0 {
		c.Window = defaultCircuitWindow
	}
	if c.Probes == 0 {
		c.Probes = defaultProbes
	}
	if c.IsFailure == nil {
		c.IsFailure = DefaultIsFailure
	}
	return c
}

// A CircuitState is the state of a host's circuit breaker.
type CircuitState uint8

// The states of a circuit breaker. The zero CircuitState is closed, as a host without a breaker.
const (
	CircuitClosed   CircuitState = iota // requests go, and their outcomes are counted
	CircuitOpen                         // requests fail at once with ErrCircuitOpen
	CircuitHalfOpen                     // the next probes go; the other requests fail as when open
)

var circuitStates = [...]string{"closed", "open", "half-open"}

// String names the state.
func (s CircuitState) String() string {
	if int(s) < len(circuitStates) {
		return circuitStates[s]
	}
	return fmt.Sprintf("CircuitState(%d)", uint8(s))
}

// A CircuitChange is a change of a host's circuit breaker, as an Observer is told of it. The zero
// CircuitChange changes nothing: from closed to closed.
type CircuitChange struct {
	Host     string       // the host, as HostStats names it
	From, To CircuitState // the state before and after
	At       time.Time    // when it changed
	// Failures and Attempts are what the breaker had counted over its window when it opened from
	// closed; zero otherwise.
	Failures, Attempts int
}

// A circuit is a host's circuit breaker, part of its hostGuard. Its zero value is closed, and
// needs init before it counts. It is guarded by Scheduler.mu.
type circuit struct {
	state   CircuitState
	until   time.Time // when an open breaker lets probes through
	probing int       // probes queued or sent, and not yet judged
	passed  int       // probes that succeeded, this half-open spell
	err     error     // the error of the requests it refuses, made as it opens; see refusal
	counts  window    // failed (a) and succeeded (b) attempts, while closed
}

// init readies a new host's closed breaker to count over c's window.
func (b *circuit) init(c *CircuitBreaker) { b.counts.init(c.Window) }

// unprobe gives back the place of a probe that leaves unjudged: canceled while queued or
// running, or refused before it was sent.
func (b *circuit) unprobe() {
	if b.state == CircuitHalfOpen && b.probing > 0 {
		b.probing--
	}
}

// allow reports whether a request to the breaker's host may be queued at now, to be sent, and
// whether it goes as a probe; change is set if the breaker went from open to half-open.
func (b *circuit) allow(c *CircuitBreaker, now time.Time) (ok, probe bool, change *CircuitChange) {
	switch b.state {
	case CircuitClosed:
		return true, false, nil
	case CircuitOpen:
		if now.Before(b.until) {
			return false, false, nil
		}
		change = b.move(CircuitHalfOpen, now)
		b.probing, b.passed = 0, 0
	}
	if b.probing+b.passed < c.Probes {
		b.probing++
		return true, true, change
	}
	return false, false, change
}

// record counts an attempt that failed or not, sent as a probe or not, and returns the change of
// state it caused, if any.
func (b *circuit) record(c *CircuitBreaker, now time.Time, failed, probe bool) *CircuitChange {
	if probe {
		if b.state != CircuitHalfOpen {
			return nil // a probe of an earlier spell
		}
		b.probing = max(b.probing-1, 0)
		if failed {
			return b.open(c, now, 0, 0)
		}
		if b.passed++; b.passed >= c.Probes {
			b.counts.reset()
			return b.move(CircuitClosed, now)
		}
		return nil
	}
	if b.state != CircuitClosed {
		return nil // sent while it was closed, back after it opened
	}
	if failed {
		b.counts.add(now, 1, 0)
	} else {
		b.counts.add(now, 0, 1)
	}
	fails, oks := b.counts.sums(now)
	if n := fails + oks; n >= c.MinRequests && float64(fails) >= c.FailureRatio*float64(n) {
		return b.open(c, now, fails, n)
	}
	return nil
}

// open opens the breaker at now for a cooldown.
func (b *circuit) open(c *CircuitBreaker, now time.Time, fails, attempts int) *CircuitChange {
	b.until = now.Add(c.Cooldown)
	b.counts.reset()
	ch := b.move(CircuitOpen, now)
	ch.Failures, ch.Attempts = fails, attempts
	return ch
}

// move puts the breaker in state to at now, and returns the change.
func (b *circuit) move(to CircuitState, now time.Time) *CircuitChange {
	ch := &CircuitChange{From: b.state, To: to, At: now}
	b.state = to
	return ch
}

// circuitCanceled reports whether an attempt's error is its caller's doing, which no breaker
// counts.
func circuitCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed)
}

// circuitAllowLocked decides whether h's breaker lets the request f be queued at now, as a probe
// or not, and returns ErrCircuitOpen if not. It requires s.mu held.
func (s *Scheduler) circuitAllowLocked(h *host, f *Future, now time.Time) error {
	b := &h.guard.circuit
	ok, probe, c := b.allow(s.breaker, now)
	if c != nil {
		s.circuitChangedLocked(h, c)
	}
	if !ok {
		return b.err
	}
	f.probe = probe
	return nil
}

// circuitChangedLocked leaves the change c of h's breaker to be told. A breaker that opens fails
// the host's queued requests, retries waiting included, with its error. It requires s.mu held.
func (s *Scheduler) circuitChangedLocked(h *host, c *CircuitChange) {
	c.Host = h.key
	if s.obs.CircuitChanged != nil {
		s.changes = append(s.changes, *c)
	}
	if c.To != CircuitOpen {
		return
	}
	b := &h.guard.circuit
	b.err = fmt.Errorf("%w: %s, for %v", ErrCircuitOpen, h.key, s.breaker.Cooldown)
	fs := h.queue.appendAll(nil)
	if h.delayed > 0 {
		for _, f := range s.delayed.items {
			if f.host == h {
				fs = append(fs, f)
			}
		}
	}
	s.failLocked(fs, b.err)
}

// circuitStats fills in st what h's breaker shows at now.
func (s *Scheduler) circuitStats(h *host, st *HostStats) {
	if s.breaker == nil {
		return
	}
	b := &h.guard.circuit
	st.Circuit = b.state
	if b.state == CircuitOpen {
		st.CircuitUntil = b.until
	}
}
