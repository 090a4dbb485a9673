package httpfutures_test

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// The throttle's rejection probability is the SRE book's, with K as configured: nothing while
// the requests stay within K times the accepts, then (requests − K·accepts) / (requests + 1).
func TestAdaptiveThrottleFormula(t *testing.T) {
	for _, c := range []struct {
		name     string
		k        float64
		failures int     // 503s after 10 accepted requests, all of them sent
		want     float64 // the probability after them
	}{
		{"default K, 10 failures", 0, 10, 0},
		{"default K, 11 failures", 0, 11, 1.0 / 22},
		{"K 1, 1 failure", 1, 1, 1.0 / 12},
		{"K 1.5, 6 failures", 1.5, 6, 1.0 / 17},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFaultServer(t, answerOK)
			tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{K: c.k}))
			for range 10 {
				_, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
				require.NoError(t, err)
			}
			srv.set(answer503)
			for i := range c.failures {
				assert.Zero(t, tr.HostStats(srv.URL).Throttle, "before failure %d", i+1)
				resp, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
				require.NoError(t, err, "not rejected while its probability is zero")
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			}
			assert.InDelta(t, c.want, tr.HostStats(srv.URL).Throttle, 1e-12)
		})
	}
	for _, k := range []float64{-1, 0.5, math.NaN(), math.Inf(1)} {
		assert.Contains(t, panicMessage(t, func() { httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{K: k}) }), "WithAdaptiveThrottle K")
	}
	assert.Contains(t, panicMessage(t, func() { httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{Window: -1}) }), "WithAdaptiveThrottle Window")
}

// A host that refuses everything is sent few requests: the throttle rejects the others at once,
// unsent, with ErrThrottled, counted as shed; its retries too, the request ending with its last
// response. Once the window has passed over the refusals, nothing is rejected. A healthy host,
// or one answering errors that are not overloads, has nothing rejected.
func TestAdaptiveThrottle(t *testing.T) {
	t.Run("a host that refuses everything", func(t *testing.T) {
		srv := newFaultServer(t, answer503)
		tr := newTransport(t, nil, httpfutures.WithWorkers(1),
			httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{Window: 500 * time.Millisecond}))
		const n = 300
		throttled := 0
		for range n {
			f := tr.StartRoundTrip(get(t, srv.URL))
			_, err := f.Result()
			if errors.Is(err, httpfutures.ErrThrottled) {
				throttled++
				assert.Zero(t, f.Attempts())
			}
		}
		hits := srv.hits.Load()
		assert.Equal(t, int64(n-throttled), hits)
		assert.Less(t, hits, int64(40), "about ln(n) sent: each goes with probability 1/(requests+1)")
		assert.Equal(t, uint64(throttled), tr.Stats().Shed)
		assert.Greater(t, tr.HostStats(srv.URL).Throttle, 0.9)
		t.Logf("%d requests to a host refusing all: %d sent, %d rejected; rejection probability %.3f",
			n, hits, throttled, tr.HostStats(srv.URL).Throttle)

		srv.set(answerOK)
		require.Eventually(t, func() bool { return tr.HostStats(srv.URL).Throttle == 0 }, 5*time.Second, 10*time.Millisecond,
			"the window passes over the refusals")
		for range 20 {
			_, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
			require.NoError(t, err)
		}
	})
	t.Run("retries", func(t *testing.T) {
		srv := newFaultServer(t, answer503)
		tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{}),
			httpfutures.WithRetry(httpfutures.RetryPolicy{MaxRetries: 10, MinWait: time.Millisecond, MaxWait: time.Millisecond,
				Budget: httpfutures.RetryBudget{Ratio: math.Inf(1)}}))
		cut := 0 // requests whose retries the throttle ended, with their last response
		for range 20 {
			f := tr.StartRoundTrip(get(t, srv.URL))
			resp, err := f.Result()
			if errors.Is(err, httpfutures.ErrThrottled) {
				continue
			}
			require.NoError(t, err)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			if f.Attempts() < 11 {
				cut++
			}
		}
		assert.Positive(t, cut)
		assert.Less(t, srv.hits.Load(), int64(60), "of the 220 attempts ten retries each would make")
		t.Logf("20 requests of up to 11 attempts: %d sent, %d ended by a rejected retry", srv.hits.Load(), cut)
	})
	for _, c := range []struct {
		name string
		mode faultMode
	}{
		{"a healthy host", answerOK},
		{"a host answering 500s", answer500},
		{"a host answering 1% 500s", answerRandom500},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFaultServer(t, c.mode)
			tr := newTransport(t, nil, httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{}))
			fs := make([]*httpfutures.Future, 2000)
			for i := range fs {
				fs[i] = tr.StartRoundTrip(get(t, srv.URL))
			}
			for _, f := range fs {
				_, err := f.Result()
				require.NoError(t, err)
			}
			assert.Zero(t, tr.HostStats(srv.URL).Throttle)
			assert.Equal(t, int64(len(fs)), srv.hits.Load())
		})
	}
}

// shedServer serves up to capacity requests at once, each in service; beyond, it refuses with a
// 503 at once. It counts what it was sent, served and refused.
type shedServer struct {
	*httptest.Server
	capacity int64
	service  time.Duration
	inflight atomic.Int64
	counting atomic.Bool
	offered  atomic.Int64 // requests that arrived while counting
	served   atomic.Int64 // 200s answered while counting
	refused  atomic.Int64 // 503s answered while counting
}

func newShedServer(t testing.TB, capacity int, service time.Duration) *shedServer {
	t.Helper()
	s := &shedServer{capacity: int64(capacity), service: service}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *shedServer) serve(w http.ResponseWriter, r *http.Request) {
	counting := s.counting.Load()
	if counting {
		s.offered.Add(1)
	}
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if n > s.capacity {
		if counting {
			s.refused.Add(1)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	time.Sleep(s.service)
	if counting && s.counting.Load() {
		s.served.Add(1)
	}
	w.Write([]byte("ok"))
}

// An adaptive throttle spares a server that sheds: offered three times what it can serve, with
// every refused attempt retried up to three times, the server is sent about K times what it
// accepts rather than all the retries, and serves as much.
func TestAdaptiveThrottleSparesAnOverloadedServer(t *testing.T) {
	const (
		capacity = 4
		service  = 20 * time.Millisecond // 200 requests/s at most
		rate     = 600                   // new requests per second: three times that
		warm     = 500 * time.Millisecond
		measured = 2 * time.Second
	)
	retry := httpfutures.WithRetry(httpfutures.RetryPolicy{MaxRetries: 3, MinWait: 10 * time.Millisecond,
		MaxWait: 40 * time.Millisecond, Budget: httpfutures.RetryBudget{Ratio: math.Inf(1)}})
	type result struct {
		offered, served, refused, throttled float64 // per second
	}
	run := func(t *testing.T, throttle bool) result {
		srv := newShedServer(t, capacity, service)
		opts := []httpfutures.Option{httpfutures.WithWorkers(32), retry}
		if throttle {
			opts = append(opts, httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{}))
		}
		tr := newTransport(t, nil, opts...)
		start := time.Now()
		var fs []*httpfutures.Future
		var throttled atomic.Int64
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * time.Second / rate)
			if at.After(start.Add(warm + measured)) {
				break
			}
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			srv.counting.Store(time.Since(start) >= warm)
			f := tr.StartRoundTrip(get(t, srv.URL))
			if time.Since(start) >= warm {
				fs = append(fs, f)
			}
		}
		srv.counting.Store(false)
		elapsed := time.Since(start) - warm
		for _, f := range fs {
			if _, err := f.Result(); errors.Is(err, httpfutures.ErrThrottled) {
				throttled.Add(1)
			}
		}
		per := func(n int64) float64 { return float64(n) / elapsed.Seconds() }
		return result{per(srv.offered.Load()), per(srv.served.Load()), per(srv.refused.Load()), per(throttled.Load())}
	}
	without := run(t, false)
	with := run(t, true)
	t.Logf("a server serving %d at once in %v (200/s), sent %d new requests/s, each refusal retried up to 3 times:", capacity, service, rate)
	t.Logf("| client | offered to the server | served (goodput) | refused by the server | rejected by the client |")
	t.Logf("|---|---|---|---|---|")
	for _, r := range []struct {
		name string
		r    result
	}{{"retries alone", without}, {"retries and WithAdaptiveThrottle", with}} {
		t.Logf("| %s | %.0f/s | %.0f/s | %.0f/s | %.0f/s |", r.name, r.r.offered, r.r.served, r.r.refused, r.r.throttled)
	}
	assert.Less(t, with.offered, 0.6*without.offered, "the server is sent far less")
	assert.Greater(t, with.served, 0.7*without.served, "and serves nearly as much")
	assert.Less(t, with.refused, 0.5*without.refused)
}
