package httpfutures

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// A Limiter paces requests: each request must have a token from it before it is sent. The
// Scheduler asks for a token only when the request could otherwise go (its host has a free slot
// and a worker is free), and then does the waiting itself, on one timer for all hosts: no
// goroutine and no slot is held while a token comes due.
//
// The Scheduler calls Reserve from one goroutine at a time, with non-decreasing times, so a
// Limiter need not order concurrent callers. Reserve may block briefly (a distributed Limiter
// makes a network round trip) but should not sleep until the token is due: it returns that time.
type Limiter interface {
	// Reserve takes a token for one request to host (a host name with an optional port) at time
	// now, and returns when the request may be sent; a time at or before now means at once. The
	// token is spent whether or not the request is sent. An error fails the request, as a
	// *LimiterError. ctx ends when the Scheduler closes.
	Reserve(ctx context.Context, host string, now time.Time) (time.Time, error)
}

// LimiterError is the error of a request that a Limiter refused.
type LimiterError struct {
	Host string
	Err  error
}

// Error names the host and the Limiter's error.
func (e *LimiterError) Error() string {
	return fmt.Sprintf("httpfutures: limiter for %s: %v", e.Host, e.Err)
}

// Unwrap returns the Limiter's error.
func (e *LimiterError) Unwrap() error { return e.Err }

// maxCatchUp bounds how far behind its schedule a RateLimiter catches up: a process stopped for
// longer than this (suspended, say) restarts its schedule rather than send a flood.
const maxCatchUp = 100 * time.Millisecond

// A RateLimiter is a Limiter on a golang.org/x/time/rate token bucket shared by every host:
// tokens are added at rate r per second, up to burst.
//
// Unlike calling rate.Limiter.Wait per request, a RateLimiter used by a Scheduler keeps an
// absolute schedule: while requests wait on it, each token is due at a time on a regular grid,
// and a wake-up that comes late (timers on Linux sleep at least about a millisecond, and a busy
// machine adds more) is handed every token that has come due since, not one. So 50,000 requests
// per second with a burst of 1 are kept within a fraction of a percent, where Wait per request
// reaches a fifth of that. What is owed is only what could have been sent: once nothing waits,
// the schedule restarts from the next request, as a token bucket does (an idle spell earns a
// burst, not a backlog), and tokens that came due while every slot was held for a while (a slow
// response) are lost likewise. A process stopped for longer than 100 ms restarts its schedule.
//
// The zero RateLimiter imposes no limit: every token is due at once. A RateLimiter is safe for
// concurrent use, though its accuracy needs non-decreasing times.
type RateLimiter struct {
	mu     sync.Mutex
	lim    *rate.Limiter
	last   time.Time // the time of the last reservation; requires mu held
	sched  time.Time // when the last reserved token is due; requires mu held
	behind bool      // the last token was not free at once: requests queue on the limiter
}

// NewRateLimiter returns a RateLimiter of r tokens per second with bursts of up to burst. A burst
// below 1 is taken as 1.
func NewRateLimiter(r rate.Limit, burst int) *RateLimiter {
	return &RateLimiter{lim: rate.NewLimiter(r, max(burst, 1))}
}

// Reserve implements Limiter. It never fails. Called directly, it takes the request to have
// arrived at now; a Scheduler tells it how long its request has waited.
func (l *RateLimiter) Reserve(_ context.Context, _ string, now time.Time) (time.Time, error) {
	return l.reserve(now, now, 0), nil
}

// Limit returns the rate in tokens per second; rate.Inf for the zero RateLimiter.
func (l *RateLimiter) Limit() rate.Limit {
	if l.lim == nil {
		return rate.Inf
	}
	return l.lim.Limit()
}

// Burst returns the burst; 0 for the zero RateLimiter.
func (l *RateLimiter) Burst() int {
	if l.lim == nil {
		return 0
	}
	return l.lim.Burst()
}

// reserve takes a token at now for a request that could have gone at notBefore at the earliest
// (when it was queued, or its host's pause ended), busy being how long, since the limiter's last
// reservation, no request could have gone for want of a slot. It returns when the token is due.
func (l *RateLimiter) reserve(now, notBefore time.Time, busy time.Duration) time.Time {
	if l.lim == nil {
		return now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := now
	if l.behind && now.After(l.sched) {
		// Requests have waited on the limiter: this token is due on its schedule, however late
		// the caller woke. Tokens that came due while no slot was free, or before the request
		// was there, are not owed: a token bucket would have lost them too.
		t = later(l.sched.Add(busy), notBefore)
		if t.After(now) || now.Sub(t) > maxCatchUp {
			t = now
		}
	}
	if t.Before(l.last) {
		t = l.last
	}
	r := l.lim.ReserveN(t, 1)
	delay := r.DelayFrom(t)
	due := t.Add(delay)
	l.last, l.sched, l.behind = t, due, delay > 0
	return due
}

// parseRetryAfter reads a Retry-After value: a number of seconds, or an HTTP-date in any of the
// three forms HTTP allows. A date in the past means no wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) {
			return math.MaxInt64, true // too large to represent: capped by the caller
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseRateLimit reads the remaining quota and the time to its reset from the RateLimit header
// field of draft-ietf-httpapi-ratelimit-headers (`RateLimit: "default";r=50;t=30`), taking the
// most restrictive of several policies, or else from the older RateLimit-Remaining and
// RateLimit-Reset fields. A malformed field is ignored as a whole. RateLimit-Policy describes
// the quota and is not needed here.
func parseRateLimit(hdr http.Header) (remaining int64, reset time.Duration, ok bool) {
	if v := hdr.Values("RateLimit"); len(v) > 0 {
		return parseRateLimitField(strings.Join(v, ","))
	}
	rem, rst := hdr.Get("RateLimit-Remaining"), hdr.Get("RateLimit-Reset")
	if rem == "" || rst == "" || !isDigits(strings.TrimSpace(rem)) || !isDigits(strings.TrimSpace(rst)) {
		return 0, 0, false
	}
	r, err1 := strconv.ParseInt(strings.TrimSpace(rem), 10, 64)
	t, err2 := strconv.ParseInt(strings.TrimSpace(rst), 10, 64)
	if err1 != nil || err2 != nil || t > math.MaxInt64/int64(time.Second) {
		return 0, 0, false
	}
	return r, time.Duration(t) * time.Second, true
}

// parseRateLimitField parses a structured-field list of policies, each an item with parameters
// r (remaining) and t (seconds to reset), and returns the policy with the slowest pace.
func parseRateLimitField(v string) (remaining int64, reset time.Duration, ok bool) {
	best := math.Inf(1)
	for member := range strings.SplitSeq(v, ",") {
		member = strings.TrimSpace(member)
		if member == "" {
			continue
		}
		parts := strings.Split(member, ";")
		if !validItem(strings.TrimSpace(parts[0])) {
			return 0, 0, false
		}
		r, t := int64(-1), int64(-1)
		for _, p := range parts[1:] {
			k, val, found := strings.Cut(strings.TrimSpace(p), "=")
			if !found || !isDigits(val) {
				if k == "r" || k == "t" {
					return 0, 0, false
				}
				continue // another parameter, or a boolean one
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n > math.MaxInt64/int64(time.Second) {
				return 0, 0, false
			}
			switch k {
			case "r":
				r = n
			case "t":
				t = n
			}
		}
		if r < 0 || t < 0 {
			return 0, 0, false
		}
		pace := math.Inf(1)
		if t > 0 {
			pace = float64(r) / float64(t)
		}
		if r == 0 {
			pace = -float64(t) // exhausted: the longest wait is the most restrictive
		}
		if pace < best {
			best, remaining, reset, ok = pace, r, time.Duration(t)*time.Second, true
		}
	}
	return remaining, reset, ok
}

// validItem reports whether s is a structured-field token or string naming a policy.
func validItem(s string) bool {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return !strings.ContainsAny(s[1:len(s)-1], "\"\\")
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("*_-.:/%!#$&'+^`|~", c) >= 0) {
			return false
		}
	}
	return true
}
