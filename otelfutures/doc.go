// Package otelfutures reports what httpfutures Schedulers see as OpenTelemetry metrics and
// traces: requests by outcome, their round trips and their time queued, retries, hedges and
// redirects, the queue and the requests in flight, each host's limit and pause, and a span per
// Future that is the parent of its round trips' spans. It is built on httpfutures.Observer:
//
//	tel, err := otelfutures.New() // the global MeterProvider and TracerProvider
//	if err != nil { ... }
//	defer tel.Close()
//	s := httpfutures.NewSession(tel.Option())
//
// # Metrics
//
// The names are stable, for dashboards to rely on. Durations are in seconds. The Prometheus names
// are those OpenTelemetry's Prometheus exporter (go.opentelemetry.io/otel/exporters/prometheus)
// gives them with its defaults: dots become underscores, a unit in seconds adds _seconds, a
// counter adds _total; each series also has the labels otel_scope_name (ScopeName),
// otel_scope_version and otel_scope_schema_url.
//
//	OpenTelemetry                 Prometheus                            instrument            attributes
//	http.client.request.duration  http_client_request_duration_seconds  histogram             http.request.method, http.response.status_code, error.type
//	httpfutures.queue.duration    httpfutures_queue_duration_seconds    histogram
//	httpfutures.queue.size        httpfutures_queue_size                async up-down counter
//	http.client.active_requests   http_client_active_requests           async up-down counter
//	httpfutures.requests          httpfutures_requests_total            counter               httpfutures.outcome
//	httpfutures.retries           httpfutures_retries_total             counter               http.response.status_code or error.type
//	httpfutures.hedges            httpfutures_hedges_total              counter
//	httpfutures.redirects         httpfutures_redirects_total           counter
//	httpfutures.circuit.changes   httpfutures_circuit_changes_total     counter               httpfutures.circuit.state; server.address, server.port
//	httpfutures.host.limit        httpfutures_host_limit                async gauge           server.address, server.port; only with WithHosts
//	httpfutures.host.circuit      httpfutures_host_circuit              async gauge           server.address, server.port; only with WithHosts
//	httpfutures.host.paused       httpfutures_host_paused               async gauge           server.address, server.port
//
// The up-down counters and gauges are gauges in Prometheus. With WithHosts, the histograms and
// counters carry server.address and server.port too.
//
// http.client.request.duration follows the semantic convention of that name, for a Future: the
// time from its first attempt's start to its resolution (Timing.RoundTrip), retries included, as
// its caller waits for it; a request that never started is not recorded. error.type is the
// response's status for a status of 400 and above, and for an error its kind: queue_full,
// closed, canceled, timeout, limiter, panic, connection_refused, connection_reset, dns,
// retry_budget, retries_exhausted, not_replayable, body_too_large, invalid_request, or else the
// error's type. Each attempt's own duration is what otelhttp.NewTransport records, as the next
// RoundTripper, under the same name and its own otel_scope_name.
//
// httpfutures.queue.duration is the time a Future waited from its submission until a worker took
// it, or, if none did, until it left its queue unsent (canceled, closed, its Limiter failing); a
// request shed by a full queue was never queued. httpfutures.requests counts Futures by their
// outcome: completed (a response, whatever its status), failed, canceled, shed. The retries are
// attempts tried again, by why the attempt failed; the hedges, copies sent; the redirects, hops a
// Session followed. These are counted as Futures resolve, by the goroutine that resolves them,
// just after: a Future's Result may return before they are.
//
// The gauges are read from the Schedulers observed when the metrics are collected, added up:
// httpfutures.queue.size is their Stats.Queued, http.client.active_requests their Stats.InFlight.
// httpfutures.host.paused counts the hosts paused by their server (Retry-After, the RateLimit
// fields): a series without attributes holds those without series of their own, all of them
// without WithHosts. With WithHosts(n), the first n hosts that requests go to have series of
// their own: their requests' metrics carry server.address and server.port (the scheme's default
// port if the URL names none), httpfutures.host.limit gives each one's concurrency limit
// (WithHostLimit, or its adaptive limit), httpfutures.host.circuit its circuit breaker's state (0
// closed, 1 open, 2 half-open; closed without WithCircuitBreaker) and httpfutures.host.paused 1
// while it is paused. httpfutures.circuit.changes counts the breakers' changes by the state they
// changed to (open, half-open, closed), with the host's attributes if it has series.
//
// # Traces
//
// Each Future has a span named "httpfutures " and its method ("httpfutures GET"), of kind
// internal, the child of the span in its request's context. It starts when the Future was queued
// and ends when it resolved, so that its time queued shows before its round trips, which are its
// children: the span is in the context of each attempt, where the next RoundTripper finds it
// (otelhttp.NewTransport makes a client span per attempt, and sends its trace context to the
// server). Its events:
//
//	httpfutures.started   an attempt starts: httpfutures.attempt (1 for the first)
//	httpfutures.retry     an attempt failed and is tried again: httpfutures.attempt,
//	                      httpfutures.retry.wait (seconds), http.response.status_code or
//	                      error.type and exception.message
//	httpfutures.redirect  a Session follows a redirect: url.full of the next request
//	httpfutures.hedge     a copy of the request is sent
//
// Its attributes: http.request.method, url.full (its password redacted), server.address,
// server.port; when it ends, httpfutures.outcome, httpfutures.attempts,
// httpfutures.queue.duration (seconds), http.response.status_code, error.type. Its status is an
// error for an error, a cancellation or a status of 400 and above. A Future that never started
// (shed, canceled in its queue) has a span of its time queued, with no event.
//
// # Cost
//
// A Scheduler with no Observer pays nothing for them. Telemetry's metrics cost about 0.7 µs of
// CPU a request, and no allocation (BenchmarkTelemetryOverhead, on a RoundTripper that does
// nothing): under 2% of the CPU that a GET to a loopback server costs a Session
// (BenchmarkTelemetry, which measures 1.02 to 1.07 times the CPU per request without them, in
// medians of alternating rounds on a loaded machine). A span per Future costs what the
// OpenTelemetry SDK makes of it: about 6 µs and 23 allocations a request with every span sampled
// (none exported), 2.6 µs and 17 allocations with every span dropped by the sampler, which still
// starts it, for the round trips' spans to know.
//
// # One module
//
// otelfutures is a package of the module github.com/httpfutures/httpfutures, not a module of its
// own: Go's pruned module graphs leave OpenTelemetry out of programs that do not import
// otelfutures, which find none of its modules in their builds nor in their go.sum (as for
// redislimit's Redis client), and one module keeps one go test ./... and one version to release.
package otelfutures
