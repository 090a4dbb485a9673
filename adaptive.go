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

// Adaptive concurrency: each host's limit found from the outcomes of its requests, as TCP finds
// a connection's window: by what the server refuses, and by how much its round trips slow down.

// AdaptiveLimit tunes the per-host concurrency limits of WithAdaptiveHostLimitConfig.
//
// Each host's limit starts at Initial and moves between 1 and Max, as TCP's window does (AIMD).
// Until the first overload (a 429 or 503 response, a timeout or 504, a connection reset), each
// success adds a slot: the limit doubles each round trip. An overload then multiplies the limit
// by Backoff, and takes at least one slot. The failures of requests sent before that decrease
// are of the same burst: each takes one slot more, down to half the limit the burst found, so that
// a server that refuses k requests of a burst is offered k fewer. Afterwards, a slot is added for
// each limit's worth of successes (one per round trip, and one per 16 successes at least), and,
// near the limit that last failed, one per 32 successes at least: a server that refuses at once
// beyond its capacity is probed once in that many. A failure that lowers nothing, at the floor of 1
// or of its burst, holds its slot until a success would have ended, so that a server failing at
// once is not asked again at once; at a limit of 1 the hold doubles with each failure in a row,
// up to a second. The limit grows only while the host uses at least half of it.
//
// The latency signal, on unless Tolerance is infinite, is for servers that slow down before they
// fail. Successes sent since the last decrease are taken in rounds of 16 or more, each spanning a
// round trip, and a round's shortest round trip is what every request of it paid at least: a
// server's queue raises it, where jitter, and the client's own delays, raise only some round
// trips. Averaged over the last two rounds, it is held against the baseline: its lowest over the
// last Window or two. A round is slowed when it is over Tolerance times the baseline and over the
// baseline by MinSlowdown or more; the limit is then multiplied by the baseline's target over it
// (at most by Backoff, at least by a half), and does not grow again until a round is not slowed.
// Round trips are timed from the send to the response's end: the time a request waits in the
// Scheduler is not the server's.
//
// A zero field means its default, as documented on it; the zero AdaptiveLimit, with no Max,
// turns adaptive limits off.
type AdaptiveLimit struct {
	Max         int           // the highest limit; zero turns adaptive limits off
	Initial     int           // the limit a host starts at; zero means 8, or Max if lower
	Backoff     float64       // what a decrease multiplies the limit by, in (0, 1); zero means 0.9
	Tolerance   float64       // how much slower than the baseline is an overload, over 1; zero means 1.5; math.Inf(1) turns the latency signal off
	Window      time.Duration // how long a round stays in the baseline; zero means 10s
	MinSlowdown time.Duration // how much slower than the baseline, at least, is an overload; zero means 20ms
}

// The defaults of an AdaptiveLimit, for its zero fields.
const (
	defaultInitial     = 8
	defaultBackoff     = 0.9
	defaultTolerance   = 1.5
	defaultRTTWindow   = 10 * time.Second
	defaultMinSlowdown = 20 * time.Millisecond
)

// roundSamples is how many successes a round of the latency signal takes at least, and how many
// successes at least add a slot after the slow start.
const roundSamples = 16

// probeCost is how many successes, for each failure that answered the last probe, a slot costs
// near the limit that last failed: probes cost a host one response in 40 or fewer, whether it
// refuses at once (a failure each) or takes a round trip to (a round trip's worth).
const probeCost = 40

// maxHold is the longest a failure holds its slot.
const maxHold = time.Second

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
	nonNegative("WithAdaptiveHostLimit MinSlowdown", int64(a.MinSlowdown))
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
		if a.MinSlowdown == 0 {
			a.MinSlowdown = defaultMinSlowdown
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
	return schedOption("WithLimitChanged", func(c *config) { c.limitChanged = fn })
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
	sent  sendState // the host as it was sent
}

// A sendState is what an observation notes of its host as the attempt is taken.
type sendState struct {
	load int    // the requests in flight to the host, the attempt's included
	done uint64 // the host's successes so far
}

// sendStateLocked returns what an attempt of h taken now notes of it. It requires s.mu held.
func (h *host) sendStateLocked() sendState {
	st := sendState{load: h.inflight}
	if h.adapt != nil {
		st.done = h.adapt.done
	}
	return st
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
	// The limit.
	limit    float64     // the estimate, in [1, ceiling]
	cur      int         // the limit in force: limit's whole part, and no more than WithHostLimit
	ceiling  int         // Max, or the server's concurrency quota if lower
	reason   LimitReason // why cur last changed
	cut      instant     // the last decrease: what was sent before it is of its burst; 0 if none
	steady   bool        // the slow start is over: a decrease, or a slowed round, ended it
	from     float64     // the estimate the last decrease found
	peak     float64     // the limit that last failed, probed slowly; 0 once passed
	burst    int         // the failures that answered the last decrease
	bySlow   bool        // the last decrease was the latency signal's
	gain     float64     // the slots added each round trip past the peak
	gainFrom float64     // the estimate gain last doubled at

	// The latency signal: rounds of the successes sent since the last decrease.
	roundAt instant          // when the round's first success ended
	roundN  int              // its successes
	round   round            // its shortest round trip
	last    [2]round         // the last round and the one before; zero if none since the last decrease
	mean    time.Duration    // the rounds' shortest round trips, averaged over the last eight or so
	slow    bool             // the last round lowered the limit: the limit does not grow until one does not
	base    [2]time.Duration // the lowest mean of this window and of the one before; zero if none
	baseAt  instant          // when this window began
	srtt    time.Duration    // the mean round trip of successes, over the last eight or so
	done    uint64           // the successes so far
	rate    [2]float64       // the most successes per nanosecond during a round trip, in this round and the last

	// The slots held by failures that lowered nothing.
	held    int           // how many
	heldTo  instant       // when they are given back, all together
	holdIdx int           // position in Scheduler.holds; -1 if none is held
	backoff time.Duration // how long the last failure in a row at a limit of 1 held its slot; 0 if none
}

// newAdaptiveState returns the adaptive limit of a new host. It requires s.adaptive set.
func (s *Scheduler) newAdaptiveState() *adaptiveState {
	a := &adaptiveState{limit: float64(s.adaptive.Initial), ceiling: s.adaptive.Max, holdIdx: -1}
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
// reports the change, if the limit in force changed. A failure that lowers nothing holds the
// attempt's slot for a while. It requires s.mu held, and the attempt's slot not yet given back.
func (s *Scheduler) adaptLocked(h *host, o observation, end instant) (LimitChange, bool) {
	a, cfg := h.adapt, s.adaptive
	if a == nil || o.sig == sigNone {
		return LimitChange{}, false
	}
	rtt := time.Duration(end - o.start)
	var reason LimitReason
	switch o.sig {
	case sigSuccess:
		reason = a.succeeded(cfg, rtt, o, end, h.inflight)
	case sigOverload, sigTimeout, sigReset:
		reason = [...]LimitReason{sigOverload: LimitOverloaded, sigTimeout: LimitTimedOut, sigReset: LimitReset}[o.sig]
		if !a.decrease(o.start <= a.cut, end, cfg.Backoff, o.sent.load) || s.capLimit(a.limit) == a.cur {
			s.holdLocked(h, rtt, end)
		}
	}
	limit := s.capLimit(a.limit)
	if reason == LimitUnchanged || limit == a.cur {
		return LimitChange{}, false
	}
	return s.setLimitLocked(h, limit, reason, s.at(end))
}

// succeeded learns from a success o of round trip rtt that ended at end with inflight requests to
// the host, and returns why the estimate moved: LimitSlowed if a round ended slowed, LimitGrew if
// it grew, or LimitUnchanged.
func (a *adaptiveState) succeeded(cfg *AdaptiveLimit, rtt time.Duration, o observation, end instant, inflight int) LimitReason {
	a.backoff = 0
	if a.srtt == 0 {
		a.srtt = rtt
	} else {
		a.srtt += (rtt - a.srtt) / 8
	}
	a.done++
	a.rate[0] = max(a.rate[0], float64(a.done-o.sent.done)/float64(rtt)) // its own success, and those during its round trip
	if a.peak > 0 && !a.bySlow && o.start > a.cut && float64(o.sent.load) >= a.peak {
		a.passPeak() // what failed there succeeds now
	}
	if o.start > a.cut && a.sample(cfg, rtt, o.sent.load, end) {
		target, ok := a.target(cfg)
		// While the slow start grows the limit, one slowed round ends it. Otherwise it takes
		// two in a row, as one may be the client's own stall, or one after a decrease for the
		// same reason.
		growing := !a.steady && a.limit < float64(a.ceiling)
		a.slow = ok && a.last[0].min > target && (growing || a.slow || a.last[1].min > target)
		if a.slow {
			r := a.last[0]
			if a.last[1].min > 0 && a.last[1].min < r.min {
				r = a.last[1]
			}
			a.slowed(end, a.slowdown(r, target, cfg.Backoff))
			return LimitSlowed
		}
	}
	if a.slow || inflight*2 < a.cur {
		return LimitUnchanged
	}
	step := 1.0 // the slow start
	switch {
	case !a.steady:
	case a.peak > 0 && a.limit < a.peak-1:
		// Back toward the limit that last failed, halving the distance each round trip.
		step = max(1, (a.peak-1-a.limit)/2) / max(a.limit, roundSamples)
	case a.peak > 0:
		step = 1 / float64(probeCost*a.burst)
	default:
		// Past it, or after a slowdown: a slot each round trip, and, past a refusal, twice
		// as many each round trip, up to half the limit.
		step = a.gain / max(a.limit, roundSamples)
		if !a.bySlow && a.limit >= a.gainFrom+a.gain {
			a.gainFrom, a.gain = a.limit, min(2*a.gain, max(1, a.limit/2))
		}
	}
	a.limit = min(a.limit+step, float64(a.ceiling))
	if a.peak > 0 && a.limit >= a.peak+1 {
		a.passPeak()
	}
	return LimitGrew
}

// passPeak forgets the limit that last failed, now passed: the capacity rose.
func (a *adaptiveState) passPeak() {
	a.peak, a.gain, a.gainFrom = 0, 1, a.limit
}

// decrease lowers the estimate for a failure of a request sent at load, before the last decrease
// (ofBurst) or after it, that ended at end, and reports whether it did. A failure of a request
// sent after the last decrease is a new decrease: it multiplies the estimate by factor and takes
// at least a slot; and if the host's capacity, as far as the failure shows it, is lower still,
// it takes the estimate down to it, and makes one over it the limit that failed (else the limit
// in force is). That capacity is one over the concurrency the host serves, if over a quarter of
// the estimate, or, if the failure ends the slow start, its load, if over half of it: the
// host's successes then lag its limit by a round trip. The failures of the requests sent before
// the decrease are of its burst, which it answered.
func (a *adaptiveState) decrease(ofBurst bool, end instant, factor float64, load int) bool {
	if ofBurst {
		a.burst++
		return false
	}
	old, steady := a.limit, a.steady
	a.from, a.cut, a.steady, a.bySlow, a.peak, a.burst = a.limit, end, true, false, float64(a.cur), 1
	a.limit = max(min(a.limit*factor, a.limit-1), 1)
	c := 0.0
	if served := a.served(); served > 0 && served+1 > old/4 {
		c = served + 1
	}
	if l := float64(load); !steady && l > old/2 {
		c = max(c, l)
	}
	if c > 0 && c < a.limit {
		a.limit, a.peak = c, min(a.peak, c+1)
	}
	a.roundN, a.last, a.gain, a.gainFrom = 0, [2]round{}, 1, a.limit // rounds take only what is sent after the decrease
	return a.limit < old
}

// served returns the concurrency the host serves, by Little's law: the most successes per second
// during a round trip, over this round and the last, times the shortest round trip of either;
// zero if not known.
func (a *adaptiveState) served() float64 {
	rtt := a.round.min
	if a.roundN == 0 || a.last[0].min > 0 && a.last[0].min < rtt {
		rtt = a.last[0].min
	}
	return max(a.rate[0], a.rate[1]) * float64(rtt)
}

// slowed lowers the estimate for a slowed round that ended at end: a new decrease, by factor and
// at least a slot.
func (a *adaptiveState) slowed(end instant, factor float64) {
	a.from, a.cut, a.steady, a.bySlow, a.peak = a.limit, end, true, true, 0
	a.limit = max(min(a.limit*factor, a.limit-1), 1)
	a.roundN, a.last, a.gain, a.gainFrom = 0, [2]round{}, 1, a.limit
}

// A round is what the latency signal keeps of a round trip's worth of successes.
type round struct {
	min  time.Duration // the shortest round trip among them; zero for no round
	load int           // the most requests in flight to the host as one was sent
}

// sample adds the round trip rtt of a success sent at load that ended at end, sent since the
// last decrease, to the round, and reports whether that ended the round: it has roundSamples
// successes or more and spans a round trip, or, during the slow start, has half as many. An
// ended round's shortest round trip goes into the mean, and the mean into the baseline.
func (a *adaptiveState) sample(cfg *AdaptiveLimit, rtt time.Duration, load int, end instant) bool {
	if a.roundN == 0 {
		a.roundAt, a.round = end, round{rtt, load}
	}
	a.round.min, a.round.load = min(a.round.min, rtt), max(a.round.load, load)
	a.roundN++
	n := roundSamples
	if !a.steady {
		n /= 2
	}
	if a.roundN < n || time.Duration(end-a.roundAt) < max(a.srtt, 2*cfg.MinSlowdown) {
		return false
	}
	a.roundN = 0
	a.last[1], a.last[0] = a.last[0], a.round
	a.rate[1], a.rate[0] = a.rate[0], 0
	if a.mean == 0 {
		a.mean = a.round.min
	} else {
		a.mean += (a.round.min - a.mean) / 8
	}
	if time.Duration(end-a.baseAt) > cfg.Window {
		a.base[1], a.base[0], a.baseAt = a.base[0], a.mean, end
	} else if a.base[0] == 0 || a.mean < a.base[0] {
		a.base[0] = a.mean
	}
	return true
}

// slowdown returns what a decrease for the slowed round r multiplies the estimate by: what brings
// the round trip back to target by Little's law (r's concurrency, times target over its round
// trip), at most backoff and at least a half.
func (a *adaptiveState) slowdown(r round, target time.Duration, backoff float64) float64 {
	load := a.limit
	if r.load > 0 {
		load = float64(r.load)
	}
	return max(min(load*float64(target)/float64(r.min)/a.limit, backoff), 0.5)
}

// target returns the round trip over which a round is slowed: Tolerance times the baseline, and
// MinSlowdown over it; false if the latency signal is off.
func (a *adaptiveState) target(cfg *AdaptiveLimit) (time.Duration, bool) {
	if math.IsInf(cfg.Tolerance, 1) {
		return 0, false
	}
	base := a.base[0]
	if a.base[1] > 0 && a.base[1] < base {
		base = a.base[1]
	}
	return max(time.Duration(cfg.Tolerance*float64(base)), base+cfg.MinSlowdown), true
}

// holdLocked keeps a slot of h, whose request failed after rtt without lowering the limit in
// force, until a success would have ended: the host's mean round trip of successes after the
// send. At a limit of 1, each failure in a row holds it twice as long as the one before, from that
// round trip (or a millisecond, if no success is known) up to maxHold. The slots held are given
// back together, by the pacer. It requires s.mu held.
func (s *Scheduler) holdLocked(h *host, rtt time.Duration, end instant) {
	a := h.adapt
	d := a.srtt
	if a.cur == 1 {
		if a.backoff == 0 {
			a.backoff = max(a.srtt, time.Millisecond)
		} else {
			a.backoff = min(2*a.backoff, maxHold)
		}
		d = a.backoff
	}
	if d <= rtt {
		return
	}
	a.held++
	if to := end + instant(d-rtt); to > a.heldTo {
		a.heldTo = to
	}
	if a.holdIdx < 0 {
		s.holds.push(h)
	} else {
		s.holds.fix(a.holdIdx)
	}
	s.wakePacerLocked(s.at(a.heldTo))
}

// releaseHoldsLocked gives back the slots held until now, and returns when the next are to be;
// zero if no slot is held. It requires s.mu held.
func (s *Scheduler) releaseHoldsLocked(now time.Time) time.Time {
	for s.holds.len() > 0 {
		h := s.holds.peek()
		if at := s.at(h.adapt.heldTo); at.After(now) {
			return at
		}
		s.holds.pop()
		h.adapt.held = 0
		if s.pushRingLocked(h) {
			s.wakeLocked()
		}
	}
	return time.Time{}
}

// byHold orders the hosts holding slots by when they give them back.
type byHold struct{}

func (byHold) less(a, b *host) bool { return a.adapt.heldTo < b.adapt.heldTo }
func (byHold) pos(h *host) *int     { return &h.adapt.holdIdx }

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

// limitChanged tells the WithLimitChanged callback of c. It requires s.mu not held.
func (s *Scheduler) limitChanged(c LimitChange) {
	if s.onLimit == nil {
		return
	}
	defer func() { recover() }() // the callback cannot crash the worker; it has no Future to fail
	s.onLimit(c)
}
