package otelfutures_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/otelfutures"
)

// Metrics of a Session's requests, read from the SDK.
func Example() {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tel, err := otelfutures.New(otelfutures.WithMeterProvider(mp))
	if err != nil {
		panic(err)
	}
	defer tel.Close()

	s := httpfutures.NewSession(tel.Option())
	for _, path := range []string{"/a", "/b", "/missing"} {
		if resp, err := s.Get(ts.URL + path).Result(); err == nil {
			resp.Body.Close()
		}
	}
	s.Close() // its workers are done telling

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "http.client.request.duration" {
			for _, dp := range h.DataPoints {
				status, _ := dp.Attributes.Value("http.response.status_code")
				fmt.Printf("%s status=%d count=%d\n", m.Name, status.AsInt64(), dp.Count)
			}
		}
	}
	// Unordered output:
	// http.client.request.duration status=200 count=2
	// http.client.request.duration status=404 count=1
}
