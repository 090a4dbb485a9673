package httpfutures

import (
	"fmt"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// Defaults used where an option is not given or is given as zero.
const (
	DefaultWorkers       = 8
	DefaultMaxBodySize   = 32 << 20 // 32 MiB
	DefaultMaxRetryAfter = 5 * time.Minute
	DefaultHostIdle      = time.Minute

	// DefaultWorkerIdleTimeout is how long a Scheduler's goroutines wait for work before they
	// end, unless WithWorkerIdleTimeout says otherwise.
	DefaultWorkerIdleTimeout = 10 * time.Second
)

// An Option configures a Scheduler, an AsyncTransport or a Session. Each option's doc says which
// it configures:
//
//   - A Scheduler's options (the workers, limits and limiters, backpressure, adaptive limits,
//     circuit breakers and throttles, idle timeouts, observers) configure the Scheduler that NewScheduler returns, or the one that
//     NewTransport and NewSession make for themselves. Given beside WithScheduler, which shares a
//     Scheduler configured already, they panic, naming the option: the two would disagree.
//   - A transport's options (hooks, body handling, streaming, retries, hedging, WithScheduler)
//     configure the AsyncTransport of NewTransport, and of NewSession.
//   - A session's options (WithClient) configure NewSession alone.
//
// An option given to a constructor it does not configure is ignored: a transport's options by
// NewScheduler, WithClient by NewTransport and NewScheduler. A zero value given to an option
// means its default, and newConfig fills every default in, in one place; a negative value, or
// one out of its range, panics with a message naming the option.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config gathers every option; each constructor reads the part it owns.
type config struct {
	// Scheduler.
	workers        int
	hostLimit      int
	queueLimit     int
	rate           rate.Limit
	burst          int
	hostRate       rate.Limit
	hostBurst      int
	limiters       []Limiter
	maxRetryAfter  time.Duration
	noBackpressure bool
	hostIdle       time.Duration
	workerIdle     time.Duration
	adaptive       *AdaptiveLimit    // WithAdaptiveHostLimit; nil if off
	observer       Observer          // WithObserver, WithLimitChanged: every one given, together
	breaker        *CircuitBreaker   // WithCircuitBreaker; nil if off
	throttle       *AdaptiveThrottle // WithAdaptiveThrottle; nil if off
	schedOpts      []string          // names of scheduler options given, to reject them beside WithScheduler

	// Transport.
	scheduler       *Scheduler
	hooks           Hooks
	maxBodySize     int64
	stream          bool
	retry           *RetryPolicy
	hedgeDelay      time.Duration // WithHedge
	hedgeMax        int
	hedgePercentile float64 // WithHedgePercentile

	// Session.
	client *http.Client
}

func newConfig(opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		if o != nil {
			o.apply(c)
		}
	}
	if c.scheduler != nil && len(c.schedOpts) > 0 {
		panic(fmt.Sprintf("httpfutures: %s cannot be combined with WithScheduler: configure the shared Scheduler instead", c.schedOpts[0]))
	}
	if c.workers == 0 {
		c.workers = DefaultWorkers
	}
	if c.maxBodySize == 0 {
		c.maxBodySize = DefaultMaxBodySize
	}
	if c.maxRetryAfter == 0 {
		c.maxRetryAfter = DefaultMaxRetryAfter
	}
	if c.hostIdle == 0 {
		c.hostIdle = DefaultHostIdle
	}
	if c.workerIdle == 0 {
		c.workerIdle = DefaultWorkerIdleTimeout
	}
	if c.retry != nil {
		p := c.retry.withDefaults()
		c.retry = &p
	}
	if c.adaptive != nil {
		a := c.adaptive.withDefaults()
		c.adaptive = &a
	}
	if c.breaker != nil {
		b := c.breaker.withDefaults()
		c.breaker = &b
	}
	if c.throttle != nil {
		t := c.throttle.withDefaults()
		c.throttle = &t
	}
	if c.hedgeMax > 0 && c.hedgePercentile == 0 {
		c.hedgePercentile = defaultHedgePercentile
	}
	return c
}

func nonNegative(name string, v int64) {
	if v < 0 {
		panic(fmt.Sprintf("httpfutures: %s: negative value %d", name, v))
	}
}

func schedOption(name string, f func(*config)) Option {
	return optionFunc(func(c *config) {
		c.schedOpts = append(c.schedOpts, name)
		f(c)
	})
}

// WithWorkers sets how many round trips may run at once, over all hosts. The default is 8, as in
// requests-futures. Each worker is a goroutine that the Scheduler owns. It configures a Scheduler.
func WithWorkers(n int) Option {
	nonNegative("WithWorkers", int64(n))
	return schedOption("WithWorkers", func(c *config) { c.workers = n })
}

// WithHostLimit sets how many round trips may run at once to any one host. Zero, the default,
// means no limit other than the workers. It configures a Scheduler.
func WithHostLimit(n int) Option {
	nonNegative("WithHostLimit", int64(n))
	return schedOption("WithHostLimit", func(c *config) { c.hostLimit = n })
}

// WithQueueLimit bounds the number of queued (not yet started) requests, retries waiting
// included. A request submitted while n are queued fails at once with ErrQueueFull, unless its
// priority (ContextWithPriority) is higher than that of a request queued for its first attempt:
// then the newest of the lowest priority queued fails with ErrQueueFull instead, never sent, and
// the new request takes its place. Zero, the default, means no bound. It configures a Scheduler.
func WithQueueLimit(n int) Option {
	nonNegative("WithQueueLimit", int64(n))
	return schedOption("WithQueueLimit", func(c *config) { c.queueLimit = n })
}

// WithRateLimit paces all requests together to r per second with bursts of up to burst. A zero r
// means no limit; a zero burst means 1. The pacing keeps an absolute schedule, so high rates are
// kept accurately despite the coarse granularity of timers. It configures a Scheduler.
func WithRateLimit(r rate.Limit, burst int) Option {
	checkRate("WithRateLimit", r, burst)
	return schedOption("WithRateLimit", func(c *config) { c.rate, c.burst = r, max(burst, 1) })
}

// WithHostRateLimit paces the requests to each host on its own to r per second with bursts of up
// to burst. A zero r means no limit; a zero burst means 1. It configures a Scheduler.
func WithHostRateLimit(r rate.Limit, burst int) Option {
	checkRate("WithHostRateLimit", r, burst)
	return schedOption("WithHostRateLimit", func(c *config) { c.hostRate, c.hostBurst = r, max(burst, 1) })
}

func checkRate(name string, r rate.Limit, burst int) {
	if r < 0 {
		panic(fmt.Sprintf("httpfutures: %s: negative rate %v", name, float64(r)))
	}
	nonNegative(name+" burst", int64(burst))
}

// WithLimiter adds a Limiter that every request must pass, after the per-host rate limit and
// before the request takes a slot. It may be given several times; a request waits for all of them.
// A nil Limiter is ignored. It configures a Scheduler.
func WithLimiter(l Limiter) Option {
	return schedOption("WithLimiter", func(c *config) {
		if l != nil {
			c.limiters = append(c.limiters, l)
		}
	})
}

// WithMaxRetryAfter caps how long a Retry-After or RateLimit header may pause a host. The default
// is five minutes, so a server that asks for a pause of years cannot wedge the client.
// It configures a Scheduler.
func WithMaxRetryAfter(d time.Duration) Option {
	nonNegative("WithMaxRetryAfter", int64(d))
	return schedOption("WithMaxRetryAfter", func(c *config) { c.maxRetryAfter = d })
}

// WithBackpressure turns server-driven backpressure on (the default) or off. When it is on, a 429
// or 503 response with Retry-After pauses that host's whole queue, and the RateLimit header
// fields slow the host's pace; see the package documentation. It configures a Scheduler.
func WithBackpressure(on bool) Option {
	return schedOption("WithBackpressure", func(c *config) { c.noBackpressure = !on })
}

// WithHostIdleTimeout sets how long a host with no queued or running requests keeps its state
// (queue, limiter, pause) before it is evicted. The default is one minute. A host is never evicted
// while evicting it would let it exceed its rate limit or end a pause early.
// It configures a Scheduler.
func WithHostIdleTimeout(d time.Duration) Option {
	nonNegative("WithHostIdleTimeout", int64(d))
	return schedOption("WithHostIdleTimeout", func(c *config) { c.hostIdle = d })
}

// WithWorkerIdleTimeout sets how long a Scheduler's goroutines (its workers and its pacer) wait
// for work before they end; the next request starts them again. The default is 10 seconds, so
// that a transport or session dropped without Close, or an idle one, keeps no goroutine, as
// net/http lets its idle connections go. The period counts from the end of the last work: a
// request running, or waiting in the queue, however it leaves it. Slots held by open streamed
// bodies do not keep the goroutines (the work that comes after them starts them again); a host
// paused by its server keeps them until the pause ends. It configures a Scheduler.
func WithWorkerIdleTimeout(d time.Duration) Option {
	nonNegative("WithWorkerIdleTimeout", int64(d))
	return schedOption("WithWorkerIdleTimeout", func(c *config) { c.workerIdle = d })
}

// WithScheduler makes a transport or session use s instead of a scheduler of its own, so that
// several of them share one pool of workers and one set of limits. Closing the transport or
// session then leaves s running; close s when all of them are done.
// It configures a transport or a session.
func WithScheduler(s *Scheduler) Option {
	return optionFunc(func(c *config) { c.scheduler = s })
}

// WithHooks sets hooks that run for every request of a transport or session. Hooks for a single
// request are set on its context with ContextWithHooks; they run after these.
// It configures a transport or a session.
func WithHooks(h Hooks) Option {
	return optionFunc(func(c *config) { c.hooks = h })
}

// WithMaxBodySize bounds the response body that a Future reads in the worker. A larger body fails
// the Future with ErrBodyTooLarge. The default is 32 MiB. It does not apply to streamed responses.
// It configures a transport or a session.
func WithMaxBodySize(n int64) Option {
	nonNegative("WithMaxBodySize", n)
	return optionFunc(func(c *config) { c.maxBodySize = n })
}

// WithStreaming makes every Future of a transport or session resolve as soon as the response
// headers arrive, leaving the body to the caller, who must close it. By default the body is read in
// the worker, so the connection returns to the pool at once. A single request can stream with
// ContextWithStreaming. The synchronous RoundTrip always streams.
// It configures a transport or a session.
func WithStreaming(on bool) Option {
	return optionFunc(func(c *config) { c.stream = on })
}

// WithClient makes a Session wrap c: its Jar, CheckRedirect and Timeout keep working, and its
// Transport (nil: a clone of http.DefaultTransport) becomes the next RoundTripper. c itself is
// not modified. It configures a Session; NewTransport and NewScheduler ignore it.
func WithClient(c *http.Client) Option {
	return optionFunc(func(cfg *config) { cfg.client = c })
}
