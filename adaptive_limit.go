package httpfutures

import (
	"math"
	"sync/atomic"
	"time"
)

// The adaptive limit of a host: its estimate, moved by the outcomes of its requests as
// AdaptiveLimit describes, the rounds of its latency signal, and the slots its failures hold.

// adaptiveState is a host's adaptive limit. It is made only when the Scheduler has adaptive
// limits, and is guarded by Scheduler.mu.
type adaptiveState struct {
	estimate // the limit, and how it moves
	latency  // the latency signal
	failHold // the slots held by failures that lowered nothing

	// answered is the attempts whose round trip has returned and that their workers have not
	// ended yet: what the server is done with, though its slots are still taken. The worker
	// that got the answer adds itself without Scheduler.mu; the rest is done with it held.
	answered atomic.Int32
}

// estimate is a host's adaptive limit and how it moves: AIMD with a slow start, probing back to
// the limit that last failed. It is guarded by Scheduler.mu.
type estimate struct {
	limit    float64     // the estimate, in [1, ceiling]
	cur      int         // the limit in force: limit's whole part, and no more than WithHostLimit
	ceiling  int         // Max, or the server's concurrency quota if lower
	reason   LimitReason // why cur last changed
	cut      instant     // the last decrease: what was sent before it is of its burst; 0 if none
	steady   bool        // the slow start is over: a decrease, or a slowed round, ended it
	peak     float64     // the limit that last failed, probed slowly; 0 once passed
	crawl    bool        // the last decrease followed the one before within two round trips
	burst    int         // the failures that answered the last decrease
	bySlow   bool        // the last decrease was the latency signal's
	gain     float64     // the slots added each round trip past the peak
	gainFrom float64     // the estimate gain last doubled at
}

// latency is a host's latency signal: rounds of the successes sent since the last decrease,
// each one's shortest round trip held against a baseline. It is guarded by Scheduler.mu.
type latency struct {
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
}

// failHold is the slots a host's failures hold when they lower nothing, so that a server that
// refuses at once is not sent the next request at once. It is guarded by Scheduler.mu.
type failHold struct {
	held    int           // how many
	heldTo  instant       // when they are given back, all together
	holdIdx int           // position in Scheduler.holds; -1 if none is held
	backoff time.Duration // how long the last failure in a row at a limit of 1 held its slot; 0 if none
}

// newAdaptiveState returns the adaptive limit of a new host. It requires s.adaptive set.
func (s *Scheduler) newAdaptiveState() *adaptiveState {
	a := &adaptiveState{
		estimate: estimate{limit: float64(s.adaptive.Initial), ceiling: s.adaptive.Max},
		failHold: failHold{holdIdx: -1},
	}
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

// adaptLocked moves h's adaptive limit by what an attempt of it that ended at end observed. A
// failure that lowers nothing holds the attempt's slot for a while. It requires s.mu held, and
// the attempt's slot not yet given back.
func (s *Scheduler) adaptLocked(h *host, o observation, end instant) {
	a, cfg := h.adapt, s.adaptive
	if a == nil || o.sig == sigNone {
		return
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
		return
	}
	s.setLimitLocked(h, limit, reason, s.at(end))
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
	case a.peak > 0 && a.limit < a.peak-1 && a.crawl:
		// Back toward the limit that failed twice in a row: a slot each round trip.
		step = 1 / max(a.limit, roundSamples)
	case a.peak > 0 && a.limit < a.peak-1:
		// Back toward the limit that last failed, halving the distance each round trip.
		step = max(1, (a.peak-1-a.limit)/2) / max(a.limit, roundSamples)
	case a.peak > 0:
		// At the limit that last failed: probeCost successes a slot for each failure that
		// answered it, and half a slot a round trip at most, so that a failure a round trip
		// late still answers the probe before the estimate has passed it.
		step = min(1/float64(probeCost*a.burst), 0.5/max(a.limit, roundSamples))
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
// host's successes then lag its limit by a round trip. A decrease within two round trips of the
// one before shows the limits in between too high as well, not a failure that came by chance:
// the estimate then climbs back toward the limit that failed by a slot a round trip, not halfway
// each round trip, which would undo half of each decrease. The failures of the requests sent
// before the decrease are of its burst, which it answered.
func (a *adaptiveState) decrease(ofBurst bool, end instant, factor float64, load int) bool {
	if ofBurst {
		a.burst++
		return false
	}
	again := a.cut != 0 && !a.bySlow && time.Duration(end-a.cut) < 2*a.srtt
	old, steady := a.limit, a.steady
	a.cut, a.steady, a.bySlow, a.peak, a.burst, a.crawl = end, true, false, float64(a.cur), 1, again
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
// during a round trip, over this round and the last, times their mean round trip; zero if not
// known. The round trip is the whole of a slot's, from the send to the end of the response.
func (a *adaptiveState) served() float64 {
	return max(a.rate[0], a.rate[1]) * float64(a.srtt)
}

// slowed lowers the estimate for a slowed round that ended at end: a new decrease, by factor and
// at least a slot.
func (a *adaptiveState) slowed(end instant, factor float64) {
	a.cut, a.steady, a.bySlow, a.peak = end, true, true, 0
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

// setLimitLocked puts limit in force for h, and leaves the change, if there was one, to be told
// (see failFast). A slot freed by a higher limit is offered to h's queue. It requires s.mu held.
func (s *Scheduler) setLimitLocked(h *host, limit int, reason LimitReason, now time.Time) {
	a := h.adapt
	old := a.cur
	if limit == old {
		return
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
	if s.obs.LimitChanged != nil {
		s.limits = append(s.limits, LimitChange{Host: h.key, From: old, To: limit, Reason: reason, At: now})
	}
}

// seedLocked sets h's adaptive limit to the concurrency quota a server announced, and caps it
// there until another quota is announced. It requires s.mu held.
func (s *Scheduler) seedLocked(h *host, quota int, now time.Time) {
	a := h.adapt
	ceiling := max(min(quota, s.adaptive.Max), 1)
	if ceiling == a.ceiling && a.limit <= float64(ceiling) {
		return
	}
	a.ceiling, a.limit = ceiling, float64(ceiling)
	s.setLimitLocked(h, s.capLimit(a.limit), LimitPolicy, now)
}
