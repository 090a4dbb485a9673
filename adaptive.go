package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Adaptive concurrency: each host's limit found by AIMD from the outcomes of its requests, as
// TCP finds a connection's window.

// AdaptiveLimit tunes the per-host concurrency limits of WithAdaptiveHostLimitConfig. Each host's
// limit starts at Initial and moves between 1 and Max: an overload (a 429 or 503 response, a
// timeout, a connection reset) multiplies it by Backoff, and each success adds 1/limit to it, so
// that a round trip's worth of successes adds one. Until the first overload, each success adds
// one (a slow start: the limit doubles each round trip). The limit does not grow while the host
// uses less than half of it. Only requests sent after the last decrease can decrease it again, so
// that a burst of failures from one moment costs one decrease and one outlier costs a tenth.
//
// The latency signal, on unless Tolerance is infinite, is for servers that slow down before they
// fail: the short-term average round trip (of the last ten or so successes) is held against the
// long-term baseline (the shortest round trip of the last Window or two, which the slow start
// measures at a low concurrency), and a short-term average over Tolerance times the baseline
// counts as an overload.
//
// A zero field means its default, as documented on it; the zero AdaptiveLimit, with no Max,
// turns adaptive limits off.
type AdaptiveLimit struct {
	Max       int           // the highest limit; zero turns adaptive limits off
	Initial   int           // the limit a host starts at; zero means 8, or Max if lower
	Backoff   float64       // what a decrease multiplies the limit by, in (0, 1); zero means 0.9
	Tolerance float64       // how much slower than the baseline is an overload, over 1; zero means 1.5; math.Inf(1) turns the latency signal off
	Window    time.Duration // how long a round trip stays in the baseline; zero means 10s
}

// The defaults of an AdaptiveLimit, for its zero fields.
const (
	defaultInitial   = 8
	defaultBackoff   = 0.9
	defaultTolerance = 1.5
	defaultRTTWindow = 10 * time.Second
)

// shortSamples is how many successes the short-term average round trip mostly weighs, and how
// many a host needs before its latency counts.
const shortSamples = 10

// WithAdaptiveHostLimit makes each host's concurrency limit adapt between 1 and max, with the
// defaults of AdaptiveLimit: see there. It composes with WithHostLimit (the lower of the two
// applies), with Retry-After pauses, and with a RateLimit-Policy field whose quota unit is
// "concurrent-requests", which sets the host's limit and caps it. Zero, the default, means a
// static limit.
func WithAdaptiveHostLimit(max int) Option {
	return WithAdaptiveHostLimitConfig(AdaptiveLimit{Max: max})
}

// WithAdaptiveHostLimitConfig is WithAdaptiveHostLimit with every knob of AdaptiveLimit.
func WithAdaptiveHostLimitConfig(a AdaptiveLimit) Option {
	nonNegative("WithAdaptiveHostLimit Max", int64(a.Max))
	nonNegative("WithAdaptiveHostLimit Initial", int64(a.Initial))
	nonNegative("WithAdaptiveHostLimit Window", int64(a.Window))
	if a.Backoff != 0 && !(a.Backoff > 0 && a.Backoff < 1) {
		panic(fmt.Sprintf("httpfutures: WithAdaptiveHostLimit Backoff: %v is not in (0, 1)", a.Backoff))
	}
	if a.Tolerance != 0 && !(a.Tolerance > 1) {
		panic(fmt.Sprintf("httpfutures: WithAdaptiveHostLimit Tolerance: %v is not over 1", a.Tolerance))
	}
	if a.Initial > a.Max {
		panic(fmt.Sprintf("httpfutures: WithAdaptiveHostLimit Initial: %d is over Max %d", a.Initial, a.Max))
	}
	return schedOption("WithAdaptiveHostLimit", func(c *config) {
		if a.Max == 0 {
			c.adaptive = nil
			return
		}
		if a.Initial == 0 {
			a.Initial = min(a.Max, defaultInitial)
		}
		if a.Backoff == 0 {
			a.Backoff = defaultBackoff
		}
		if a.Tolerance == 0 {
			a.Tolerance = defaultTolerance
		}
		if a.Window == 0 {
			a.Window = defaultRTTWindow
		}
		c.adaptive = &a
	})
}

// WithLimitChanged makes the Scheduler call fn each time a host's adaptive limit changes, so
// that it can be exported to metrics. fn runs in a worker, with no lock held, and should return
// quickly; calls for different hosts, or from different workers, may come concurrently and out
// of order (a LimitChange tells what it went from and to). A panic in fn is recovered and
// ignored. It has no effect without WithAdaptiveHostLimit.
func WithLimitChanged(fn func(LimitChange)) Option {
	return schedOption("WithLimitChanged", func(c *config) { c.observer = c.observer.and(Observer{LimitChanged: fn}) })
}

// A LimitChange is a change of a host's adaptive concurrency limit.
type LimitChange struct {
	Host     string      // the host, as HostStats names it: host and port, the default port left out
	From, To int         // the limit before and after
	Reason   LimitReason // why it changed
	At       time.Time   // when it changed
}

// A LimitReason tells why a host's adaptive limit last changed. The zero LimitReason means it
// has not changed since the host's state was made.
type LimitReason uint8

// The reasons a host's adaptive limit changes.
const (
	LimitUnchanged  LimitReason = iota // it has not changed
	LimitGrew                          // requests succeeded while the host used its limit
	LimitOverloaded                    // a 429 or 503 response
	LimitTimedOut                      // a timeout, or a 504 response
	LimitReset                         // a connection reset or cut short
	LimitSlowed                        // round trips slowed past the tolerance (the latency signal)
	LimitPolicy                        // the server's RateLimit-Policy named a concurrency quota
)

var limitReasons = [...]string{"unchanged", "grew", "overloaded", "timed out", "reset", "slowed", "policy"}

// String names the reason.
func (r LimitReason) String() string {
	if int(r) < len(limitReasons) {
		return limitReasons[r]
	}
	return fmt.Sprintf("LimitReason(%d)", uint8(r))
}

// A signal is what an attempt's end says of its host's load.
type signal uint8

const (
	sigNone     signal = iota // nothing: no attempt, or one canceled by its caller
	sigSuccess                // the server answered, and not that it is overloaded
	sigOverload               // 429 or 503
	sigTimeout                // a timeout, or 504
	sigReset                  // the connection was reset or cut short
)

// An observation is what an attempt hands its worker of the round trip's end, when hosts have
// adaptive limits. The worker reads the clock when it takes the outcome: a success's time
// includes reading its body.
type observation struct {
	start instant // when the round trip was sent
	sig   signal
}

// classify turns an attempt's end into an observation. canceled tells that the attempt's caller
// stopped it: the server is not to blame.
func classify(resp *http.Response, err error, start instant, canceled bool) observation {
	o := observation{start: start}
	switch {
	case canceled:
	case err == nil && resp != nil:
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			o.sig = sigOverload
		case http.StatusGatewayTimeout:
			o.sig = sigTimeout
		default:
			o.sig = sigSuccess
		}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		o.sig = sigTimeout
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF):
		o.sig = sigReset
	}
	return o
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// adaptiveState is a host's adaptive limit. It is made only when the Scheduler has adaptive
// limits, and is guarded by Scheduler.mu.
type adaptiveState struct {
	limit   float64     // the AIMD estimate, in [1, ceiling]
	cur     int         // the limit in force: limit's whole part, and no more than WithHostLimit
	ceiling int         // Max, or the server's concurrency quota if lower
	reason  LimitReason // why cur last changed
	cut     instant     // the last decrease: attempts sent before it decrease it no more

	short   time.Duration    // the short-term average round trip of successes
	samples int              // successes averaged, up to shortSamples
	base    [2]time.Duration // the shortest round trip of this window and the one before; zero if none
	baseAt  instant          // when this window began
}

// newAdaptiveState returns the adaptive limit of a new host. It requires s.adaptive set.
func (s *Scheduler) newAdaptiveState() *adaptiveState {
	a := &adaptiveState{limit: float64(s.adaptive.Initial), ceiling: s.adaptive.Max}
	a.cur = s.capLimit(a.limit)
	return a
}

// capLimit returns the limit in force for the estimate limit.
func (s *Scheduler) capLimit(limit float64) int {
	n := max(int(limit), 1)
	if s.hostLimit > 0 {
		n = min(n, s.hostLimit)
	}
	return n
}

// hostLimitOf returns the number of slots of h; zero if there is no limit.
func (s *Scheduler) hostLimitOf(h *host) int {
	if h.adapt != nil {
		return h.adapt.cur
	}
	return s.hostLimit
}

// adaptLocked moves h's adaptive limit by what an attempt of it that ended at end observed, and
// reports the change, if the limit in force changed. It requires s.mu held, and the attempt's
// slot not yet given back.
func (s *Scheduler) adaptLocked(h *host, o observation, end instant) (LimitChange, bool) {
	a, cfg := h.adapt, s.adaptive
	if a == nil || o.sig == sigNone {
		return LimitChange{}, false
	}
	reason := LimitUnchanged
	switch o.sig {
	case sigSuccess:
		a.sample(time.Duration(end-o.start), end, cfg.Window)
		if a.slowed(cfg.Tolerance) {
			if o.start <= a.cut {
				return LimitChange{}, false // slow, but sent before the last decrease: no growth
			}
			reason = LimitSlowed
		} else if h.inflight*2 >= a.cur {
			step := 1 / a.limit
			if a.cut == 0 {
				step = 1 // slow start
			}
			a.limit = min(a.limit+step, float64(a.ceiling))
		}
	case sigOverload:
		reason = LimitOverloaded
	case sigTimeout:
		reason = LimitTimedOut
	case sigReset:
		reason = LimitReset
	}
	if reason != LimitUnchanged {
		if o.start <= a.cut {
			return LimitChange{}, false // sent before the last decrease, which counted it
		}
		a.limit = max(a.limit*cfg.Backoff, 1)
		a.cut = end
	}
	if reason == LimitUnchanged {
		reason = LimitGrew
	}
	limit := s.capLimit(a.limit)
	if limit == a.cur {
		return LimitChange{}, false
	}
	return s.setLimitLocked(h, limit, reason, s.at(end))
}

// sample adds a success's round trip to the averages.
func (a *adaptiveState) sample(rtt time.Duration, now instant, window time.Duration) {
	if a.samples < shortSamples {
		a.samples++
	}
	a.short += (rtt - a.short) / time.Duration(a.samples)
	if time.Duration(now-a.baseAt) > window {
		a.base[1], a.base[0], a.baseAt = a.base[0], rtt, now
	} else if a.base[0] == 0 || rtt < a.base[0] {
		a.base[0] = rtt
	}
}

// slowed reports whether the short-term round trip is over tolerance times the baseline.
func (a *adaptiveState) slowed(tolerance float64) bool {
	if a.samples < shortSamples || math.IsInf(tolerance, 1) {
		return false
	}
	base := a.base[0]
	if a.base[1] > 0 && a.base[1] < base {
		base = a.base[1]
	}
	return float64(a.short) > tolerance*float64(base)
}

// setLimitLocked puts limit in force for h, and reports the change if there was one. A slot
// freed by a higher limit is offered to h's queue. It requires s.mu held.
func (s *Scheduler) setLimitLocked(h *host, limit int, reason LimitReason, now time.Time) (LimitChange, bool) {
	a := h.adapt
	old := a.cur
	if limit == old {
		return LimitChange{}, false
	}
	a.cur, a.reason = limit, reason
	if s.tracksFull {
		if h.inflight < limit {
			s.hostsFull += h.full.drain(now) // the host's slots are full no more
		} else if h.full.since.IsZero() {
			h.full.fill(now) // a lower limit filled them
		}
	}
	if limit > old {
		s.pushRingLocked(h)
		s.wakeLocked()
	}
	return LimitChange{Host: h.key, From: old, To: limit, Reason: reason, At: now}, true
}

// seedLocked sets h's adaptive limit to the concurrency quota a server announced, and caps it
// there until another quota is announced. It requires s.mu held.
func (s *Scheduler) seedLocked(h *host, quota int, now time.Time) (LimitChange, bool) {
	a := h.adapt
	ceiling := max(min(quota, s.adaptive.Max), 1)
	if ceiling == a.ceiling && a.limit <= float64(ceiling) {
		return LimitChange{}, false
	}
	a.ceiling, a.limit = ceiling, float64(ceiling)
	return s.setLimitLocked(h, s.capLimit(a.limit), LimitPolicy, now)
}

// limitChanged tells the Observers of c. It requires s.mu not held.
func (s *Scheduler) limitChanged(c LimitChange) {
	if fn := s.obs.LimitChanged; fn != nil {
		tell(fn, c) // the callback cannot crash the worker; it has no Future to fail
	}
}
