package httpfutures_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// observingLimiter is a Limiter that lets every request go at once and records the backpressure
// it is told of.
type observingLimiter struct {
	mu   sync.Mutex
	seen []observed
}

type observed struct {
	host string
	bp   httpfutures.Backpressure
}

func (l *observingLimiter) Reserve(_ context.Context, _ string, now time.Time) (time.Time, error) {
	return now, nil
}

func (l *observingLimiter) ObserveBackpressure(host string, bp httpfutures.Backpressure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, observed{host, bp})
}

func (l *observingLimiter) observed() []observed {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]observed(nil), l.seen...)
}

func TestBackpressureIsToldToObservingLimiters(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header []string
		want   func(t0 time.Time) []observed
	}{
		{"429 Retry-After", http.StatusTooManyRequests, []string{"Retry-After", "2"}, func(t0 time.Time) []observed {
			return []observed{{"a.test", httpfutures.Backpressure{PauseUntil: t0.Add(2 * time.Second)}}}
		}},
		{"503 Retry-After", http.StatusServiceUnavailable, []string{"Retry-After", "3"}, func(t0 time.Time) []observed {
			return []observed{{"a.test", httpfutures.Backpressure{PauseUntil: t0.Add(3 * time.Second)}}}
		}},
		{"RateLimit exhausted", http.StatusOK, []string{"RateLimit", `"default";r=0;t=5`}, func(t0 time.Time) []observed {
			return []observed{{"a.test", httpfutures.Backpressure{PauseUntil: t0.Add(5 * time.Second)}}}
		}},
		{"RateLimit pace", http.StatusOK, []string{"RateLimit", `"default";r=10;t=5`}, func(t0 time.Time) []observed {
			return []observed{{"a.test", httpfutures.Backpressure{Pace: 2, PaceUntil: t0.Add(5 * time.Second)}}}
		}},
		{"no backpressure", http.StatusOK, nil, func(time.Time) []observed { return nil }},
		{"Retry-After on a 200", http.StatusOK, []string{"Retry-After", "2"}, func(time.Time) []observed { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &sendRecorder{respond: func(_ *http.Request, n int) *http.Response {
					if n > 0 {
						return nil
					}
					h := http.Header{}
					for i := 0; i < len(tt.header); i += 2 {
						h.Set(tt.header[i], tt.header[i+1])
					}
					return memResponse(tt.status, h)
				}}
				lim := &observingLimiter{}
				tr := newTransport(t, rec, httpfutures.WithLimiter(lim))
				t0 := time.Now()
				resp, err := tr.RoundTrip(get(t, "http://a.test/"))
				require.NoError(t, err)
				resp.Body.Close()
				assert.Equal(t, tt.want(t0), lim.observed())
			})
		})
	}
}

func TestBackpressureIsToldToEveryObservingLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sendRecorder{respond: func(*http.Request, int) *http.Response {
			return memResponse(http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
		}}
		a, b := &observingLimiter{}, &observingLimiter{}
		tr := newTransport(t, rec, httpfutures.WithLimiter(a),
			httpfutures.WithLimiter(httpfutures.NewRateLimiter(100, 1)), httpfutures.WithLimiter(b))
		t0 := time.Now()
		resp, err := tr.RoundTrip(get(t, "http://a.test:8080/"))
		require.NoError(t, err)
		resp.Body.Close()
		want := []observed{{"a.test:8080", httpfutures.Backpressure{PauseUntil: t0.Add(time.Second)}}}
		assert.Equal(t, want, a.observed())
		assert.Equal(t, want, b.observed())
	})
}
