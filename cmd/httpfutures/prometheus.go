package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promdto "github.com/prometheus/client_model/go"

	"github.com/httpfutures/httpfutures/loadgen"
)

// Buckets of the latency and send lag histograms, in seconds: from 50µs to 20s.
var promBuckets = prometheus.ExponentialBucketsRange(50e-6, 20, 24)

// A promExporter serves the figures of a run for Prometheus at /metrics, live, while it lasts:
// requests by status code and error kind, the latency and send lag histograms, the requests in
// flight, the rate asked now and the requests dropped. It has a registry of its own. Its zero
// value is not ready: use startPrometheus; a nil *promExporter exports nothing.
type promExporter struct {
	srv    *http.Server
	served chan error

	// A request is counted in each of these at once, as a scrape sees them: observe holds mu
	// shared, and a scrape holds it alone, so that the figures of a scrape agree.
	mu       sync.RWMutex
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
	lag      prometheus.Histogram
	open     bool // the open model: the lag is measured

	a atomic.Pointer[loadgen.Attacker] // set by watch once the attack is made
}

// startPrometheus listens on addr and serves the figures of the attack cfg describes.
func startPrometheus(addr string, cfg loadgen.Config) (*promExporter, error) {
	p := &promExporter{
		served: make(chan error, 1),
		open:   cfg.Rate != nil,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "httpfutures_attack_requests_total",
			Help: "Requests that ended, by status code (0: no response) and kind of error (empty: none).",
		}, []string{"code", "error"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "httpfutures_attack_latency_seconds",
			Help:    "Latency of each request, from its due time (open model) or queueing (closed model) to the end of its body.",
			Buckets: promBuckets,
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "httpfutures_attack_send_lag_seconds",
			Help:    "How late each request of the open model was sent after its due time.",
			Buckets: promBuckets,
		}),
	}
	reg := prometheus.NewRegistry()
	progress := func(f func(loadgen.Progress) float64) func() float64 {
		return func() float64 {
			if a := p.a.Load(); a != nil {
				return f(a.Progress())
			}
			return 0
		}
	}
	reg.MustRegister(p.requests, p.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "httpfutures_attack_in_flight",
			Help: "Requests sent or queued and not yet ended.",
		}, progress(func(pr loadgen.Progress) float64 { return float64(pr.InFlight) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "httpfutures_attack_target_rate",
			Help: "The rate the timetable asks for now, requests per second (0: the closed model).",
		}, progress(func(pr loadgen.Progress) float64 { return pr.TargetRate })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "httpfutures_attack_elapsed_seconds",
			Help: "Time since the run started.",
		}, progress(func(pr loadgen.Progress) float64 { return pr.Elapsed.Seconds() })),
	)
	if p.open {
		reg.MustRegister(p.lag)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	gather := prometheus.GathererFunc(func() ([]*promdto.MetricFamily, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return reg.Gather()
	})
	mux.Handle("/metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { p.served <- p.srv.Serve(ln) }()
	return p, nil
}

// observer is the exporter's OnResult, or nil for a nil exporter.
func (p *promExporter) observer() func(*loadgen.Result) {
	if p == nil {
		return nil
	}
	return p.observe
}

func (p *promExporter) observe(r *loadgen.Result) {
	kind := ""
	if r.Error != "" {
		kind = loadgen.ErrorKindOf(r.Error)
	}
	requests := p.requests.WithLabelValues(strconv.Itoa(int(r.Code)), kind)
	p.mu.RLock()
	defer p.mu.RUnlock()
	requests.Inc()
	p.latency.Observe(r.Latency.Seconds())
	if p.open {
		p.lag.Observe(r.Lag.Seconds())
	}
}

// watch gives the exporter the attack whose progress it reads.
func (p *promExporter) watch(a *loadgen.Attacker) {
	if p != nil {
		p.a.Store(a)
	}
}

// close stops the server, letting a scrape in progress finish for up to a second.
func (p *promExporter) close() {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		_ = p.srv.Close()
	}
	<-p.served // http.ErrServerClosed, or why serving stopped: the run's report has its figures all the same
}
