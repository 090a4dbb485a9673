package httpfutures

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"time"
)

// Adaptive throttling, as the Google SRE book describes it ("Handling Overload"): a client that
// sees its requests refused as overloaded rejects some of its own new ones, so that a backend
// already refusing is not sent more to refuse, retries included.

// ErrThrottled is the error of a request that its host's adaptive throttle rejected
// (WithAdaptiveThrottle): the request was never sent.
var ErrThrottled = errors.New("httpfutures: throttled")

// AdaptiveThrottle configures the adaptive throttle each host has with WithAdaptiveThrottle.
//
// Each host counts, over Window, its requests (the attempts that ended, and the requests the
// throttle rejected) and its accepts (the attempts its server did not refuse as overloaded, as
// IsOverload judges them). A new request to the host, and a retry, is rejected at once with
// ErrThrottled with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// so that while the server accepts what it is sent, nothing is rejected, and once it refuses
// more than 1 − 1/K of it, the host is sent about K requests per accept: the rejections cost the
// server nothing, where its own refusals cost it a request each. Attempts its caller canceled,
// or that a Close ended, are not counted.
//
// A zero field means its default, as documented on it; the zero AdaptiveThrottle is the defaults.
type AdaptiveThrottle struct {
	// K is how many requests per accept a host is sent before its throttle rejects any: 2 lets
	// twice as many through as the server accepts; lower is more aggressive. It must be 1 or
	// more. Zero means 2.
	K float64
	// Window is how far back the throttle counts. Zero means 2 minutes, as in the SRE book.
	Window time.Duration
	// IsOverload judges an attempt: whether its server refused it as overloaded. It must not read
	// nor close the response's body. Nil means DefaultIsOverload.
	IsOverload func(resp *http.Response, err error) bool
}

// The defaults of an AdaptiveThrottle, for its zero fields.
const (
	defaultThrottleK      = 2
	defaultThrottleWindow = 2 * time.Minute
)

// DefaultIsOverload is the IsOverload of an AdaptiveThrottle that sets none: an attempt was
// refused as overloaded if it got a 429 or a 503 response, or no response (a refused or reset
// connection, a timeout). Other statuses, 5xx included, are the server answering.
func DefaultIsOverload(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
}

// WithAdaptiveThrottle gives each host an adaptive throttle configured by a; see
// AdaptiveThrottle. The requests it rejects fail with ErrThrottled, unsent, and count in
// Stats.Shed; a retry it rejects ends the request with its last attempt's response (or a
// *RetryError if it had none). HostStats.Throttle shows each host's rejection probability, with
// every attempt of a resolved Future counted. It configures a Scheduler.
func WithAdaptiveThrottle(a AdaptiveThrottle) Option {
	nonNegative("WithAdaptiveThrottle Window", int64(a.Window))
	if a.K != 0 && !(a.K >= 1 && !math.IsInf(a.K, 1)) {
		panic(fmt.Sprintf("httpfutures: WithAdaptiveThrottle K: %v is not 1 or more", a.K))
	}
	return schedOption("WithAdaptiveThrottle", func(c *config) { c.throttle = &a })
}

// withDefaults returns a with its zero fields set to their defaults.
func (a AdaptiveThrottle) withDefaults() AdaptiveThrottle {
	if a.K == 0 {
		a.K = defaultThrottleK
	}
	if a.Window == 0 {
		a.Window = defaultThrottleWindow
	}
	if a.IsOverload == nil {
		a.IsOverload = DefaultIsOverload
	}
	return a
}

// rejection returns the probability that the throttle of g rejects a request at now.
func (s *Scheduler) rejection(g *hostGuard, now time.Time) float64 {
	reqs, accepts := g.throttle.sums(now)
	return max(0, (float64(reqs)-s.throttle.K*float64(accepts))/float64(reqs+1))
}

// throttleLocked reports whether the throttle of g rejects a request at now, and counts the
// rejection as a request if it does. It requires s.mu held.
func (s *Scheduler) throttleLocked(g *hostGuard, now time.Time) bool {
	p := s.rejection(g, now)
	if p == 0 || rand.Float64() >= p {
		return false
	}
	g.throttle.add(now, 1, 0)
	return true
}

// throttleRetry reports whether h's throttle rejects a retry now: the retry of a running request,
// whose worker does not hold s.mu.
func (s *Scheduler) throttleRetry(h *host) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttleLocked(h.guard, time.Now())
}
