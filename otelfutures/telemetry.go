package otelfutures

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/httpfutures/httpfutures"
)

// ScopeName is the instrumentation scope of the meter and the tracer that Telemetry uses: the
// otel_scope_name label of its series in Prometheus.
const ScopeName = "github.com/httpfutures/httpfutures/otelfutures"

// Telemetry reports what the Schedulers it observes see as OpenTelemetry metrics and traces.
// Give its Observer to a Scheduler, a transport or a Session:
//
//	tel, err := otelfutures.New(otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(tp))
//	...
//	defer tel.Close()
//	s := httpfutures.NewSession(tel.Option())
//
// One Telemetry may observe any number of Schedulers: its gauges add theirs up. Give it once to
// each: given twice, it counts each request twice. The zero Telemetry reports nothing. A
// Telemetry is safe for concurrent use.
type Telemetry struct {
	metrics *metrics // nil if metrics are off
	traces  *traces  // nil if traces are off
}

// An Option configures New.
type Option interface{ apply(*config) }

type config struct {
	mp    metric.MeterProvider
	tp    trace.TracerProvider
	hosts int
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMeterProvider makes Telemetry report its metrics to mp. Without it, Telemetry reports to
// the global MeterProvider (otel.GetMeterProvider) as New finds it. A no-op MeterProvider
// (go.opentelemetry.io/otel/metric/noop) turns metrics off: nothing is counted.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithTracerProvider makes Telemetry report its spans to tp. Without it, Telemetry reports to
// the global TracerProvider (otel.GetTracerProvider) as New finds it. A no-op TracerProvider
// (go.opentelemetry.io/otel/trace/noop) turns traces off: no span is started.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tp = tp })
}

// WithHosts gives series of their own to the first n hosts the Schedulers send requests to:
// their requests' metrics carry server.address and server.port, and httpfutures.host.limit and
// httpfutures.host.paused report each of them. Requests to the other hosts are counted in series
// without server.address, and their hosts paused in one series without it. Without WithHosts (or
// with n = 0) no metric names a host: hosts are unbounded, series must not be.
func WithHosts(n int) Option {
	if n < 0 {
		panic("otelfutures: WithHosts: negative n")
	}
	return optionFunc(func(c *config) { c.hosts = n })
}

// New returns a Telemetry configured by opts. Its error is that of making an instrument or
// registering the gauges' callback, as the MeterProvider reports it; the Telemetry returned
// beside it reports what it can.
func New(opts ...Option) (*Telemetry, error) {
	var c config
	for _, o := range opts {
		o.apply(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	t := &Telemetry{}
	var err error
	if _, off := c.mp.(metricnoop.MeterProvider); !off {
		t.metrics, err = newMetrics(c.mp.Meter(ScopeName), c.hosts)
	}
	if _, off := c.tp.(tracenoop.TracerProvider); !off {
		t.traces = newTraces(c.tp.Tracer(ScopeName))
	}
	return t, err
}

// Observer returns the Observer that reports to t, for httpfutures.WithObserver.
func (t *Telemetry) Observer() httpfutures.Observer {
	var metrics, traces httpfutures.Observer
	if t == nil {
		return metrics
	}
	if m := t.metrics; m != nil {
		metrics = httpfutures.Observer{
			Retried: m.retried, Redirected: m.redirected, Hedged: m.hedged, Resolved: m.resolved,
			Attached: m.attached, CircuitChanged: m.circuitChanged,
		}
		if m.hosts != nil {
			metrics.Started = m.started
		}
	}
	if tr := t.traces; tr != nil {
		traces = httpfutures.Observer{
			Started: tr.started, Context: tr.context,
			Retried: tr.retried, Redirected: tr.redirected, Hedged: tr.hedged, Resolved: tr.resolved,
		}
	}
	return metrics.And(traces)
}

// Option is httpfutures.WithObserver(t.Observer()).
func (t *Telemetry) Option() httpfutures.Option { return httpfutures.WithObserver(t.Observer()) }

// Close stops reporting the gauges of the Schedulers t observes, and lets them go. Their
// requests are still counted and traced while they run.
func (t *Telemetry) Close() error {
	if t == nil || t.metrics == nil {
		return nil
	}
	return t.metrics.close()
}
