package httpfutures_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

// sendRecorder is an in-memory RoundTripper that records when each request is sent, per host.
// In a synctest bubble the times are those of the fake clock: exact, with no sleeping. It
// answers with respond, given how many requests to the same host came before; nil (or a nil
// respond) is an empty 200.
type sendRecorder struct {
	respond func(req *http.Request, n int) *http.Response

	mu    sync.Mutex
	sends map[string][]time.Time
}

func (r *sendRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	now := time.Now()
	r.mu.Lock()
	if r.sends == nil {
		r.sends = make(map[string][]time.Time)
	}
	n := len(r.sends[req.URL.Host])
	r.sends[req.URL.Host] = append(r.sends[req.URL.Host], now)
	r.mu.Unlock()
	var resp *http.Response
	if r.respond != nil {
		resp = r.respond(req, n)
	}
	if resp == nil {
		resp = memResponse(http.StatusOK, nil)
	}
	resp.Request = req
	return resp, nil
}

// times returns when the requests to host were sent, in order.
func (r *sendRecorder) times(host string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sends[host])
}

// all returns when every request was sent, in order.
func (r *sendRecorder) all() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, ts := range r.sends {
		out = append(out, ts...)
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// memResponse is a response with no body.
func memResponse(status int, h http.Header) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: status, Header: h, Body: http.NoBody}
}

// offsetsFrom returns each time as its distance from t0.
func offsetsFrom(t0 time.Time, times []time.Time) []time.Duration {
	out := make([]time.Duration, len(times))
	for i, t := range times {
		out[i] = t.Sub(t0)
	}
	return out
}

// evenly returns n durations, step apart, from start.
func evenly(n int, start, step time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = start + time.Duration(i)*step
	}
	return out
}

// startN submits n GETs of url and returns their futures.
func startN(t testing.TB, tr *httpfutures.AsyncTransport, url string, n int) []*httpfutures.Future {
	t.Helper()
	fs := make([]*httpfutures.Future, n)
	for i := range fs {
		fs[i] = tr.StartRoundTrip(get(t, url))
	}
	return fs
}

// countInWindow is the largest number of sorted times in any half-open window of length w.
func countInWindow(times []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

func TestRateLimitPacesRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sendRecorder{}
		tr := newTransport(t, rec, httpfutures.WithRateLimit(10, 1))
		t0 := time.Now()
		require.NoError(t, httpfutures.WaitAll(context.Background(), startN(t, tr, "http://a.test/", 21)...))
		assert.Equal(t, evenly(21, 0, 100*time.Millisecond), offsetsFrom(t0, rec.times("a.test")))
		assert.Equal(t, 2*time.Second, time.Since(t0))
	})
}

func TestRateLimitBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sendRecorder{}
		tr := newTransport(t, rec, httpfutures.WithRateLimit(10, 5))
		t0 := time.Now()
		require.NoError(t, httpfutures.WaitAll(context.Background(), startN(t, tr, "http://a.test/", 15)...))
		want := append(evenly(5, 0, 0), evenly(10, 100*time.Millisecond, 100*time.Millisecond)...)
		assert.Equal(t, want, offsetsFrom(t0, rec.times("a.test")))
	})
}

func TestRateLimitWindow(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		slow    int           // the index of a request whose response takes 50 ms; -1 for none
		n       int           // requests
		last    time.Duration // when the last is sent, from t0; not checked if zero
	}{
		{"steady", 8, -1, 2000, 1999 * time.Millisecond},
		{"after a slow response held the only worker", 1, 9, 400, 0},
		{"after a slow response held one of two workers", 2, 9, 400, 399 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &sendRecorder{respond: func(_ *http.Request, n int) *http.Response {
					if n == tt.slow {
						time.Sleep(50 * time.Millisecond)
					}
					return nil
				}}
				tr := newTransport(t, rec, httpfutures.WithWorkers(tt.workers), httpfutures.WithRateLimit(1000, 1))
				t0 := time.Now()
				require.NoError(t, httpfutures.WaitAll(context.Background(), startN(t, tr, "http://a.test/", tt.n)...))
				times := rec.times("a.test")
				require.Len(t, times, tt.n)
				// A token bucket of 1,000 a second with a burst of 1 lets no 100 ms window hold more
				// than 101 requests, whatever kept the requests waiting.
				assert.LessOrEqual(t, countInWindow(times, 100*time.Millisecond), 1000/10+1,
					"no 100 ms window holds more than rate × 100 ms + burst")
				if tt.last != 0 {
					assert.Equal(t, tt.last, times[len(times)-1].Sub(t0), "nor is the rate undershot")
				}
			})
		})
	}
}

func TestNoHeadOfLineBlocking(t *testing.T) {
	for _, workers := range []int{1, 8} {
		t.Run(fmt.Sprintf("host rate limit, %d workers", workers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &sendRecorder{}
				tr := newTransport(t, rec, httpfutures.WithWorkers(workers), httpfutures.WithHostRateLimit(1, 1))
				t0 := time.Now()
				fs := startN(t, tr, "http://a.test/", 5)
				fs = append(fs, startN(t, tr, "http://b.test/", 1)...)
				require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
				assert.Equal(t, evenly(5, 0, time.Second), offsetsFrom(t0, rec.times("a.test")))
				assert.Equal(t, []time.Duration{0}, offsetsFrom(t0, rec.times("b.test")),
					"b.test is not delayed by the requests queued for a.test")
			})
		})
	}

	t.Run("global rate limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &sendRecorder{}
			tr := newTransport(t, rec, httpfutures.WithRateLimit(10, 1))
			t0 := time.Now()
			fs := startN(t, tr, "http://a.test/", 10)
			fs = append(fs, startN(t, tr, "http://b.test/", 1)...)
			require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
			b := rec.times("b.test")
			require.Len(t, b, 1)
			// The first token goes to a.test. b.test joins the round-robin behind it, and gets the
			// second token, or the third if a worker reserved the second for a.test before b.test
			// was queued: not the eleventh, as in one queue for all hosts.
			assert.LessOrEqual(t, b[0].Sub(t0), 200*time.Millisecond)
			assert.Equal(t, evenly(11, 0, 100*time.Millisecond), offsetsFrom(t0, rec.all()), "the hosts share one pace")
		})
	})
}

// A backpressure scenario: run sends one request to a.test, answered by first, then three more to
// a.test and one to b.test, answered with an empty 200. It records the state of a.test once the
// first response is in, and when the later requests were sent. It runs in a synctest bubble.
type backpressure struct {
	first  func(now time.Time) *http.Response
	opts   []httpfutures.Option
	t0     time.Time
	host   httpfutures.HostStats // a.test once the first response is in
	paused int                   // Stats().Paused then
	a, b   []time.Duration       // when the later requests were sent, from t0
}

func (bp *backpressure) run(t *testing.T) {
	t.Helper()
	rec := &sendRecorder{respond: func(req *http.Request, n int) *http.Response {
		if req.URL.Host == "a.test" && n == 0 {
			return bp.first(time.Now())
		}
		return nil
	}}
	tr := newTransport(t, rec, bp.opts...)
	bp.t0 = time.Now()
	_, err := tr.StartRoundTrip(get(t, "http://a.test/first")).Result()
	require.NoError(t, err, "a 429 or 503 is a response, not an error")
	bp.host = tr.HostStats("a.test")
	bp.paused = tr.Stats().Paused
	fs := startN(t, tr, "http://a.test/", 3)
	fs = append(fs, startN(t, tr, "http://b.test/", 1)...)
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	bp.a = offsetsFrom(bp.t0, rec.times("a.test")[1:])
	bp.b = offsetsFrom(bp.t0, rec.times("b.test"))
	assert.Zero(t, tr.Stats().Paused, "the pause is over")
}

// headerOf returns a header of the given keys and values.
func headerOf(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestBackpressureRetryAfterPausesTheHost(t *testing.T) {
	const rfc850 = "Monday, 02-Jan-06 15:04:05 GMT" // the obsolete form HTTP still accepts
	tests := []struct {
		name   string
		status int
		value  func(now time.Time) string // Retry-After; none if nil
		pause  time.Duration
	}{
		{"429 with seconds", http.StatusTooManyRequests, func(time.Time) string { return "2" }, 2 * time.Second},
		{"429 with seconds and spaces", http.StatusTooManyRequests, func(time.Time) string { return " 2 " }, 2 * time.Second},
		{"429 with an IMF-fixdate", http.StatusTooManyRequests, func(now time.Time) string {
			return now.Add(3 * time.Second).UTC().Format(http.TimeFormat)
		}, 3 * time.Second},
		{"429 with an RFC 850 date", http.StatusTooManyRequests, func(now time.Time) string {
			return now.Add(3 * time.Second).UTC().Format(rfc850)
		}, 3 * time.Second},
		{"429 with an asctime date", http.StatusTooManyRequests, func(now time.Time) string {
			return now.Add(3 * time.Second).UTC().Format(time.ANSIC)
		}, 3 * time.Second},
		{"429 with a date in the past", http.StatusTooManyRequests, func(now time.Time) string {
			return now.Add(-time.Hour).UTC().Format(http.TimeFormat)
		}, 0},
		{"503 with seconds", http.StatusServiceUnavailable, func(time.Time) string { return "2" }, 2 * time.Second},
		{"200 with seconds", http.StatusOK, func(time.Time) string { return "2" }, 0},
		{"500 with seconds", http.StatusInternalServerError, func(time.Time) string { return "2" }, 0},
		{"429 without Retry-After", http.StatusTooManyRequests, nil, 0},
		{"429 with garbage", http.StatusTooManyRequests, func(time.Time) string { return "soon" }, 0},
		{"429 with a negative number", http.StatusTooManyRequests, func(time.Time) string { return "-2" }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bp := &backpressure{first: func(now time.Time) *http.Response {
					h := http.Header{}
					if tt.value != nil {
						h.Set("Retry-After", tt.value(now))
					}
					return memResponse(tt.status, h)
				}}
				bp.run(t)
				if tt.pause > 0 {
					assert.Equal(t, bp.t0.Add(tt.pause), bp.host.PausedUntil)
					assert.Equal(t, 1, bp.paused)
				} else {
					assert.Zero(t, bp.host.PausedUntil)
					assert.Zero(t, bp.paused)
				}
				assert.Equal(t, evenly(3, tt.pause, 0), bp.a, "a.test waits for the pause to end")
				assert.Equal(t, []time.Duration{0}, bp.b, "b.test is not paused")
			})
		})
	}
}

func TestBackpressurePauseIsCapped(t *testing.T) {
	tests := []struct {
		name  string
		value string
		opts  []httpfutures.Option
		pause time.Duration
	}{
		{"WithMaxRetryAfter", "1743405600", []httpfutures.Option{httpfutures.WithMaxRetryAfter(10 * time.Second)}, 10 * time.Second},
		{"default", "1743405600", nil, httpfutures.DefaultMaxRetryAfter},
		{"beyond a Duration", "99999999999999999999999", nil, httpfutures.DefaultMaxRetryAfter},
		{"under the cap", "7", []httpfutures.Option{httpfutures.WithMaxRetryAfter(10 * time.Second)}, 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bp := &backpressure{opts: tt.opts, first: func(time.Time) *http.Response {
					return memResponse(http.StatusTooManyRequests, headerOf("Retry-After", tt.value))
				}}
				bp.run(t)
				assert.Equal(t, bp.t0.Add(tt.pause), bp.host.PausedUntil)
				assert.Equal(t, evenly(3, tt.pause, 0), bp.a)
				assert.Equal(t, []time.Duration{0}, bp.b)
			})
		})
	}
}

func TestBackpressureRateLimitFields(t *testing.T) {
	off := []httpfutures.Option{httpfutures.WithBackpressure(false)}
	tests := []struct {
		name   string
		status int
		header http.Header
		opts   []httpfutures.Option
		pace   rate.Limit      // HostStats.Pace once the response is in
		pause  time.Duration   // HostStats.PausedUntil then, from t0
		a      []time.Duration // when a.test's next three requests are sent
	}{
		{"remaining over reset paces the host", http.StatusOK,
			headerOf("RateLimit", `"default";r=4;t=8`), nil,
			0.5, 0, evenly(3, 2*time.Second, 2*time.Second)},
		{"token policy name", http.StatusOK,
			headerOf("RateLimit", `default;r=4;t=8`), nil,
			0.5, 0, evenly(3, 2*time.Second, 2*time.Second)},
		{"the slowest of several policies", http.StatusOK,
			headerOf("RateLimit", `"burst";r=50;t=1, "daily";r=4;t=8`), nil,
			0.5, 0, evenly(3, 2*time.Second, 2*time.Second)},
		{"policies in several fields", http.StatusOK,
			headerOf("RateLimit", `"burst";r=50;t=1`, "RateLimit", `"daily";r=4;t=8`), nil,
			0.5, 0, evenly(3, 2*time.Second, 2*time.Second)},
		{"other parameters are ignored", http.StatusOK,
			headerOf("RateLimit", `"default";q=100;r=4;w;t=8`), nil,
			0.5, 0, evenly(3, 2*time.Second, 2*time.Second)},
		{"exhausted quota pauses the host", http.StatusOK,
			headerOf("RateLimit", `"default";r=0;t=3`), nil,
			0, 3 * time.Second, evenly(3, 3*time.Second, 0)},
		{"malformed: no item", http.StatusOK,
			headerOf("RateLimit", `;;;`), nil,
			0, 0, evenly(3, 0, 0)},
		{"malformed: r not a number", http.StatusOK,
			headerOf("RateLimit", `"default";r=abc;t=8`), nil,
			0, 0, evenly(3, 0, 0)},
		{"malformed: no t", http.StatusOK,
			headerOf("RateLimit", `"default";r=4`), nil,
			0, 0, evenly(3, 0, 0)},
		{"Retry-After wins on a 429", http.StatusTooManyRequests,
			headerOf("Retry-After", "2", "RateLimit", `"default";r=1;t=100`), nil,
			0, 2 * time.Second, evenly(3, 2*time.Second, 0)},
		{"legacy fields pace the host", http.StatusOK,
			headerOf("RateLimit-Remaining", "4", "RateLimit-Reset", "8"), nil,
			0.5, 0, evenly(3, 2*time.Second, 2*time.Second)},
		{"legacy fields pause the host", http.StatusOK,
			headerOf("RateLimit-Remaining", "0", "RateLimit-Reset", "3"), nil,
			0, 3 * time.Second, evenly(3, 3*time.Second, 0)},
		{"legacy fields, malformed", http.StatusOK,
			headerOf("RateLimit-Remaining", "4", "RateLimit-Reset", "-8"), nil,
			0, 0, evenly(3, 0, 0)},
		{"backpressure off: no pacing", http.StatusOK,
			headerOf("RateLimit", `"default";r=4;t=8`), off,
			0, 0, evenly(3, 0, 0)},
		{"backpressure off: no pause", http.StatusTooManyRequests,
			headerOf("Retry-After", "2"), off,
			0, 0, evenly(3, 0, 0)},
		{"backpressure off: no pause from RateLimit", http.StatusOK,
			headerOf("RateLimit", `"default";r=0;t=3`), off,
			0, 0, evenly(3, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bp := &backpressure{opts: tt.opts, first: func(time.Time) *http.Response {
					return memResponse(tt.status, tt.header.Clone())
				}}
				bp.run(t)
				assert.Equal(t, tt.pace, bp.host.Pace)
				if tt.pause > 0 {
					assert.Equal(t, bp.t0.Add(tt.pause), bp.host.PausedUntil)
					assert.Equal(t, 1, bp.paused)
				} else {
					assert.Zero(t, bp.host.PausedUntil)
					assert.Zero(t, bp.paused)
				}
				assert.Equal(t, tt.a, bp.a)
				assert.Equal(t, []time.Duration{0}, bp.b, "b.test keeps its own pace")
			})
		})
	}

	t.Run("the pace lapses at the reset", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &sendRecorder{respond: func(req *http.Request, n int) *http.Response {
				if n == 0 {
					return memResponse(http.StatusOK, headerOf("RateLimit", `"default";r=2;t=4`))
				}
				return nil
			}}
			tr := newTransport(t, rec)
			t0 := time.Now()
			_, err := tr.StartRoundTrip(get(t, "http://a.test/")).Result()
			require.NoError(t, err)
			time.Sleep(5 * time.Second)
			assert.Zero(t, tr.HostStats("a.test").Pace)
			require.NoError(t, httpfutures.WaitAll(context.Background(), startN(t, tr, "http://a.test/", 3)...))
			assert.Equal(t, []time.Duration{0, 5 * time.Second, 5 * time.Second, 5 * time.Second}, offsetsFrom(t0, rec.times("a.test")))
		})
	})
}

// limiterCall is one call to a recordingLimiter.
type limiterCall struct {
	host string
	now  time.Time
}

// recordingLimiter is a Limiter that records its calls and checks that they never overlap.
type recordingLimiter struct {
	reserve func(n int, now time.Time) (time.Time, error) // n: calls before this one; nil: now

	inCall  atomic.Int32
	overlap atomic.Bool
	mu      sync.Mutex
	calls   []limiterCall
}

func (l *recordingLimiter) Reserve(ctx context.Context, host string, now time.Time) (time.Time, error) {
	if l.inCall.Add(1) > 1 {
		l.overlap.Store(true)
	}
	defer l.inCall.Add(-1)
	if ctx == nil || ctx.Err() != nil {
		return time.Time{}, errors.New("no live context")
	}
	runtime.Gosched() // a distributed limiter makes a round trip here: give another caller its chance
	l.mu.Lock()
	n := len(l.calls)
	l.calls = append(l.calls, limiterCall{host, now})
	l.mu.Unlock()
	if l.reserve == nil {
		return now, nil
	}
	return l.reserve(n, now)
}

func (l *recordingLimiter) recorded() []limiterCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func TestCustomLimiter(t *testing.T) {
	t.Run("called by one goroutine at a time, with non-decreasing times", func(t *testing.T) {
		lim := &recordingLimiter{}
		tr := newTransport(t, &sendRecorder{}, httpfutures.WithWorkers(8), httpfutures.WithLimiter(lim))
		var fs []*httpfutures.Future
		for i := range 64 {
			fs = append(fs, startN(t, tr, fmt.Sprintf("http://host-%d.test/", i), 4)...)
		}
		require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
		calls := lim.recorded()
		assert.Len(t, calls, len(fs), "one token per request")
		assert.False(t, lim.overlap.Load(), "calls never overlap")
		assert.True(t, slices.IsSortedFunc(calls, func(a, b limiterCall) int { return a.now.Compare(b.now) }),
			"times never go back")
		perHost := map[string]int{}
		for _, c := range calls {
			perHost[c.host]++
		}
		assert.Len(t, perHost, 64)
		assert.Equal(t, 4, perHost["host-0.test"], "the host is named as the Scheduler keys it")
	})

	t.Run("its time is honoured", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lim := &recordingLimiter{reserve: func(_ int, now time.Time) (time.Time, error) {
				return now.Add(time.Second), nil
			}}
			rec := &sendRecorder{}
			tr := newTransport(t, rec, httpfutures.WithLimiter(lim))
			t0 := time.Now()
			require.NoError(t, httpfutures.WaitAll(context.Background(), startN(t, tr, "http://a.test/", 4)...))
			assert.Equal(t, evenly(4, time.Second, time.Second), offsetsFrom(t0, rec.times("a.test")))
			var at []time.Duration
			for _, c := range lim.recorded() {
				assert.Equal(t, "a.test", c.host)
				at = append(at, c.now.Sub(t0))
			}
			assert.Equal(t, evenly(4, 0, time.Second), at, "each token is asked for once the previous one is used")
			assert.False(t, lim.overlap.Load())
		})
	})

	t.Run("an error fails only its request", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			down := errors.New("quota service down")
			lim := &recordingLimiter{reserve: func(n int, now time.Time) (time.Time, error) {
				if n == 1 {
					return time.Time{}, down
				}
				return now, nil
			}}
			rec := &sendRecorder{}
			tr := newTransport(t, rec, httpfutures.WithWorkers(1), httpfutures.WithLimiter(lim))
			fs := startN(t, tr, "http://a.test:8080/", 3)
			_, err := fs[0].Result()
			require.NoError(t, err)
			resp, err := fs[1].Result()
			assert.Nil(t, resp)
			require.ErrorIs(t, err, down)
			var lerr *httpfutures.LimiterError
			require.ErrorAs(t, err, &lerr)
			assert.Equal(t, "a.test:8080", lerr.Host)
			assert.Contains(t, err.Error(), "a.test:8080")
			_, err = fs[2].Result()
			require.NoError(t, err, "the next request proceeds")
			assert.Len(t, rec.times("a.test:8080"), 2, "the refused request was not sent")
			assert.Equal(t, uint64(1), tr.Stats().Failed)
		})
	})
}

func TestRateLimiterReserve(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const step = 20 * time.Microsecond // 1/50,000 s
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	t.Run("each call is a fresh arrival", func(t *testing.T) {
		l := httpfutures.NewRateLimiter(50000, 1)
		assert.Equal(t, rate.Limit(50000), l.Limit())
		assert.Equal(t, 1, l.Burst())
		reserve := func(now time.Time) time.Time {
			due, err := l.Reserve(ctx, "h", now)
			require.NoError(t, err)
			return due
		}
		// Three arrivals at once: the burst, then one token per step, queued on the limiter.
		assert.Equal(t, at(0), reserve(at(0)))
		assert.Equal(t, at(step), reserve(at(0)))
		assert.Equal(t, at(2*step), reserve(at(0)))
		// A caller arriving well after the last token came due gets the refilled burst (one token)
		// and then waits a step: the idle time earns no backlog.
		assert.Equal(t, at(5*step), reserve(at(5*step)))
		assert.Equal(t, at(6*step), reserve(at(5*step)))
		// A time before the last one is taken as the last one.
		assert.Equal(t, at(7*step), reserve(at(0)))
		// After a long idle spell: at once.
		assert.Equal(t, at(time.Second), reserve(at(time.Second)))
	})

	t.Run("a burst", func(t *testing.T) {
		l := httpfutures.NewRateLimiter(50000, 3)
		for range 3 {
			due, err := l.Reserve(ctx, "h", at(0))
			require.NoError(t, err)
			assert.Equal(t, at(0), due)
		}
		due, err := l.Reserve(ctx, "h", at(0))
		require.NoError(t, err)
		assert.Equal(t, at(step), due)
	})

	t.Run("a burst below 1 is 1", func(t *testing.T) {
		assert.Equal(t, 1, httpfutures.NewRateLimiter(10, 0).Burst())
	})

	t.Run("a Scheduler's waiting requests keep to the grid", func(t *testing.T) {
		// Requests queued since t0 and reserved late, at 5 steps, are given the tokens that came
		// due meanwhile: due at or before now, they are all sent at once. A fresh arrival at the
		// same time would get one.
		l := httpfutures.NewRateLimiter(50000, 1)
		since := at(0)
		assert.Equal(t, at(0), l.ReserveSince(at(0), since))
		assert.Equal(t, at(step), l.ReserveSince(at(0), since))
		var due []time.Duration
		for range 6 {
			due = append(due, l.ReserveSince(at(5*step), since).Sub(t0))
		}
		assert.Equal(t, evenly(6, 2*step, step), due)
	})

	t.Run("no catch-up after a long stall", func(t *testing.T) {
		l := httpfutures.NewRateLimiter(50000, 1)
		since := at(0)
		l.ReserveSince(at(0), since)
		l.ReserveSince(at(0), since)
		// Stopped for a second (suspended, say): the schedule restarts instead of sending a flood.
		assert.Equal(t, at(time.Second), l.ReserveSince(at(time.Second), since))
		assert.Equal(t, at(time.Second+step), l.ReserveSince(at(time.Second), since))
	})

	t.Run("a request that arrived after the last token catches up from its arrival", func(t *testing.T) {
		l := httpfutures.NewRateLimiter(50000, 1)
		l.ReserveSince(at(0), at(0))
		l.ReserveSince(at(0), at(0)) // due at one step
		// Queued at two steps and reserved at five: its token was due when it arrived; none is
		// owed for the time before it arrived.
		assert.Equal(t, at(2*step), l.ReserveSince(at(5*step), at(2*step)))
	})

	t.Run("rates", func(t *testing.T) {
		for _, r := range []rate.Limit{1, 10, 1000, 50000} {
			t.Run(strconv.FormatFloat(float64(r), 'f', -1, 64), func(t *testing.T) {
				l := httpfutures.NewRateLimiter(r, 1)
				interval := time.Duration(float64(time.Second) / float64(r))
				var due []time.Duration
				for range 5 {
					d, err := l.Reserve(ctx, "h", t0)
					require.NoError(t, err)
					due = append(due, d.Sub(t0))
				}
				assert.Equal(t, evenly(5, 0, interval), due)
			})
		}
	})
}
