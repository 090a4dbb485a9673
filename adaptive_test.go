package httpfutures_test

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// serviceTime is how long the servers of these tests take for a request within their capacity.
const serviceTime = 20 * time.Millisecond

// capacityServer serves up to capacity requests at once, each in serviceTime. Beyond it, it
// answers 503 at once, or, if slows is set, serves them all more slowly: serviceTime times the
// requests in progress over capacity, as a server sharing its processors does.
type capacityServer struct {
	*httptest.Server
	capacity atomic.Int64
	inflight atomic.Int64
	slows    bool
	served   atomic.Int64 // requests served within the capacity
	busy     atomic.Int64 // nanoseconds spent serving them
}

// serviceTime returns the mean time the server took for a request within its capacity, which is
// serviceTime on an idle machine and more on a loaded one.
func (s *capacityServer) meanService() time.Duration {
	if n := s.served.Load(); n > 0 {
		return time.Duration(s.busy.Load() / n)
	}
	return serviceTime
}

func newCapacityServer(t testing.TB, capacity int, slows bool) *capacityServer {
	t.Helper()
	s := &capacityServer{slows: slows}
	s.capacity.Store(int64(capacity))
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *capacityServer) serve(w http.ResponseWriter, r *http.Request) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	c := s.capacity.Load()
	d := serviceTime
	start := time.Now()
	if n > c {
		if !s.slows {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		d = serviceTime * time.Duration(n) / time.Duration(c)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.Context().Done():
	}
	if n <= c {
		s.served.Add(1)
		s.busy.Add(int64(time.Since(start)))
	}
	w.Write([]byte("ok"))
}

// A tallyOf counts responses by status between two instants.
type tallyOf struct {
	from, to time.Time
	ok, shed atomic.Int64 // 2xx, and 503
	other    atomic.Int64 // any other outcome, errors included
}

// drive keeps outstanding requests to url in flight on tr for d, or until stop is closed, from
// as many goroutines, and returns what came back from warm on.
func drive(t testing.TB, tr *httpfutures.AsyncTransport, url string, outstanding int, warm, d time.Duration, stop <-chan struct{}) *tallyOf {
	t.Helper()
	start := time.Now()
	tl := &tallyOf{from: start.Add(warm), to: start.Add(d)}
	var wg sync.WaitGroup
	for range outstanding {
		wg.Go(func() {
			for n := 0; n < 100_000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if time.Now().After(tl.to) {
					return
				}
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				resp, err := tr.StartRoundTrip(req).Result()
				if now := time.Now(); now.Before(tl.from) || now.After(tl.to) {
					continue
				}
				switch {
				case err != nil:
					tl.other.Add(1)
				case resp.StatusCode == http.StatusOK:
					tl.ok.Add(1)
				case resp.StatusCode == http.StatusServiceUnavailable:
					tl.shed.Add(1)
				default:
					tl.other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return tl
}

// rate returns n per second of the tally's span.
func (tl *tallyOf) rate(n int64) float64 { return float64(n) / tl.to.Sub(tl.from).Seconds() }

// A server that sheds load beyond its capacity gets about its capacity from an adaptive limit:
// few 503s and most of the goodput, where a static limit above the capacity gets mostly 503s.
// The goodput is held against what the capacity serves in the server's mean service time, the
// 20 ms of the handler's timer on an idle machine, and more on a loaded one.
func TestAdaptiveLimitFindsCapacity(t *testing.T) {
	const capacity = 16
	srv := newCapacityServer(t, capacity, false)
	tr := newTransport(t, nil, httpfutures.WithWorkers(64), httpfutures.WithAdaptiveHostLimit(64))
	tl := drive(t, tr, srv.URL, 64, time.Second, 2*time.Second, nil)
	ideal := float64(capacity) / srv.meanService().Seconds()
	total := tl.ok.Load() + tl.shed.Load() + tl.other.Load()
	require.Positive(t, total)
	shed := float64(tl.shed.Load()) / float64(total)
	goodput := tl.rate(tl.ok.Load())
	t.Logf("adaptive: %d responses, %.1f%% 503, goodput %.0f/s: %.0f%% of %.0f/s (service time %v), %.0f%% of %.0f/s (20 ms); limit %d",
		total, 100*shed, goodput, 100*goodput/ideal, ideal, srv.meanService(),
		100*goodput/(capacity/serviceTime.Seconds()), capacity/serviceTime.Seconds(), tr.HostStats(srv.URL).Limit)
	assert.Zero(t, tl.other.Load())
	assert.LessOrEqual(t, shed, 0.05, "share of 503s after the first second")
	assert.GreaterOrEqual(t, goodput, 0.85*ideal, "goodput after the first second")
	st := tr.HostStats(srv.URL)
	assert.LessOrEqual(t, st.Limit, 2*capacity)
	assert.NotEqual(t, httpfutures.LimitUnchanged, st.LimitReason)

	static := newTransport(t, nil, httpfutures.WithWorkers(64), httpfutures.WithHostLimit(32))
	stl := drive(t, static, srv.URL, 64, 0, time.Second, nil)
	stotal := stl.ok.Load() + stl.shed.Load() + stl.other.Load()
	t.Logf("static 32: %d responses, %.1f%% 503, goodput %.0f/s", stotal,
		100*float64(stl.shed.Load())/float64(stotal), stl.rate(stl.ok.Load()))
	assert.Greater(t, stl.shed.Load(), stl.ok.Load(), "a static limit of 32 gets mostly 503s")
	assert.Equal(t, 32, static.HostStats(srv.URL).Limit)
}

// A server that slows down beyond its capacity, without failing, holds the limit within twice
// its capacity by the latency signal.
func TestAdaptiveLimitFollowsLatency(t *testing.T) {
	const capacity = 8
	srv := newCapacityServer(t, capacity, true)
	w := newLimitWatch()
	tr := newTransport(t, nil, httpfutures.WithWorkers(64), httpfutures.WithAdaptiveHostLimit(64),
		httpfutures.WithLimitChanged(w.record))

	var samples []int
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		settle := time.Now().Add(2 * time.Second)
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if now.After(settle) {
					samples = append(samples, tr.HostStats(srv.URL).Limit)
				}
			}
		}
	}()
	tl := drive(t, tr, srv.URL, 64, 0, 3*time.Second, nil)
	close(stop)
	<-sampled
	require.NotEmpty(t, samples)
	t.Logf("limits in the last second: %v", samples)
	assert.Zero(t, tl.shed.Load()+tl.other.Load(), "the server never fails")
	for _, l := range samples {
		assert.GreaterOrEqual(t, l, capacity/2)
		assert.LessOrEqual(t, l, 2*capacity)
	}
	assert.True(t, w.saw(strings.TrimPrefix(srv.URL, "http://"), httpfutures.LimitSlowed), "the latency signal lowered it")
}

// limitWatch records the changes of adaptive limits, per host.
type limitWatch struct {
	mu      sync.Mutex
	changes map[string][]httpfutures.LimitChange
	updated chan struct{}
}

func newLimitWatch() *limitWatch {
	return &limitWatch{changes: make(map[string][]httpfutures.LimitChange), updated: make(chan struct{}, 1)}
}

func (w *limitWatch) record(c httpfutures.LimitChange) {
	w.mu.Lock()
	w.changes[c.Host] = append(w.changes[c.Host], c)
	w.mu.Unlock()
	select {
	case w.updated <- struct{}{}:
	default:
	}
}

// await waits up to d for the limit of host to satisfy ok, as a StartRoundTrip's limit is read
// from HostStats; it returns how long it took, or false.
func (w *limitWatch) await(tr *httpfutures.AsyncTransport, host string, d time.Duration, ok func(int) bool) (time.Duration, bool) {
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if ok(tr.HostStats(host).Limit) {
			return time.Since(start), true
		}
		select {
		case <-w.updated:
		case <-deadline.C:
			return d, false
		}
	}
}

// saw reports whether a change of host's limit had reason r.
func (w *limitWatch) saw(host string, r httpfutures.LimitReason) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.changes[host] {
		if c.Reason == r {
			return true
		}
	}
	return false
}

// decreases returns the changes that lowered host's limit.
func (w *limitWatch) decreases(host string) []httpfutures.LimitChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	var down []httpfutures.LimitChange
	for _, c := range w.changes[host] {
		if c.To < c.From {
			down = append(down, c)
		}
	}
	return down
}

// A capacity that drops and comes back mid-run is followed each way within 2 s.
func TestAdaptiveLimitFollowsCapacity(t *testing.T) {
	srv := newCapacityServer(t, 16, false)
	w := newLimitWatch()
	// The overload signals alone, as this server sheds rather than slows.
	tr := newTransport(t, nil, httpfutures.WithWorkers(48),
		httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 32, Tolerance: math.Inf(1)}),
		httpfutures.WithLimitChanged(w.record))
	host := strings.TrimPrefix(srv.URL, "http://")

	stop, done := make(chan struct{}), make(chan *tallyOf)
	go func() { done <- drive(t, tr, srv.URL, 48, 0, 20*time.Second, stop) }()
	defer func() { close(stop); <-done }()

	_, ok := w.await(tr, host, 5*time.Second, func(l int) bool { return l > 16 })
	require.True(t, ok, "the limit reaches the first capacity")
	took, ok := w.await(tr, host, 5*time.Second, func(l int) bool { return l > 0 && l <= 16 })
	require.True(t, ok, "the limit comes down to the first capacity")
	t.Logf("at capacity 16: limit %d after %v", tr.HostStats(host).Limit, took)

	srv.capacity.Store(4)
	took, ok = w.await(tr, host, 2*time.Second, func(l int) bool { return l > 0 && l <= 6 })
	assert.True(t, ok, "the limit follows the capacity down within 2s")
	t.Logf("capacity 16 -> 4: limit %d after %v", tr.HostStats(host).Limit, took)

	srv.capacity.Store(16)
	took, ok = w.await(tr, host, 2*time.Second, func(l int) bool { return l >= 12 })
	assert.True(t, ok, "the limit follows the capacity up within 2s")
	t.Logf("capacity 4 -> 16: limit %d after %v", tr.HostStats(host).Limit, took)
}

// One overloaded host lowers its own limit, not another's.
func TestAdaptiveLimitIsPerHost(t *testing.T) {
	const max = 16
	weak := newCapacityServer(t, 2, false)
	strong := newCapacityServer(t, 1<<20, false)
	w := newLimitWatch()
	// The overload signals alone: on a loaded machine, the latency signal may answer the
	// client's own slowness, on any host.
	tr := newTransport(t, nil, httpfutures.WithWorkers(2*max),
		httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: max, Tolerance: math.Inf(1)}),
		httpfutures.WithLimitChanged(w.record))

	var wg sync.WaitGroup
	var strongTally *tallyOf
	wg.Go(func() { drive(t, tr, weak.URL, 2*max, 0, 1500*time.Millisecond, nil) })
	wg.Go(func() { strongTally = drive(t, tr, strong.URL, 2*max, 0, 1500*time.Millisecond, nil) })
	wg.Wait()

	weakHost, strongHost := strings.TrimPrefix(weak.URL, "http://"), strings.TrimPrefix(strong.URL, "http://")
	t.Logf("weak: limit %d; strong: limit %d, %d ok", tr.HostStats(weakHost).Limit,
		tr.HostStats(strongHost).Limit, strongTally.ok.Load())
	assert.LessOrEqual(t, tr.HostStats(weakHost).Limit, 4, "the overloaded host's limit comes down")
	assert.Equal(t, max, tr.HostStats(strongHost).Limit, "the other host keeps its full limit")
	assert.Empty(t, w.decreases(strongHost), "the other host's limit never fell")
	assert.Zero(t, strongTally.shed.Load()+strongTally.other.Load())
}

// The adaptive limit is at most WithHostLimit; a server's concurrency quota sets it and caps it;
// HostStats and the callback tell each change, and a callback that panics crashes nothing.
func TestAdaptiveLimitComposes(t *testing.T) {
	quota := newCapacityServer(t, 100, false)
	policy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Policy", `"burst";q=100;w=60, "conc";q=3;qu="concurrent-requests"`)
		w.Write([]byte("ok"))
	}))
	t.Cleanup(policy.Close)

	tests := []struct {
		name   string
		url    string
		opts   []httpfutures.Option
		limit  int
		reason httpfutures.LimitReason
	}{
		{"static", quota.URL, []httpfutures.Option{httpfutures.WithHostLimit(5)}, 5, httpfutures.LimitUnchanged},
		{"adaptive", quota.URL, []httpfutures.Option{httpfutures.WithAdaptiveHostLimit(12)}, 8, httpfutures.LimitUnchanged},
		{"adaptive under a static limit", quota.URL,
			[]httpfutures.Option{httpfutures.WithAdaptiveHostLimit(12), httpfutures.WithHostLimit(5)}, 5, httpfutures.LimitUnchanged},
		{"seeded by the server's quota", policy.URL, []httpfutures.Option{httpfutures.WithAdaptiveHostLimit(12)}, 3, httpfutures.LimitPolicy},
		{"quota ignored without adaptive limits", policy.URL, nil, 0, httpfutures.LimitUnchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			opts := append(tt.opts, httpfutures.WithLimitChanged(func(c httpfutures.LimitChange) {
				calls.Add(1)
				panic("a metrics exporter that panics")
			}))
			tr := newTransport(t, nil, opts...)
			for range 3 {
				resp, err := tr.StartRoundTrip(get(t, tt.url)).Result()
				require.NoError(t, err)
				assert.Equal(t, "ok", body(t, resp))
			}
			st := tr.HostStats(tt.url)
			assert.Equal(t, tt.limit, st.Limit)
			assert.Equal(t, tt.reason, st.LimitReason)
			if tt.reason == httpfutures.LimitPolicy {
				assert.Equal(t, int64(1), calls.Load(), "one change, told once")
			}
		})
	}
}

// Timeouts and connection resets are overload signals, as 429 and 503 are; other statuses and a
// caller's cancellation are not.
func TestAdaptiveLimitSignals(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		reason  httpfutures.LimitReason
	}{
		{"429", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, httpfutures.LimitOverloaded},
		{"503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, httpfutures.LimitOverloaded},
		{"504", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGatewayTimeout) }, httpfutures.LimitTimedOut},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, httpfutures.LimitTimedOut},
		{"canceled", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, httpfutures.LimitUnchanged},
		{"reset", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.(interface{ SetLinger(int) error }).SetLinger(0)
				conn.Close()
			}
		}, httpfutures.LimitReset},
		{"500 is an answer", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, httpfutures.LimitUnchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			t.Cleanup(ts.Close)
			tr := newTransport(t, nil, httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 10, Initial: 10}))
			// Long enough for the request to be sent before it, on a loaded machine too: one
			// that ends while the request waits for a worker says nothing of the host.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			req := get(t, ts.URL).WithContext(ctx)
			f := tr.StartRoundTrip(req)
			if tt.name == "canceled" {
				time.AfterFunc(20*time.Millisecond, func() { f.Cancel() })
			}
			f.Result()
			// The worker learns from the attempt once it has resolved the Future.
			require.Eventually(t, func() bool { return tr.Stats().InFlight == 0 }, 5*time.Second, time.Millisecond)
			st := tr.HostStats(ts.URL)
			assert.Equal(t, tt.reason, st.LimitReason)
			if tt.reason == httpfutures.LimitUnchanged {
				assert.Equal(t, 10, st.Limit)
			} else {
				assert.Equal(t, 9, st.Limit, "one decrease of a tenth")
			}
		})
	}
}

func TestAdaptiveLimitOptionsRejectBadValues(t *testing.T) {
	tests := []struct {
		name string
		cfg  httpfutures.AdaptiveLimit
	}{
		{"negative max", httpfutures.AdaptiveLimit{Max: -1}},
		{"initial over max", httpfutures.AdaptiveLimit{Max: 4, Initial: 5}},
		{"backoff of 1", httpfutures.AdaptiveLimit{Max: 4, Backoff: 1}},
		{"tolerance under 1", httpfutures.AdaptiveLimit{Max: 4, Tolerance: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.PanicsWithValue(t, panicValue(t, tt.cfg), func() { httpfutures.WithAdaptiveHostLimitConfig(tt.cfg) })
		})
	}
}

// panicValue returns what WithAdaptiveHostLimitConfig panics with for cfg, checking that it names
// the option.
func panicValue(t *testing.T, cfg httpfutures.AdaptiveLimit) (v any) {
	defer func() {
		v = recover()
		require.Contains(t, v, "WithAdaptiveHostLimit")
	}()
	httpfutures.WithAdaptiveHostLimitConfig(cfg)
	return nil
}

// A host's state, with its adaptive limit, stays in the allocator's 384-byte size class.
func TestHostSize(t *testing.T) {
	assert.LessOrEqual(t, httpfutures.HostSize, uintptr(384))
}

// The failures of requests sent together cost one decrease: a burst of five 503s takes the limit
// from 10 to 9, not to 5.
func TestAdaptiveLimitOneDecreasePerBurst(t *testing.T) {
	const burst = 5
	var arrived sync.WaitGroup
	arrived.Add(burst)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		arrived.Wait() // all five are in flight before any fails
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 10, Initial: 10}))
	require.NoError(t, httpfutures.WaitAll(context.Background(), startN(t, tr, ts.URL, burst)...))
	st := tr.HostStats(ts.URL)
	assert.Equal(t, 9, st.Limit)
	assert.Equal(t, httpfutures.LimitOverloaded, st.LimitReason)
}

// The limit grows only while the host uses at least half of it. One caller at a time has up to
// two requests in flight: its Future resolves before the worker gives its slot back.
func TestAdaptiveLimitGrowsOnlyWhenUsed(t *testing.T) {
	ts := newEchoServer(t)
	tests := []struct {
		name        string
		outstanding int
		grows       bool
	}{
		{"one at a time, under half of 8", 1, false},
		{"six at a time", 6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(t, nil, httpfutures.WithWorkers(16),
				httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 16, Initial: 8, Tolerance: math.Inf(1)}))
			var wg sync.WaitGroup
			for range tt.outstanding {
				wg.Go(func() {
					for range 50 {
						_, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
						assert.NoError(t, err)
					}
				})
			}
			wg.Wait()
			st := tr.HostStats(ts.URL)
			if tt.grows {
				assert.Greater(t, st.Limit, 8)
				assert.Equal(t, httpfutures.LimitGrew, st.LimitReason)
			} else {
				assert.Equal(t, 8, st.Limit)
				assert.Equal(t, httpfutures.LimitUnchanged, st.LimitReason)
			}
		})
	}
}

// A 503 with Retry-After still pauses the host, and lowers its limit too.
func TestAdaptiveLimitKeepsPauses(t *testing.T) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 10, Initial: 10}))
	resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	st := tr.HostStats(ts.URL)
	assert.Equal(t, 9, st.Limit)
	assert.WithinDuration(t, time.Now().Add(time.Second), st.PausedUntil, 500*time.Millisecond)
	start := time.Now()
	_, err = tr.StartRoundTrip(get(t, ts.URL)).Result()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "the next request waited for the pause")
}
