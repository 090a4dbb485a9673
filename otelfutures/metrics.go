package otelfutures

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"weak"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"

	"github.com/httpfutures/httpfutures"
)

// The metrics: each instrument, what it is told, and the gauges read from the Schedulers.

// Attribute keys of this package's own.
const (
	keyOutcome = attribute.Key("httpfutures.outcome")
	keyAttempt = attribute.Key("httpfutures.attempt")
	keyCircuit = attribute.Key("httpfutures.circuit.state")
)

// Bucket boundaries of httpfutures.queue.duration, in seconds: from 100µs, as a request that
// finds a worker free waits less than a millisecond, to a minute behind a paused host.
var queueBuckets = []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// metrics holds the instruments. The synchronous ones are told of each request by the Observer;
// the gauges are read from the Schedulers attached, when the MeterProvider collects them. An
// instrument more is a field here, made in newMetrics, and either a method for the event that
// counts it (wired in Telemetry.Observer) or a line in observe.
type metrics struct {
	// Set by newMetrics, read-only after.
	duration  httpconv.ClientRequestDuration // http.client.request.duration: a request's round trip
	queue     metric.Float64Histogram        // httpfutures.queue.duration: its time queued
	requests  metric.Int64Counter            // httpfutures.requests: Futures resolved, by outcome
	retries   metric.Int64Counter            // httpfutures.retries: attempts tried again
	hedges    metric.Int64Counter            // httpfutures.hedges: copies sent
	redirects metric.Int64Counter            // httpfutures.redirects: redirects followed
	circuits  metric.Int64Counter            // httpfutures.circuit.changes: breakers' changes of state
	queued    metric.Int64ObservableUpDownCounter
	active    metric.Int64ObservableUpDownCounter
	limit     metric.Int64ObservableGauge // nil without WithHosts
	circuit   metric.Int64ObservableGauge // httpfutures.host.circuit; nil without WithHosts
	paused    metric.Int64ObservableGauge
	reg       metric.Registration
	hosts     *hostSet   // nil without WithHosts
	attrs     attrCache  // the options of measurements with attributes besides a host's
	plain     seriesOpts // those of measurements of no host's

	// mu guards scheds.
	mu     sync.Mutex
	scheds []weak.Pointer[httpfutures.Scheduler] // those attached; a Scheduler collected leaves a nil
	closed bool
}

func newMetrics(m metric.Meter, hosts int) (*metrics, error) {
	var errs [14]error
	x := &metrics{plain: newSeriesOpts(nil)}
	if hosts > 0 {
		x.hosts = newHostSet(hosts)
	}
	x.duration, errs[0] = httpconv.NewClientRequestDuration(m)
	x.queue, errs[1] = m.Float64Histogram("httpfutures.queue.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a request waited in its queue, from its submission to a worker taking it, or to its leaving the queue unsent."),
		metric.WithExplicitBucketBoundaries(queueBuckets...))
	x.requests, errs[2] = m.Int64Counter("httpfutures.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests resolved, by outcome: completed (a response, whatever its status), failed, canceled, shed."))
	x.retries, errs[3] = m.Int64Counter("httpfutures.retries", metric.WithUnit("{request}"),
		metric.WithDescription("Attempts that failed and are tried again, by the failed attempt's status or error."))
	x.hedges, errs[4] = m.Int64Counter("httpfutures.hedges", metric.WithUnit("{request}"),
		metric.WithDescription("Copies of slow requests sent (WithHedge)."))
	x.redirects, errs[5] = m.Int64Counter("httpfutures.redirects", metric.WithUnit("{request}"),
		metric.WithDescription("Redirects a Session followed."))
	x.circuits, errs[11] = m.Int64Counter("httpfutures.circuit.changes", metric.WithUnit("{change}"),
		metric.WithDescription("Changes of state of hosts' circuit breakers (WithCircuitBreaker), by the state changed to: open, half-open, closed."))
	x.queued, errs[6] = m.Int64ObservableUpDownCounter("httpfutures.queue.size", metric.WithUnit("{request}"),
		metric.WithDescription("Requests waiting to start, in all queues."))
	x.active, errs[7] = m.Int64ObservableUpDownCounter(httpconv.ClientActiveRequests{}.Name(),
		metric.WithUnit(httpconv.ClientActiveRequests{}.Unit()),
		metric.WithDescription("Requests started and not yet resolved."))
	x.paused, errs[8] = m.Int64ObservableGauge("httpfutures.host.paused", metric.WithUnit("{host}"),
		metric.WithDescription("Hosts paused by their server's Retry-After or RateLimit fields: 1 or 0 for a host of its own series, the others together."))
	observed := []metric.Observable{x.queued, x.active, x.paused}
	if x.hosts != nil {
		x.limit, errs[9] = m.Int64ObservableGauge("httpfutures.host.limit", metric.WithUnit("{request}"),
			metric.WithDescription("A host's concurrency limit now: WithHostLimit, or its adaptive limit."))
		x.circuit, errs[12] = m.Int64ObservableGauge("httpfutures.host.circuit", metric.WithUnit("{state}"),
			metric.WithDescription("A host's circuit breaker now: 0 closed, 1 open, 2 half-open (WithCircuitBreaker)."))
		observed = append(observed, x.limit, x.circuit)
	}
	x.reg, errs[10] = m.RegisterCallback(x.observe, observed...)
	return x, errors.Join(errs[:]...)
}

// attached is the Observer's Attached: s's gauges are read from now on.
func (x *metrics) attached(s *httpfutures.Scheduler) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	live := x.scheds[:0]
	for _, w := range x.scheds {
		if w.Value() != nil {
			live = append(live, w)
		}
	}
	x.scheds = append(live, weak.Make(s))
}

// schedulers returns the Schedulers attached that are still in use.
func (x *metrics) schedulers() []*httpfutures.Scheduler {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]*httpfutures.Scheduler, 0, len(x.scheds))
	for _, w := range x.scheds {
		if s := w.Value(); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// observe reads the gauges: the Schedulers' Stats, and the HostStats of hosts with series.
func (x *metrics) observe(_ context.Context, o metric.Observer) error {
	var queued, active, paused int
	scheds := x.schedulers()
	for _, s := range scheds {
		st := s.Stats()
		queued, active, paused = queued+st.Queued, active+st.InFlight, paused+st.Paused
	}
	o.ObserveInt64(x.queued, int64(queued))
	o.ObserveInt64(x.active, int64(active))
	for _, h := range x.hosts.all() {
		var limit, hostPaused int
		circuit := httpfutures.CircuitClosed
		known := false
		for _, s := range scheds {
			st := s.HostStats(h.key)
			known = known || st != (httpfutures.HostStats{})
			limit = max(limit, st.Limit)
			if !st.PausedUntil.IsZero() {
				hostPaused++
			}
			if st.Circuit == httpfutures.CircuitOpen || st.Circuit == httpfutures.CircuitHalfOpen && circuit == httpfutures.CircuitClosed {
				circuit = st.Circuit // the worst state of the Schedulers'
			}
		}
		if !known {
			continue
		}
		set := metric.WithAttributeSet(h.set)
		if limit > 0 {
			o.ObserveInt64(x.limit, int64(limit), set)
		}
		o.ObserveInt64(x.circuit, int64(circuit), set)
		o.ObserveInt64(x.paused, int64(hostPaused), set)
		paused -= hostPaused
	}
	o.ObserveInt64(x.paused, int64(max(paused, 0)))
	return nil
}

// close unregisters the gauges' callback and forgets the Schedulers.
func (x *metrics) close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return nil
	}
	x.closed, x.scheds = true, nil
	if x.reg == nil {
		return nil
	}
	return x.reg.Unregister()
}

// series returns the options of measurements of the host of u: its own if it has series, or
// those of no host.
func (x *metrics) series(u *url.URL) (*hostSeries, *seriesOpts) {
	if h := x.hosts.of(u); h != nil {
		return h, &h.opts
	}
	return nil, &x.plain
}

// resolved counts f, resolved with outcome o, and records its round trip and its time queued.
func (x *metrics) resolved(f *httpfutures.Future, o httpfutures.Outcome) {
	req := requestOf(f)
	ctx := req.Context()
	h, opts := x.series(req.URL)
	x.requests.Add(ctx, 1, opts.outcome(&x.attrs, h, o).add...)
	tm := f.Timing()
	if o != httpfutures.OutcomeShed { // a request shed was never queued
		x.queue.Record(ctx, queueDuration(tm).Seconds(), opts.plain.record...)
	}
	if tm.Started.IsZero() {
		return
	}
	resp, err := f.Result()
	k := attrKey{host: h, method: method(req.Method), errType: errorType(resp, err)}
	if resp != nil {
		k.status = resp.StatusCode
	}
	x.duration.Inst().Record(ctx, tm.RoundTrip().Seconds(), x.attrs.get(k).record...)
}

// retried counts an attempt of f tried again.
func (x *metrics) retried(f *httpfutures.Future, r httpfutures.Retry) {
	req := requestOf(f)
	h, _ := x.series(req.URL)
	k := attrKey{host: h, status: r.StatusCode, errType: retryErrorType(r)}
	x.retries.Add(req.Context(), 1, x.attrs.get(k).add...)
}

// hedged counts a copy of f sent.
func (x *metrics) hedged(f *httpfutures.Future) {
	req := requestOf(f)
	_, opts := x.series(req.URL)
	x.hedges.Add(req.Context(), 1, opts.plain.add...)
}

// started gives the host of f's attempt its series, if there is room, before the attempt can
// change the host's circuit: a change told before any of the host's requests resolved is then
// counted under it. It is observed only with WithHosts.
func (x *metrics) started(f *httpfutures.Future, _ int) {
	x.hosts.of(requestOf(f).URL)
}

// circuitChanged counts a change of a host's circuit breaker, under the host's series if it has
// one (it makes none: the attempts that changed it made it, in started).
func (x *metrics) circuitChanged(c httpfutures.CircuitChange) {
	kv := []attribute.KeyValue{keyCircuit.String(c.To.String())}
	if h := x.hosts.byKey(c.Host); h != nil {
		kv = append(kv, h.kv...)
	}
	x.circuits.Add(context.Background(), 1, metric.WithAttributes(kv...))
}

// redirected counts a redirect that f followed.
func (x *metrics) redirected(f *httpfutures.Future, _ *http.Request) {
	req := requestOf(f)
	_, opts := x.series(req.URL)
	x.redirects.Add(req.Context(), 1, opts.plain.add...)
}
