package httpfutures_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// tailServer answers in fast, except one request in every, which takes slow: a p99 100 times
// its p50 when slow is 100 times fast.
func tailServer(t testing.TB, fast, slow time.Duration, every int64) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := fast
		if hits.Add(1)%every == 0 {
			d = slow
		}
		sleepCtx(r.Context(), d)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

// latencies sends n GETs of url, outstanding at a time, and returns what each took, sorted.
func latencies(t testing.TB, tr *httpfutures.AsyncTransport, url string, n, outstanding int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range outstanding {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				start := time.Now()
				resp, err := tr.StartRoundTrip(get(t, url)).Result()
				out[i] = time.Since(start)
				if assert.NoError(t, err) {
					assert.Equal(t, "ok", body(t, resp))
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(out)
	return out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p/100*float64(len(sorted)-1))]
}

// A server whose p99 is 100 times its p50: hedging after 10 ms brings the caller's p99 near
// 10 ms plus the p50, for a few percent more requests, within the retry budget. The server slows
// one request in 50 of those it gets, copies included: a second copy rescues a slow first one.
func TestHedgeCutsTheTail(t *testing.T) {
	const (
		n     = 400
		fast  = time.Millisecond
		slow  = 300 * time.Millisecond
		delay = 10 * time.Millisecond
	)
	ts, hits := tailServer(t, fast, slow, 50)

	plain := newTransport(t, nil, httpfutures.WithWorkers(16))
	before := latencies(t, plain, ts.URL, n, 8)
	hits.Store(0)

	// Copies pass the scheduler like any request: they need workers beside the requests they copy.
	hedged := newTransport(t, nil, httpfutures.WithWorkers(16), httpfutures.WithHedge(delay, 2))
	after := latencies(t, hedged, ts.URL, n, 8)
	st := hedged.Stats()
	extra := hits.Load() - n

	t.Logf("without hedging: p50 %v, p99 %v; hedged after %v: p50 %v, p99 %v; %d copies, %d extra requests (%.1f%%)",
		percentile(before, 50), percentile(before, 99), delay, percentile(after, 50), percentile(after, 99),
		st.Hedges, extra, 100*float64(extra)/n)
	require.GreaterOrEqual(t, percentile(before, 99), slow, "the server has its tail")
	// Near the delay plus the p50 on a quiet machine (12–14 ms here); the bound leaves room for
	// a loaded one, where the race detector and other tests slow a few responses of the 400.
	assert.Less(t, percentile(after, 99), slow/2, "the caller's p99 is far below the slow responses'")
	assert.Positive(t, st.Hedges)
	assert.LessOrEqual(t, extra, int64(st.Hedges), "each copy is at most one request more")
	assert.LessOrEqual(t, float64(extra), 0.2*n+10, "the copies stay within the retry budget")
	assert.Equal(t, uint64(n), st.Completed, "copies are not counted as requests")
	assert.Zero(t, st.Failed+st.Canceled)
}

// The retry budget bounds the copies: a server slow for every request gets no more than the
// budget's share of copies.
func TestHedgeBudget(t *testing.T) {
	ts, hits := tailServer(t, 20*time.Millisecond, 20*time.Millisecond, 1)
	tr := newTransport(t, nil, httpfutures.WithWorkers(16), httpfutures.WithHedge(time.Millisecond, 1),
		httpfutures.WithRetry(httpfutures.RetryPolicy{Budget: httpfutures.RetryBudget{Ratio: 0.1, MinRetries: 2}}))
	const n = 100
	latencies(t, tr, ts.URL, n, 8)
	st := tr.Stats()
	t.Logf("%d copies for %d requests", st.Hedges, n)
	assert.LessOrEqual(t, st.Hedges, uint64(0.1*n+2))
	assert.Positive(t, st.Hedges)
	assert.Equal(t, int64(n+st.Hedges), hits.Load())
}

// Hedging never exceeds a host's rate limit: the copies wait for tokens like any request.
func TestHedgeRespectsRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sendRecorder{respond: func(req *http.Request, n int) *http.Response {
			d := 5 * time.Millisecond
			if n%3 == 0 {
				d = 200 * time.Millisecond
			}
			sleepCtx(req.Context(), d)
			return nil
		}}
		tr := newTransport(t, rec, httpfutures.WithWorkers(16), httpfutures.WithHostRateLimit(20, 1),
			httpfutures.WithHedge(10*time.Millisecond, 2))
		var fs []*httpfutures.Future
		for range 60 { // as fast as the rate allows: the copies compete with new requests for tokens
			fs = append(fs, tr.StartRoundTrip(get(t, "http://a.test/")))
			time.Sleep(50 * time.Millisecond)
		}
		require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
		times := rec.times("a.test")
		st := tr.Stats()
		t.Logf("%d sends, %d copies", len(times), st.Hedges)
		assert.Positive(t, st.Hedges, "copies were sent")
		assert.Equal(t, 60+int(st.Hedges), len(times))
		assert.LessOrEqual(t, countInWindow(times, time.Second), 20+1, "no second holds more than the rate and the burst")
		assert.LessOrEqual(t, countInWindow(times, 50*time.Millisecond), 1, "sends are 50 ms apart")
	})
}

// Only requests that may be sent twice are hedged; a copy carries the request's body again.
func TestHedgeOnlyWhatMayBeSentTwice(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Method+" "+string(b))
		mu.Unlock()
		sleepCtx(r.Context(), 100*time.Millisecond)
	}))
	t.Cleanup(ts.Close)

	tests := []struct {
		name   string
		req    func() *http.Request
		copies int
	}{
		{"GET", func() *http.Request { return get(t, ts.URL) }, 1},
		{"PUT with a replayable body", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPut, ts.URL, bytes.NewReader([]byte("same")))
			return req
		}, 1},
		{"POST", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, ts.URL, bytes.NewReader([]byte("once")))
			return req
		}, 0},
		{"POST with an Idempotency-Key", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, ts.URL, bytes.NewReader([]byte("keyed")))
			req.Header.Set("Idempotency-Key", "k1")
			return req
		}, 1},
		{"PUT with a body read once", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPut, ts.URL, io.MultiReader(bytes.NewReader([]byte("stream"))))
			return req
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			bodies = nil
			mu.Unlock()
			tr := newTransport(t, nil, httpfutures.WithHedge(10*time.Millisecond, 1))
			req := tt.req()
			resp, err := tr.StartRoundTrip(req).Result()
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, uint64(tt.copies), tr.Stats().Hedges)
			require.NoError(t, tr.Close())
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, bodies, 1+tt.copies)
			for _, b := range bodies {
				assert.Equal(t, bodies[0], b, "each copy sends the same request")
			}
		})
	}
}

// gatedCopies is a server whose requests wait until their context ends, and that tells when
// each arrives and ends.
func gatedCopies(t testing.TB) (*httptest.Server, chan struct{}, chan struct{}) {
	t.Helper()
	arrived, ended := make(chan struct{}, 16), make(chan struct{}, 16)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
		ended <- struct{}{}
	}))
	t.Cleanup(ts.Close)
	return ts, arrived, ended
}

// Cancel and Close reach every copy of a hedged request, sent or waiting.
func TestHedgeStopsWithItsRequest(t *testing.T) {
	tests := []struct {
		name string
		stop func(*httpfutures.AsyncTransport, *httpfutures.Future)
		err  error
	}{
		{"Cancel", func(_ *httpfutures.AsyncTransport, f *httpfutures.Future) { f.Cancel() }, context.Canceled},
		{"Close", func(tr *httpfutures.AsyncTransport, _ *httpfutures.Future) { tr.Close() }, httpfutures.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, arrived, ended := gatedCopies(t)
			// Copies 200 ms apart: the stop comes within a busy machine's delays of the second,
			// well before the third is due.
			tr := newTransport(t, nil, httpfutures.WithHedge(200*time.Millisecond, 3))
			f := tr.StartRoundTrip(get(t, ts.URL))
			for range 3 { // the request and two copies; the third copy is still waiting
				<-arrived
			}
			tt.stop(tr, f)
			_, err := f.Result()
			assert.ErrorIs(t, err, tt.err)
			for range 3 {
				<-ended
			}
			require.Eventually(t, func() bool { return tr.Stats().Queued == 0 && tr.Stats().InFlight == 0 },
				5*time.Second, time.Millisecond, "no copy is left queued or running")
			assert.LessOrEqual(t, tr.Stats().Hedges, uint64(3))
			assert.Empty(t, arrived, "the waiting copy was never sent")
		})
	}
}

func TestHedgeOptionsRejectBadValues(t *testing.T) {
	assert.PanicsWithValue(t, "httpfutures: WithHedge delay: negative value -1", func() { httpfutures.WithHedge(-1, 1) })
	assert.PanicsWithValue(t, "httpfutures: WithHedge max: negative value -1", func() { httpfutures.WithHedge(0, -1) })
	assert.Panics(t, func() { httpfutures.WithHedgePercentile(100) })
}

// With no delay given, a copy is sent at the host's recent latency percentile, once it has
// answered enough requests to tell it.
func TestHedgePercentile(t *testing.T) {
	const slow = 400 * time.Millisecond
	ts, hits := tailServer(t, 2*time.Millisecond, slow, 20)
	tr := newTransport(t, nil, httpfutures.WithWorkers(16), httpfutures.WithHedge(0, 1), httpfutures.WithHedgePercentile(90))
	lat := latencies(t, tr, ts.URL, 200, 4)
	st := tr.Stats()
	t.Logf("p50 %v, p99 %v, %d copies, %d hits", percentile(lat, 50), percentile(lat, 99), st.Hedges, hits.Load())
	assert.Positive(t, st.Hedges)
	assert.Less(t, percentile(lat, 99), slow/2, "the slow responses are cut short")
}

// A Session's requests are hedged too, through its client: the first request is slow, its copy
// answers, and the client sees the copy's response.
func TestHedgeSession(t *testing.T) {
	ts, hits := tailServer(t, time.Millisecond, 5*time.Second, 1_000_000)
	hits.Store(1_000_000 - 1) // the first request is the slow one
	s := newSession(t, httpfutures.WithHedge(10*time.Millisecond, 1))
	start := time.Now()
	resp, err := s.Get(ts.URL).Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	assert.Less(t, time.Since(start), time.Second, "the copy answered")
	st := s.Stats()
	assert.Equal(t, uint64(1), st.Hedges)
	assert.Equal(t, uint64(1), st.Completed)
	assert.Equal(t, int64(1_000_000+1), hits.Load())
}

// A copy is the request as it was sent: the request hooks ran once, for the request.
func TestHedgeCopiesTheRequestAsSent(t *testing.T) {
	var mu sync.Mutex
	var seen [][]string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Values("X-Hook"))
		first := len(seen) == 1
		mu.Unlock()
		if first {
			sleepCtx(r.Context(), 5*time.Second)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(ts.Close)
	var hooks atomic.Int64
	tr := newTransport(t, nil, httpfutures.WithHedge(10*time.Millisecond, 1), httpfutures.WithHooks(httpfutures.Hooks{
		Request: func(r *http.Request) { hooks.Add(1); r.Header.Add("X-Hook", "signed") },
	}))
	resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	require.NoError(t, tr.Close())
	assert.Equal(t, int64(1), hooks.Load())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, [][]string{{"signed"}, {"signed"}}, seen)
}
