package httpfutures_test

import (
	"net/http"
	"testing"

	"github.com/httpfutures/httpfutures"
)

// BenchmarkFailFast is the cost per request of what fails requests fast, each option beside none,
// on a RoundTripper that does nothing: a circuit breaker and an adaptive throttle judge each
// attempt and count it under the Scheduler's lock; a queue limit keeps the queued requests by
// priority, for shedding.
func BenchmarkFailFast(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://noop.invalid/", nil)
	for _, c := range []struct {
		name string
		opts []httpfutures.Option
	}{
		{"off", nil},
		{"circuit-breaker", []httpfutures.Option{httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{})}},
		{"adaptive-throttle", []httpfutures.Option{httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{})}},
		{"queue-limit", []httpfutures.Option{httpfutures.WithQueueLimit(1 << 20)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			tr := httpfutures.NewTransport(noopTransport{}, c.opts...)
			defer tr.Close()
			inWindows(b, func() *httpfutures.Future { return tr.StartRoundTrip(req) })
		})
	}
}
