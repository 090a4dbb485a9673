package otelfutures_test

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/otelfutures"
)

// The cost of Telemetry, beside the same Session without it, in one run: run it with -count to
// alternate them, and compare the ratios of each round.
//
//	go test -run '^$' -bench Telemetry -count 10 ./otelfutures

// telemetryCases are what is measured: no Observer, the metrics, the metrics with a series per
// host, the spans (every one sampled, none exported; or every one dropped by the sampler), and
// the metrics and the spans.
func telemetryCases(b *testing.B) []struct {
	name string
	opts func() []httpfutures.Option
} {
	tel := func(opts ...otelfutures.Option) func() []httpfutures.Option {
		return func() []httpfutures.Option {
			t, err := otelfutures.New(opts...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { t.Close() })
			return []httpfutures.Option{t.Option()}
		}
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	dropped := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	b.Cleanup(func() {
		mp.Shutdown(context.Background())
		tp.Shutdown(context.Background())
		dropped.Shutdown(context.Background())
	})
	return []struct {
		name string
		opts func() []httpfutures.Option
	}{
		{"off", func() []httpfutures.Option { return nil }},
		{"metrics", tel(otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(tracenoop.NewTracerProvider()))},
		{"metrics+hosts", tel(otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(tracenoop.NewTracerProvider()),
			otelfutures.WithHosts(10))},
		{"traces", tel(otelfutures.WithMeterProvider(metricnoop.NewMeterProvider()), otelfutures.WithTracerProvider(tp))},
		{"traces-dropped", tel(otelfutures.WithMeterProvider(metricnoop.NewMeterProvider()), otelfutures.WithTracerProvider(dropped))},
		{"metrics+traces", tel(otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(tp))},
	}
}

// BenchmarkTelemetry is BenchmarkStream of the package httpfutures (a Session of 8 workers
// streaming GETs to a loopback server, 32 outstanding) with and without Telemetry. It reports
// the rate, and the CPU time the process spent per request, the server's included.
func BenchmarkTelemetry(b *testing.B) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"url":%q,"args":{}}`, r.URL.String())
	}))
	defer ts.Close()
	url := ts.URL + "/get"
	urls := func(n int) iter.Seq[string] {
		return func(yield func(string) bool) {
			for range n {
				if !yield(url) {
					return
				}
			}
		}
	}
	for _, c := range telemetryCases(b) {
		b.Run(c.name, func(b *testing.B) {
			s := httpfutures.NewSession(append(c.opts(), httpfutures.WithWorkers(8))...)
			defer s.Close()
			runtime.GC()
			cpu0 := cpuTime()
			b.ResetTimer()
			for f := range s.Stream(context.Background(), httpfutures.GetRequests(urls(b.N)), 32) {
				resp, err := f.Result()
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			if cpu := cpuTime(); cpu > 0 {
				b.ReportMetric(float64((cpu-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/req")
			}
		})
	}
}

// BenchmarkTelemetryOverhead is the cost of Telemetry per request on a RoundTripper that does
// nothing, as BenchmarkOverhead of the package httpfutures measures the Scheduler's: what
// remains is the cost of scheduling, and of telling and counting.
func BenchmarkTelemetryOverhead(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://noop.invalid/", nil)
	for _, c := range telemetryCases(b) {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			tr := httpfutures.NewTransport(answerNothing{}, c.opts()...)
			defer tr.Close()
			fs := make([]*httpfutures.Future, 0, 256)
			runtime.GC()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				fs = append(fs, tr.StartRoundTrip(req))
				if len(fs) == cap(fs) || i == b.N-1 {
					for _, f := range fs {
						if _, err := f.Result(); err != nil {
							b.Fatal(err)
						}
					}
					fs = fs[:0]
				}
			}
			if cpu := cpuTime(); cpu > 0 {
				b.ReportMetric(float64((cpu-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/req")
			}
		})
	}
}

// answerNothing answers every request at once with an empty 200, without I/O.
type answerNothing struct{}

func (answerNothing) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}
