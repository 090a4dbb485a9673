package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Adaptive concurrency: each host's limit found from the outcomes of its requests, as TCP finds
// a connection's window: by what the server refuses, and by how much its round trips slow down.

// AdaptiveLimit tunes the per-host concurrency limits of WithAdaptiveHostLimitConfig.
//
// Each host's limit starts at Initial and moves between 1 and Max, as TCP's window does. An
// overload is a 429 or 503 response, a timeout or a 504, or a connection reset. Until the first
// overload, each success adds a slot: the limit doubles each round trip (the slow start). An
// overload of a request sent after the last decrease is a decrease: the limit is multiplied by
// Backoff and loses a slot at least, and goes down further to the capacity the host shows, if
// lower: one over the concurrency it serves (its successes per second times their round trip),
// or, at the end of the slow start, the concurrency the failed request was sent at. The
// overloads of requests sent before a decrease are of its burst, and lower nothing more; an
// overload that lowers nothing holds its slot until a success would have ended, so that a server
// that refuses at once is not asked again at once, and at a limit of 1 each one in a row holds it
// twice as long, up to a second.
//
// After a decrease, the limit grows back toward the one that failed, halving the distance each
// round trip, or, if the decrease came within two round trips of the one before (the limits in
// between failed too), by a slot each round trip. Then it probes that limit: one slot for 40
// successes for each overload that answered the last decrease, and half a slot a round trip at
// most, so that probing costs the host one response in 40 whether it refuses at once or after a
// round trip, and a refusal a round trip late comes before the limit has passed the one that
// failed. Once a request sent at that limit succeeds, the capacity has risen, and the limit
// grows by a slot the first round trip, then twice as many each round trip. It grows only while
// the host uses at least half of it.
//
// The latency signal, on unless Tolerance is infinite, is for servers that slow down before they
// fail. The successes sent since the last decrease are taken in rounds of 16 or more, each
// spanning a round trip and twice MinSlowdown at least, and a round's shortest round trip is
// what all its requests paid at least: a server's queue raises it, where jitter, and the
// client's own stalls, raise only some round trips. The baseline is the lowest, over the last
// Window or two, of the rounds' shortest round trips averaged over eight rounds or so. A round is
// slowed when it is over Tolerance times the baseline and over the baseline by MinSlowdown or
// more: a floor under what counts, so that loopback jitter and a busy client do not. Two slowed
// rounds in a row (one while the slow start grows the limit, or right after such a decrease)
// multiply the limit by what brings the round trip back to that target by Little's law, Backoff
// at most and a half at least, and the limit does not grow until a round is not slowed. Round
// trips are timed from the send to the end of the response: the time a request waits in the
// Scheduler is not the server's. A slowdown the limit does not cause (a client starved of
// processors, say) lowers it too, until the baseline, renewed each Window, takes it for the
// host's round trip.
//
// A zero field means its default, as documented on it; the zero AdaptiveLimit, with no Max,
// turns adaptive limits off.
type AdaptiveLimit struct {
	Max         int           // the highest limit; zero turns adaptive limits off
	Initial     int           // the limit a host starts at; zero means 8, or Max if lower
	Backoff     float64       // what a decrease multiplies the limit by at most, in (0, 1); zero means 0.9
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
// static limit. It configures a Scheduler.
func WithAdaptiveHostLimit(max int) Option {
	return WithAdaptiveHostLimitConfig(AdaptiveLimit{Max: max})
}

// WithAdaptiveHostLimitConfig is WithAdaptiveHostLimit with every knob of AdaptiveLimit. It
// configures a Scheduler.
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
		c.adaptive = &a
	})
}

// withDefaults returns a with its zero fields set to their defaults.
func (a AdaptiveLimit) withDefaults() AdaptiveLimit {
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
	return a
}

// WithLimitChanged makes the Scheduler call fn each time a host's adaptive limit changes, so
// that it can be exported to metrics. fn runs with no lock held, in a worker or in a goroutine
// that made other news (a caller's, as a full queue sheds), and should return quickly: the
// changes are told one at a time, in the order they were made, each going from where the one
// before it for its host went to. A panic in fn is recovered and ignored. It has no effect
// without WithAdaptiveHostLimit. It configures a Scheduler; it is an Observer's LimitChanged
// (see WithObserver).
func WithLimitChanged(fn func(LimitChange)) Option {
	return schedOption("WithLimitChanged", func(c *config) { c.observer = c.observer.And(Observer{LimitChanged: fn}) })
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
	start    instant // when the round trip was sent
	sig      signal
	sent     sendState // the host as it was sent
	answered bool      // counted in its host's answered until the attempt ends
}

// A sendState is what an observation notes of its host as the attempt is taken.
type sendState struct {
	load int    // the requests in flight to the host and not yet answered, the attempt's included
	done uint64 // the host's successes so far
}

// sendStateLocked returns what an attempt of h taken now notes of it; nothing if h has no
// adaptive limit. It requires s.mu held.
func (h *host) sendStateLocked() sendState {
	if h.adapt == nil {
		return sendState{}
	}
	return sendState{load: h.inflight - int(h.adapt.answered.Load()), done: h.adapt.done}
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
