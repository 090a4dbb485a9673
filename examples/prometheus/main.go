// Command prometheus runs a mixed load through a Session observed by otelfutures, and serves its
// metrics for Prometheus until interrupted:
//
//	go run ./examples/prometheus -addr 127.0.0.1:9464
//	curl -s http://127.0.0.1:9464/metrics | grep httpfutures_
//
// The load goes to servers of its own, on loopback: one that answers at once; one that fails a
// request in five with a 503, which is retried; one that answers a 429 with Retry-After: 1 every
// 5 seconds, which pauses its host for a second; and one that serves 3 requests at a time, for 30 ms
// each, and answers the others 503, whose adaptive limit finds that. The requests go in bursts,
// every 100 ms. The Session logs its hosts'
// events (pauses, limits falling) to stderr. -duration stops it after a while.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/otelfutures"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run serves the metrics and runs the load until ctx ends or -duration passes. It returns the
// exit code: 0, or 2 for bad flags or an address it cannot listen on.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("prometheus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9464", "serve /metrics on this address")
	perSecond := fs.Int("rate", 200, "requests per second, spread over the servers")
	duration := fs.Duration("duration", 0, "stop after this long; 0 runs until interrupted")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *perSecond < 1 || *duration < 0 {
		fmt.Fprintln(stderr, "prometheus: -rate must be positive, -duration not negative")
		return 2
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		fmt.Fprintln(stderr, "prometheus:", err)
		return 1
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "prometheus:", err)
		return 2
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	defer func() {
		srv.Close()
		<-served
	}()
	fmt.Fprintf(stdout, "serving metrics at http://%s/metrics\n", ln.Addr())

	tel, err := otelfutures.New(otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(tracenoop.NewTracerProvider()),
		otelfutures.WithHosts(8))
	if err != nil {
		fmt.Fprintln(stderr, "prometheus:", err)
		return 1
	}
	defer tel.Close()
	targets := startServers()
	defer targets.close()
	s := httpfutures.NewSession(tel.Option(),
		httpfutures.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))),
		httpfutures.WithWorkers(32),
		httpfutures.WithAdaptiveHostLimit(16),
		httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: 10 * time.Millisecond, MaxWait: 100 * time.Millisecond}))
	defer s.Close()

	for f := range s.Stream(ctx, paced(ctx, targets.urls, *perSecond), 256) {
		if resp, err := f.Result(); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	return 0
}

// paced yields GETs of urls in turn, perSecond of them a second in bursts every 100 ms, until
// ctx ends.
func paced(ctx context.Context, urls []string, perSecond int) iter.Seq[*http.Request] {
	return func(yield func(*http.Request) bool) {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i, due := 0, 0.0; ; {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for due += float64(perSecond) / 10; due >= 1; due-- {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[i%len(urls)], nil)
				if err != nil || !yield(req) {
					return
				}
				i++
			}
		}
	}
}

// servers are the servers the load goes to, each a host of its own.
type servers struct {
	all  []*httptest.Server
	urls []string
}

func startServers() *servers {
	var s servers
	add := func(h http.HandlerFunc) {
		ts := httptest.NewServer(h)
		s.all = append(s.all, ts)
		s.urls = append(s.urls, ts.URL+"/")
	}
	add(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

	var flaky atomic.Int64
	add(func(w http.ResponseWriter, r *http.Request) {
		if flaky.Add(1)%5 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})

	var lastPause atomic.Int64 // unix nanoseconds
	add(func(w http.ResponseWriter, r *http.Request) {
		now, last := time.Now().UnixNano(), lastPause.Load()
		if now-last >= int64(5*time.Second) && lastPause.CompareAndSwap(last, now) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte("ok"))
	})

	var busy atomic.Int64
	add(func(w http.ResponseWriter, r *http.Request) {
		defer busy.Add(-1)
		if busy.Add(1) > 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		time.Sleep(30 * time.Millisecond)
		w.Write([]byte("ok"))
	})
	return &s
}

func (s *servers) close() {
	for _, ts := range s.all {
		ts.Close()
	}
}
