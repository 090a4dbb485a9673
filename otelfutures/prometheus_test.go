package otelfutures_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/otelfutures"
)

// scrape gets url as Prometheus does, and parses what it serves.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// series returns the values of a family by the labels named (others ignored, the series with the
// same values added up): a counter's or gauge's value, a histogram's count.
func series(f *dto.MetricFamily, labels ...string) map[string]float64 {
	out := map[string]float64{}
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		var kv []string
		for _, l := range m.GetLabel() {
			if slices.Contains(labels, l.GetName()) {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
		}
		v := 0.0
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out[strings.Join(kv, ",")] += v
	}
	return out
}

// The metrics, scraped by Prometheus through OpenTelemetry's exporter after a known load, have the
// names and values that the package documentation gives.
func TestPrometheusScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer metrics.Close()

	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(tracenoop.NewTracerProvider()),
		otelfutures.WithHosts(10))
	s := newSession(t, tel.Option(), retryFast, httpfutures.WithHostLimit(4))
	hedging := newSession(t, tel.Option(), httpfutures.WithHedge(10*time.Millisecond, 1))
	ts, paused := newServer(t), newServer(t)
	var fs []*httpfutures.Future
	for i := range 10 {
		fs = append(fs, s.Get(ts.URL+"/ok"), s.Get(fmt.Sprintf("%s/flaky?%d", ts.URL, i%2)))
	}
	fs = append(fs, s.Get(ts.URL+"/moved"), s.Get(ts.URL+"/missing"), hedging.Get(ts.URL+"/slow"), s.Get(paused.URL+"/pause"))
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	_, err = s.Get("http://127.0.0.1:1/refused").Result()
	require.Error(t, err)
	for _, f := range fs {
		resp, err := f.Result()
		require.NoError(t, err)
		resp.Body.Close()
	}

	// Scraped while the host of /pause is paused, and once the workers have told all.
	require.Eventually(t, func() bool {
		return series(scrape(t, metrics.URL)["http_client_request_duration_seconds"])[""] == 25
	}, 5*time.Second, 10*time.Millisecond)
	fams := scrape(t, metrics.URL)
	var names []string
	for name, f := range fams {
		names = append(names, name+" "+f.GetType().String())
	}
	slices.Sort(names)
	t.Logf("%q", names)
	for _, want := range []string{
		"http_client_request_duration_seconds HISTOGRAM",
		"http_client_active_requests GAUGE",
		"httpfutures_queue_duration_seconds HISTOGRAM",
		"httpfutures_queue_size GAUGE",
		"httpfutures_requests_total COUNTER",
		"httpfutures_retries_total COUNTER",
		"httpfutures_hedges_total COUNTER",
		"httpfutures_redirects_total COUNTER",
		"httpfutures_host_limit GAUGE",
		"httpfutures_host_paused GAUGE",
	} {
		assert.Contains(t, names, want)
	}

	host, pausedHost := strings.TrimPrefix(ts.URL, "http://"), strings.TrimPrefix(paused.URL, "http://")
	port := func(h string) string { return h[strings.LastIndex(h, ":")+1:] }
	assert.Equal(t, map[string]float64{"httpfutures_outcome=completed": 24, "httpfutures_outcome=failed": 1},
		series(fams["httpfutures_requests_total"], "httpfutures_outcome"))
	assert.Equal(t, map[string]float64{
		"http_response_status_code=200": 23, "http_response_status_code=404": 1, "": 1,
	}, series(fams["http_client_request_duration_seconds"], "http_response_status_code"))
	assert.Equal(t, map[string]float64{"http_response_status_code=503": 2, "error_type=connection_refused": 2},
		series(fams["httpfutures_retries_total"], "http_response_status_code", "error_type"), "each /flaky?N fails once")
	assert.Equal(t, map[string]float64{"": 1}, series(fams["httpfutures_redirects_total"]))
	assert.Equal(t, map[string]float64{"": 1}, series(fams["httpfutures_hedges_total"]), "/slow is hedged")
	assert.Equal(t, map[string]float64{"": 25}, series(fams["httpfutures_queue_duration_seconds"]))
	assert.Equal(t, map[string]float64{"": 0}, series(fams["httpfutures_queue_size"]))
	assert.Equal(t, map[string]float64{"": 0}, series(fams["http_client_active_requests"]))
	assert.Equal(t, map[string]float64{"server_port=" + port(host): 4, "server_port=" + port(pausedHost): 4, "server_port=1": 4},
		series(fams["httpfutures_host_limit"], "server_port"))
	assert.Equal(t, map[string]float64{"server_port=" + port(host): 0, "server_port=" + port(pausedHost): 1, "server_port=1": 0, "": 0},
		series(fams["httpfutures_host_paused"], "server_port"))
	assert.Equal(t, map[string]float64{"otel_scope_name=" + otelfutures.ScopeName: 25},
		series(fams["httpfutures_requests_total"], "otel_scope_name"))
}
