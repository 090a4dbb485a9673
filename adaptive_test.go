package httpfutures_test

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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

// A capacityMode is what a capacityServer does with the requests beyond its capacity.
type capacityMode uint8

const (
	shedAtOnce capacityMode = iota // answers 503 at once
	shedLate                       // answers 503 after the service time, taking a place meanwhile
	slowsDown                      // serves them all more slowly: the service time times the requests in progress over the capacity
)

func (m capacityMode) String() string {
	return [...]string{"503 at once", "503 after the service time", "slower beyond capacity"}[m]
}

// capacityServer serves up to capacity requests at once, each in its service time. Beyond it, it
// sheds them or slows down, as its mode says. Every request in progress counts against the
// capacity, one that is to be refused after the service time too, as on a server that takes as
// long to fail a request as to serve it.
type capacityServer struct {
	*httptest.Server
	service  time.Duration
	mode     capacityMode
	capacity atomic.Int64
	inflight atomic.Int64
	served   atomic.Int64 // requests served within the capacity
	busy     atomic.Int64 // nanoseconds spent serving them
}

// meanService returns the mean time the server took for a request within its capacity, which is
// its service time on an idle machine and more on a loaded one.
func (s *capacityServer) meanService() time.Duration {
	if n := s.served.Load(); n > 0 {
		return time.Duration(s.busy.Load() / n)
	}
	return s.service
}

// newLoadServer starts a server of the given capacity and service time, that sheds or slows down
// beyond it as mode says.
func newLoadServer(t testing.TB, capacity int, service time.Duration, mode capacityMode) *capacityServer {
	t.Helper()
	s := &capacityServer{service: service, mode: mode}
	s.capacity.Store(int64(capacity))
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *capacityServer) serve(w http.ResponseWriter, r *http.Request) {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	c := s.capacity.Load()
	d := s.service
	start := time.Now()
	over := n > c
	if over {
		switch s.mode {
		case shedAtOnce:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case slowsDown:
			d = d * time.Duration(n) / time.Duration(c)
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.Context().Done():
	}
	if over && s.mode == shedLate {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !over {
		s.served.Add(1)
		s.busy.Add(int64(time.Since(start)))
	}
	w.Write([]byte("ok"))
}

// limitWatch records the changes of adaptive limits, per host.
type limitWatch struct {
	mu      sync.Mutex
	changes map[string][]httpfutures.LimitChange
}

func newLimitWatch() *limitWatch {
	return &limitWatch{changes: make(map[string][]httpfutures.LimitChange)}
}

func (w *limitWatch) record(c httpfutures.LimitChange) {
	w.mu.Lock()
	w.changes[c.Host] = append(w.changes[c.Host], c)
	w.mu.Unlock()
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

// The adaptive limit is at most WithHostLimit; a server's concurrency quota sets it and caps it;
// HostStats and the callback tell each change, and a callback that panics crashes nothing.
func TestAdaptiveLimitComposes(t *testing.T) {
	quota := newLoadServer(t, 100, serviceTime, shedAtOnce)
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
			// The worker learns from the attempt once it has resolved the Future, then gives the
			// host's slot back.
			require.Eventually(t, func() bool { return tr.HostStats(ts.URL).InFlight == 0 }, 5*time.Second, time.Millisecond)
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
		{"negative slowdown", httpfutures.AdaptiveLimit{Max: 4, MinSlowdown: -time.Millisecond}},
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

// A server that refuses everything at once is not asked again at once: a refusal that lowers
// nothing holds its slot until a success would have ended, and, at a limit of 1, twice as long
// each time, so that in a second the server sees tens of requests from eight callers, not
// thousands.
func TestAdaptiveLimitHoldsFastFailures(t *testing.T) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithWorkers(8), httpfutures.WithAdaptiveHostLimit(8))
	stop := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), stop)
			defer cancel()
			for ctx.Err() == nil {
				if resp, err := tr.StartRoundTrip(get(t, ts.URL).WithContext(ctx)).Result(); err == nil {
					assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests in a second", hits.Load())
	assert.Less(t, hits.Load(), int64(100))
	assert.Equal(t, 1, tr.HostStats(ts.URL).Limit)
}

// The time a request waits in the Scheduler is not the server's: 64 callers queued behind a
// limit of 4, each waiting some 16 round trips, leave the limit as it is.
func TestAdaptiveLimitIgnoresQueueing(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(ts.Close)
	w := newLimitWatch()
	tr := newTransport(t, nil, httpfutures.WithWorkers(64), httpfutures.WithLimitChanged(w.record),
		httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 4, Initial: 4}))
	run := load(t, tr, ts.URL, 64, time.Second)
	got := run.window(0, time.Second)
	t.Logf("%d successes", got.ok)
	assert.Greater(t, got.ok, int64(100))
	assert.Empty(t, w.decreases(hostOf(t, ts.URL)))
	assert.Equal(t, 4, tr.HostStats(ts.URL).Limit)
}

// roundOfSuccesses feeds e a round trip's worth of successes, as many as its limit, sent one
// after another from start over rtt, each at the limit in force, or at capacity if lower: a
// request sent beyond it would fail. It returns when the last ended.
func roundOfSuccesses(e *httpfutures.Estimate, start, rtt time.Duration, capacity int) time.Duration {
	n := int(e.Limit())
	for i := range n {
		at := start + time.Duration(i)*rtt/time.Duration(n)
		e.Succeed(at, at+rtt, min(int(e.Limit()), capacity))
	}
	return start + rtt
}

// A second decrease within two round trips of the first shows the limit in between too high as
// well: the estimate climbs back toward it by a slot a round trip, not halfway, which would undo
// half of each decrease while a server that sheds a round trip late goes on failing. After a
// single decrease, it climbs back about halfway (7 of the 19 slots in a round trip).
func TestAdaptiveDecreasesInARow(t *testing.T) {
	const rtt = 80 * time.Millisecond
	cfg := httpfutures.AdaptiveLimit{Max: 256, Tolerance: math.Inf(1)}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }

	inARow := httpfutures.NewEstimate(cfg, 200, rtt)
	inARow.Fail(ms(920), ms(1000), 201)
	inARow.Fail(ms(1020), ms(1100), 181) // sent after the first decrease, 100 ms after it
	before := inARow.Limit()
	roundOfSuccesses(inARow, ms(1101), rtt, 160)
	assert.InDelta(t, 162, before, 0.5, "two decreases of 0.9")
	assert.InDelta(t, 1, inARow.Limit()-before, 0.1, "climbed in the round trip after two decreases in a row")

	once := httpfutures.NewEstimate(cfg, 200, rtt)
	once.Fail(ms(920), ms(1000), 201)
	before = once.Limit()
	roundOfSuccesses(once, ms(1001), rtt, 160)
	assert.Greater(t, once.Limit()-before, 5.0, "climbed in the round trip after one decrease, toward the limit that failed")
}

// At the limit that last failed, the estimate probes by half a slot a round trip at most, so that
// a server that sheds a round trip late answers a probe before the estimate has passed the limit
// that failed: passing it, the estimate would take the capacity for risen and climb fast.
func TestAdaptiveProbesThePeakByHalfASlot(t *testing.T) {
	const rtt = 80 * time.Millisecond
	for _, c := range []int{4, 16, 48, 128, 256} {
		e := httpfutures.NewEstimate(httpfutures.AdaptiveLimit{Max: 512, Tolerance: math.Inf(1)}, float64(c+1), rtt)
		e.Fail(time.Millisecond, rtt+time.Millisecond, c+1)
		peak := e.Peak()
		require.Equal(t, float64(c+1), peak)
		at, rounds := rtt+2*time.Millisecond, 0
		for ; e.Limit() < peak-1; rounds++ {
			require.Less(t, rounds, 40, "capacity %d: back to the limit that failed", c)
			at = roundOfSuccesses(e, at, rtt, c)
		}
		for range 3 {
			before := e.Limit()
			at = roundOfSuccesses(e, at, rtt, c)
			assert.LessOrEqual(t, e.Limit()-before, 0.5+1e-9, "capacity %d: a round trip's probe at the limit that failed", c)
		}
		assert.Equal(t, peak, e.Peak(), "capacity %d: the limit that failed is not passed in three round trips", c)
		t.Logf("capacity %d: within a slot of the limit that failed (%v) in %d round trips; %.2f three round trips later", c, peak, rounds, e.Limit())
	}
}

// A host's limit changes are told in the order they were made, one at a time, each going from
// where the one before went to, however long the callback takes and however many workers make
// them: a log or a gauge fed by them ends at the limit in force.
func TestLimitChangesAreToldInOrder(t *testing.T) {
	var capacity atomic.Int64
	capacity.Store(16)
	var running atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer running.Add(-1)
		if running.Add(1) > capacity.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}))
	t.Cleanup(ts.Close)
	var (
		mu      sync.Mutex
		told    []httpfutures.LimitChange
		calls   atomic.Int64 // callbacks running
		overlap atomic.Bool  // two ran at once
	)
	tr := newTransport(t, nil, httpfutures.WithWorkers(64), httpfutures.WithAdaptiveHostLimit(64),
		httpfutures.WithLimitChanged(func(c httpfutures.LimitChange) {
			if calls.Add(1) > 1 {
				overlap.Store(true)
			}
			defer calls.Add(-1)
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // a slow exporter
			mu.Lock()
			told = append(told, c)
			mu.Unlock()
		}))
	load(t, tr, ts.URL, 64, 300*time.Millisecond)
	capacity.Store(4)
	load(t, tr, ts.URL, 64, 300*time.Millisecond)
	require.NoError(t, tr.Close()) // every change told

	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, len(told), 10, "the limit moved")
	assert.False(t, overlap.Load(), "one call at a time")
	for i := 1; i < len(told); i++ {
		require.Equal(t, told[i-1].To, told[i].From, "change %d of %d: %+v after %+v", i+1, len(told), told[i], told[i-1])
	}
	assert.Equal(t, tr.HostStats(ts.URL).Limit, told[len(told)-1].To, "the last told is the limit in force")
}
