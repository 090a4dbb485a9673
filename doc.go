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
// WithMaxBodySize, and the connection goes back to the pool at once. A streamed body
// (WithStreaming, ContextWithStreaming, and always through RoundTrip) holds its worker slot and
// host slot until it is closed or read to the end, or its request's context ends; one dropped
// unclosed gives them back when the garbage collector finds it, and counts in
// Stats.LeakedBodies. AsCompleted yields futures as they resolve, WaitAll waits for them all;
// Cancel, or the end of the request's context, takes a queued request out of its queue at once.
//
// Stream is the way to send many requests: it pulls requests from an iterator only while fewer
// than a window of them are outstanding, yields each Future as it resolves, and cancels what is
// outstanding when the loop breaks; memory is bounded by the window, not by the requests:
//
//	for f := range s.Stream(ctx, httpfutures.GetRequests(urls), 0) {
//		resp, err := f.Result() // resolved: Result does not wait
//		...
//	}
//
// # Scheduling
//
// A Scheduler admits a request when a rate token, a host slot and a global slot are all free, in
// that order, and never waits for a token while holding a slot: a throttled host never delays
// the others. Hosts are served round-robin; a host's requests leave by priority
// (ContextWithPriority), then in the order submitted. A queued request costs its Future and a
// place in its host's queue, with no goroutine. Rate limits (WithRateLimit, WithHostRateLimit)
// wrap golang.org/x/time/rate and keep an absolute schedule, accurate at tens of thousands of
// requests a second; a Limiter (WithLimiter) can pace many processes together, as the package
// redislimit does on Redis.
//
// Servers are heard: a 429 or 503 with Retry-After pauses the host's whole queue, capped by
// WithMaxRetryAfter, and the RateLimit header fields slow it. WithRetry retries failed attempts
// with go-retryablehttp's policies, each attempt back through the Scheduler, within a budget;
// when it gives up, the Future resolves with the last response, whatever its status, or with a
// *RetryError if the last attempt had none. WithHedge sends copies of slow idempotent requests,
// which obey the rate limits like any request.
//
// WithAdaptiveHostLimit finds each host's concurrency limit, as TCP finds its window: a slow
// start, a decrease on a 429, 503, timeout or reset down to the capacity the host shows, probing
// back at a cost of one response in 40, and round trips that slow down in earnest (over both 1.5
// times the baseline and the baseline plus 20 ms) counted as overload too. Where waiting cannot
// help, a request fails at once, unsent, and counts in Stats.Shed: WithCircuitBreaker gives each
// host a breaker, opened by a ratio of failures over a window; WithAdaptiveThrottle rejects
// requests to a host that refuses more than it accepts, as the Google SRE book's client-side
// throttling does; a request whose deadline ends before its host may send again fails with an
// error matching context.DeadlineExceeded; a full queue (WithQueueLimit) sheds its lowest
// priority for a higher one.
//
// # Observing
//
// Stats and HostStats tell where a Scheduler stands. An Observer (WithObserver) is told each event
// as it happens: requests queued, started, retried, redirected, hedged and resolved with their
// outcome; hosts paused, resumed and paced, adaptive limits and circuit breakers changing,
// Limiters failing. WithLogger logs the events of hosts to a slog.Logger, nothing per request
// above Debug; the package otelfutures reports them as OpenTelemetry metrics and traces. With no
// Observer set, none of this costs anything.
//
// # Goroutines and cost
//
// A Scheduler owns every goroutine it starts, its workers and a pacer, from the first request.
// They end once the Scheduler has been idle for WithWorkerIdleTimeout (10 seconds by default) and
// start again at the next request, so that a transport dropped without Close keeps none; Close
// returns when they have all stopped. Close and Shutdown follow http.Server: Close stops at once
// (queued requests fail with ErrClosed unsent, running ones are canceled and fail with an error
// matching ErrClosed and context.Canceled), Shutdown lets them finish, and does what Close does
// if its context ends first. A Session's redirects are followed by the worker that ran the
// request, so the workers bound the goroutines and the round trips however many requests
// redirect. No callback can crash the process: a panic in a hook, the next RoundTripper, a
// Limiter, an Observer, or a redirect or retry policy fails only its Future, with a *PanicError,
// or is dropped where there is no Future to fail.
//
// Scheduling a request costs about what a goroutine and a channel cost, and a Session fans out
// as fast as goroutines sharing an http.Client; BENCHMARKS.md has the figures, each beside its
// baseline, and bench_test.go the benchmarks.
//
// The zero Session, AsyncTransport and Scheduler are ready to use, with the defaults; the zero
// Future is resolved with ErrInvalidRequest.
package httpfutures
