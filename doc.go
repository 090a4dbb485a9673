// Package httpfutures runs HTTP requests asynchronously, as Python's requests-futures does, and
// schedules them: a bounded pool of workers, rate limits for all hosts and for each, per-host
// concurrency limits (static or adaptive), fair queues, priorities, cancellation, retries, hedged
// requests, the backpressure servers ask for, and failing fast where waiting cannot help.
//
// It is an http.RoundTripper middleware. An AsyncTransport wraps any RoundTripper (nil:
// http.DefaultTransport's settings): StartRoundTrip queues a request and returns a Future at
// once, and RoundTrip still works, so an http.Client gains the limits by swapping its
// Transport. A Session keeps http.Client's methods (Get, Post, Do...) but returns Futures:
//
//	s := httpfutures.NewSession()
//	defer s.Close()
//	one := s.Get("https://example.com/a")
//	two := s.Get("https://example.com/b") // sent while the first is in flight
//	resp, err := one.Result()             // errors are in the Future, as in requests-futures
//
// # Futures
//
// A Future resolves once, with a response or an error, never both; a non-2xx response is not an
// error. Errors are shifted into the Future: a bad URL, a refused connection, a full queue or a
// closed transport do not make StartRoundTrip or Session.Get fail, Result returns them. Match
// them with errors.Is: ErrClosed, ErrQueueFull, ErrBodyTooLarge, ErrInvalidRequest,
// ErrCircuitOpen, ErrThrottled, context.Canceled and context.DeadlineExceeded.
//
// Unless a request streams, its response body is read into memory by the worker, bounded by
// WithMaxBodySize: the connection goes back to the pool at once and a slow reader never holds
// one. WithStreaming and ContextWithStreaming leave the body to the caller instead.
//
// AsCompleted yields futures in the order they resolve, and WaitAll waits for all of them.
// Cancel, or the end of the request's context, takes a queued request out of the queue at once;
// it is never sent.
//
// # Fanning out
//
// Stream is the way to send many requests: it pulls requests from an iterator only while fewer
// than a window of them are outstanding (0: twice the workers), yields each Future as it
// resolves, and when the loop breaks or its context ends, stops pulling and cancels what is
// outstanding. Memory is bounded by the window, not by the number of requests: a million
// requests made as they are pulled keep the live heap flat, where submitting them all at once
// would hold a Future and a request for each. StreamOrdered yields in the order pulled, as a
// pool's map does; StreamJSON decodes each response into a value in the workers; GetRequests
// turns URLs into requests, and a URL that does not parse into a Future failed with
// ErrInvalidRequest:
//
//	for f := range s.Stream(ctx, httpfutures.GetRequests(urls), 0) {
//		resp, err := f.Result() // resolved: Result does not wait
//		...
//	}
//
// Streaming 10,000 GETs to a loopback server with the default window sends 0.95 to 1.00 times as
// many requests per second as 8 goroutines sharing an http.Client that discard each response
// (BenchmarkStream), within the noise of a window kept by hand; Stream itself adds a map entry
// and a channel send per request, and starts no goroutine.
//
// # Scheduling
//
// A Scheduler admits a request when a rate token, a host slot and a global slot are all free,
// in that order, and never waits for a token while holding a slot: a throttled host never delays
// the others. Hosts are served round-robin; the requests to one host leave by priority
// (ContextWithPriority), then in the order submitted. A queued request costs its Future and a
// place in its host's queue, with no goroutine. State kept per host is evicted once the host has
// been idle (WithHostIdleTimeout), so that a crawler's memory does not grow with the hosts it
// has seen.
//
// Rate limits (WithRateLimit, WithHostRateLimit) wrap golang.org/x/time/rate and keep an
// absolute schedule, so they stay accurate at tens of thousands of requests per second despite
// the millisecond granularity of timers. A Limiter can pace many processes together (a
// distributed quota); WithLimiter plugs one in.
//
// Servers are heard: a 429 or 503 with Retry-After (seconds or an HTTP-date) pauses that host's
// whole queue, capped by WithMaxRetryAfter, and the RateLimit header fields (draft
// ietf-httpapi-ratelimit-headers: remaining r and reset t) slow the host to r requests in t
// seconds. WithBackpressure(false) turns this off.
//
// # Retries
//
// WithRetry retries failed attempts with go-retryablehttp's policy and backoff functions, but
// each attempt goes back through the Scheduler: it is paced and counted like any request, and no
// worker sleeps through the backoff. Only idempotent requests whose bodies can be replayed
// (Request.GetBody) are retried, a budget bounds retries to a share of requests, and when the
// policy gives up the Future resolves with the last response, whatever its status, or, if the
// last attempt had none, with a *RetryError. go-retryablehttp's own client and RoundTripper
// compose with an AsyncTransport too, above it or below it.
//
// # Adaptive limits and hedging
//
// WithAdaptiveHostLimit finds each host's concurrency limit instead of guessing it, as TCP finds
// its window: a slow start, then a 429 or 503, a timeout or a connection reset multiplies the
// limit by 0.9, takes a slot at least and takes it down to the capacity the host shows; the limit
// grows back toward the one refused and probes it at a cost of one response in 40, and a refusal
// that lowers nothing holds its slot for a round trip, so that a server refusing at once is not
// asked again at once. Round trips that slow down in earnest, over both 1.5 times the host's
// baseline and the baseline plus 20 ms, are an overload too; the queueing in the Scheduler,
// loopback jitter and a busy client are not. The limit stays between 1
// and the maximum, does not grow while the host uses less than half of it, and the lower of it
// and WithHostLimit applies; a RateLimit-Policy with a "concurrent-requests" quota sets it.
// HostStats shows each host's limit and why it last changed, and WithLimitChanged tells each
// change. Against servers that answer 503 beyond a capacity of 1 to 128, at once or after 20 ms,
// it settles within a second to 3% of 503s or fewer and 94% or more of what a static limit at
// the capacity gets; a healthy loopback server never lowers it.
//
// WithHedge sends a copy of an idempotent request that has had no response after a delay (or
// the host's recent latency at a percentile), up to a number of copies, and keeps the first
// response; the other round trips are canceled and their bodies drained. Copies are queued like
// any request, so they obey the rate limits and slots, and the retry budget bounds them;
// Stats.Hedges counts them. Against a server whose p99 is 100 times its p50, hedging after 10 ms
// brings the caller's p99 from 101 ms to 12.5 ms for 2% more requests.
//
// # Failing fast
//
// Where waiting cannot help, a request fails at once, unsent, and counts in Stats.Shed.
// WithCircuitBreaker gives each host a circuit breaker: once a share of its attempts over a
// window, with a minimum of them, have failed (5xx, 429 without Retry-After, no response), its
// queued and new requests fail with ErrCircuitOpen until a cooldown has passed and a probe has
// succeeded. WithAdaptiveThrottle rejects requests to a host, with ErrThrottled, with the
// probability the Google SRE book gives for client-side throttling, so that a server refusing
// what it is sent is not sent every retry. A request whose deadline ends before its host may
// send again (a pause its server asked for, a rate token) fails with an error matching
// context.DeadlineExceeded, and a retry that would be due after the deadline is not waited for.
// A full queue (WithQueueLimit) admits a request of higher priority than the lowest queued, and
// sheds that one.
//
// # Observing
//
// Stats and HostStats tell where a Scheduler stands; an Observer (WithObserver) is told each
// event as it happens: requests queued, started, retried, redirected, hedged and resolved with
// their outcome, hosts paused, resumed and paced, adaptive limits changed, Limiters failing.
// WithLogger logs the events of hosts to a slog.Logger, nothing per request above Debug. The
// package otelfutures reports them as OpenTelemetry metrics and traces. With no Observer set,
// none of this costs anything.
//
// # Cost
//
// Scheduling a request, on a RoundTripper that does nothing (8 workers, 2 cores, medians of
// alternating rounds), costs 1.30 times a goroutine and a channel per request, and 0.72 times the
// same goroutine made cancelable as a Future is: net/http cancels a round trip only through its
// request's context, which takes a context and a copy of the request (320 bytes in Go 1.26) for
// each, and that copy is the whole difference. It allocates the Future (192 bytes) and that copy.
// A Session's own requests need no copy: Session.Get costs 0.97 times a goroutine and a channel
// given a request from http.NewRequest. Their first round trip skips http.Client when the client
// would add nothing to it (no Jar, no Timeout), so that a Session.Get allocates 3 objects more
// than an http.Client.Get. A queued request costs about 240 bytes beside the request itself, and
// no goroutine.
//
// A resolved Future keeps 178 bytes beside its request and response: what only its attempts used
// is let go when it resolves. Requests submitted all at once and kept until the end still cost the
// collector all they retain at every cycle, so that their throughput falls with the bytes each
// keeps, for raw goroutines as for a Session: submitting 10,000 at once and reading them in order
// measured 1.03 times 8 goroutines that keep their responses (0.97 over 100 servers, 1.15 over
// HTTP/2), in rounds that ranged from 0.72 to 1.38. For a large N, Stream (see Fanning out)
// keeps only its window, and so retains nothing per request it has yielded. Against a
// loopback server, a Session of 8 workers with 16 requests outstanding sends about 1.05 times as
// many requests per second as 8 goroutines sharing an http.Client; with 256 outstanding, about
// 0.92 times as many, as a worker pool written by hand does (0.94). BenchmarkOverhead,
// BenchmarkQueued, BenchmarkRetained, BenchmarkSessionGet, BenchmarkAllAtOnce and BenchmarkFanout
// in bench_test.go measure these.
//
// # Goroutines
//
// A Scheduler owns every goroutine it starts (its workers and a pacer), from the first request;
// Close returns when they have all stopped. They also end once the Scheduler has been idle for
// WithWorkerIdleTimeout (10 seconds by default), and start again at the next request, so that a
// transport dropped without Close keeps no goroutine; still, Close an AsyncTransport or Session
// when done with it. Close and Shutdown follow http.Server: Close stops at once (queued requests fail with
// ErrClosed unsent, running ones are canceled and fail with an error matching ErrClosed and
// context.Canceled), Shutdown lets queued and running requests finish, and does what Close does
// if its context ends first. A Session's redirects are followed by the worker that ran the
// request, waiting for the new host's rate token and slot, so the workers bound the goroutines
// and the round trips however many requests redirect.
//
// No callback can crash the process: a panic in a hook, the next RoundTripper, a Limiter, or a
// redirect or retry policy fails only its Future, with a *PanicError. Hooks run in the workers
// and must not wait on other requests of the same Scheduler; a hook that waits should wait on
// its request's context, which Cancel and Close end.
//
// The zero Session, AsyncTransport and Scheduler are ready to use, with the defaults; the zero
// Future is resolved with ErrInvalidRequest.
package httpfutures
