package httpfutures_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// heldTransport is an in-memory RoundTripper whose requests wait until it is opened.
type heldTransport struct {
	entered chan struct{} // told, without blocking, each time a request reaches RoundTrip
	release chan struct{}
	once    sync.Once
	calls   atomic.Int64
}

func newHeldTransport() *heldTransport {
	return &heldTransport{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (h *heldTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h.calls.Add(1)
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.release
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

func (h *heldTransport) open() { h.once.Do(func() { close(h.release) }) }

// hostOf returns the host and port of a server's URL: the key the Scheduler queues it under.
func hostOf(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	return u.Host
}

// pathLog is a handler that records the paths it serves, in order, across servers.
type pathLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *pathLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.paths = append(l.paths, r.URL.Path)
	l.mu.Unlock()
	io.WriteString(w, r.URL.Path)
}

func (l *pathLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paths...)
}

func TestWorkersBoundConcurrency(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(3))
	t.Cleanup(g.open) // before the transport's Close, which waits for the running requests

	fs := make([]*httpfutures.Future, 10)
	for i := range fs {
		fs[i] = tr.StartRoundTrip(get(t, fmt.Sprintf("%s/%d", ts.URL, i)))
	}
	for range 3 {
		<-g.arrived
	}
	st := tr.Stats()
	assert.Equal(t, 3, st.InFlight)
	assert.Equal(t, 7, st.Queued)
	assert.Equal(t, 3, tr.Scheduler().Stats().InFlight)
	assert.Empty(t, g.arrived, "no fourth request reached the server")

	g.open()
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	for range 7 {
		<-g.arrived
	}
	assert.Equal(t, 0, tr.Stats().Queued)
}

func TestSharedScheduler(t *testing.T) {
	ts, g := newGateServer(t)
	echo := newEchoServer(t)
	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(2))
	t.Cleanup(func() { sched.Close() })
	first := httpfutures.NewSession(httpfutures.WithScheduler(sched))
	t.Cleanup(func() { first.Close() })
	second := newSession(t, httpfutures.WithScheduler(sched))
	tr := newTransport(t, nil, httpfutures.WithScheduler(sched))
	t.Cleanup(g.open)

	var fs []*httpfutures.Future
	for i := range 2 {
		fs = append(fs,
			first.Get(fmt.Sprintf("%s/first/%d", ts.URL, i)),
			second.Get(fmt.Sprintf("%s/second/%d", ts.URL, i)),
			tr.StartRoundTrip(get(t, fmt.Sprintf("%s/transport/%d", ts.URL, i))))
	}
	<-g.arrived
	<-g.arrived
	st := sched.Stats()
	assert.Equal(t, 2, st.InFlight, "two workers for the three of them together")
	assert.Equal(t, 4, st.Queued)
	assert.Equal(t, 2, first.Transport().Stats().InFlight+second.Transport().Stats().InFlight+tr.Stats().InFlight)
	assert.Empty(t, g.arrived)
	g.open()
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))

	require.NoError(t, first.Close())
	_, err := first.Get(echo.URL).Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed)
	resp, err := second.Get(echo.URL + "/after").Result()
	require.NoError(t, err, "closing a session leaves the shared scheduler running")
	assert.Equal(t, "GET /after", body(t, resp))
	resp, err = tr.StartRoundTrip(get(t, echo.URL+"/after")).Result()
	require.NoError(t, err)
	assert.Equal(t, "GET /after", body(t, resp))

	require.NoError(t, sched.Close())
	_, err = second.Get(echo.URL).Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed)
	_, err = tr.StartRoundTrip(get(t, echo.URL)).Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed)
}

func TestHostLimit(t *testing.T) {
	a, g := newGateServer(t)
	b := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(4), httpfutures.WithHostLimit(1))
	t.Cleanup(g.open)
	hostA := hostOf(t, a.URL)

	var fs []*httpfutures.Future
	for i := range 3 {
		fs = append(fs, tr.StartRoundTrip(get(t, fmt.Sprintf("%s/%d", a.URL, i))))
	}
	<-g.arrived
	resp, err := tr.StartRoundTrip(get(t, b.URL+"/b")).Result()
	require.NoError(t, err, "another host is served while the first is at its limit")
	assert.Equal(t, "GET /b", body(t, resp))
	assert.Equal(t, httpfutures.HostStats{Queued: 2, InFlight: 1, Limit: 1}, tr.HostStats(hostA))
	assert.Equal(t, httpfutures.HostStats{Queued: 2, InFlight: 1, Limit: 1}, tr.Scheduler().HostStats(hostA))
	assert.Empty(t, g.arrived, "one request at a time to host A")

	g.open()
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	assert.Equal(t, httpfutures.HostStats{}, tr.HostStats("unknown.invalid:1"))
}

func TestPriorities(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))
	t.Cleanup(g.open)
	blocker := tr.StartRoundTrip(get(t, ts.URL+"/blocker"))
	require.Equal(t, "/blocker", <-g.arrived)

	withPriority := func(path string, p int) *http.Request {
		req := get(t, ts.URL+path)
		return req.WithContext(httpfutures.ContextWithPriority(req.Context(), p))
	}
	fs := []*httpfutures.Future{
		tr.StartRoundTrip(get(t, ts.URL+"/a")),
		tr.StartRoundTrip(get(t, ts.URL+"/b")),
		tr.StartRoundTrip(withPriority("/c", 5)),
		tr.StartRoundTrip(withPriority("/d", -1)),
		tr.StartRoundTrip(withPriority("/huge", math.MaxInt)),
		tr.StartRoundTrip(withPriority("/tiny", math.MinInt)),
	}
	g.open()
	require.NoError(t, httpfutures.WaitAll(context.Background(), append(fs, blocker)...))
	var order []string
	for range fs {
		order = append(order, <-g.arrived)
	}
	assert.Equal(t, []string{"/huge", "/c", "/a", "/b", "/d", "/tiny"}, order,
		"highest priority first, then in the order submitted; negative after the default; extremes keep their sign")
}

func TestFIFOPerHostRoundRobinAcrossHosts(t *testing.T) {
	blocker, g := newGateServer(t)
	log := &pathLog{}
	a := httptest.NewServer(log)
	t.Cleanup(a.Close)
	b := httptest.NewServer(log)
	t.Cleanup(b.Close)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))
	t.Cleanup(g.open)

	first := tr.StartRoundTrip(get(t, blocker.URL))
	<-g.arrived
	fs := []*httpfutures.Future{
		tr.StartRoundTrip(get(t, a.URL+"/A1")),
		tr.StartRoundTrip(get(t, a.URL+"/A2")),
		tr.StartRoundTrip(get(t, a.URL+"/A3")),
		tr.StartRoundTrip(get(t, b.URL+"/B1")),
		tr.StartRoundTrip(get(t, b.URL+"/B2")),
	}
	g.open()
	require.NoError(t, httpfutures.WaitAll(context.Background(), append(fs, first)...))
	// The round-robin is a FIFO of hosts: A joined it with A1, B with B1, so A is served first.
	// A host goes back to the end of the ring after each request it sends, and leaves it once
	// its queue is empty: A B A B A.
	assert.Equal(t, []string{"/A1", "/B1", "/A2", "/B2", "/A3"}, log.all())
}

func TestNoGoroutinePerQueuedRequest(t *testing.T) {
	const n = 20000
	before := runtime.NumGoroutine()
	held := newHeldTransport()
	tr := newTransport(t, held, httpfutures.WithWorkers(1))
	t.Cleanup(held.open)

	fs := make([]*httpfutures.Future, n)
	for i := range fs {
		fs[i] = tr.StartRoundTrip(get(t, fmt.Sprintf("http://queued.test/%d", i)))
	}
	<-held.entered
	assert.Equal(t, n-1, tr.Stats().Queued)
	grown := runtime.NumGoroutine() - before
	assert.Less(t, grown, 20, "a worker and a pacer, not a goroutine per queued request")

	held.open()
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	assert.Equal(t, int64(n), held.calls.Load())
}

func TestCancelManyQueued(t *testing.T) {
	const n = 10000
	tests := []struct {
		name     string
		priority func(i int) int
	}{
		{"default priority", func(int) int { return 0 }},
		{"mixed priorities", func(i int) int { return i%7 - 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := newHeldTransport()
			tr := newTransport(t, held, httpfutures.WithWorkers(1))
			t.Cleanup(held.open)
			running := tr.StartRoundTrip(get(t, "http://held.test/running"))
			<-held.entered

			fs := make([]*httpfutures.Future, n)
			for i := range fs {
				req := get(t, fmt.Sprintf("http://held.test/%d", i))
				fs[i] = tr.StartRoundTrip(req.WithContext(httpfutures.ContextWithPriority(req.Context(), tt.priority(i))))
			}
			require.Equal(t, n, tr.Stats().Queued)

			start := time.Now()
			stopped := 0
			for _, odd := range []int{1, 0} { // leave holes in the queue, then empty it
				for i := odd; i < n; i += 2 {
					if fs[i].Cancel() {
						stopped++
					}
				}
			}
			elapsed := time.Since(start)
			assert.Equal(t, n, stopped)
			st := tr.Stats()
			assert.Equal(t, 0, st.Queued)
			assert.Equal(t, uint64(n), st.Canceled)
			assert.Less(t, elapsed, 5*time.Second, "10,000 cancellations take milliseconds: each leaves its queue in place")
			wrong := 0
			for _, f := range fs {
				if resp, err := f.Result(); resp != nil || !assert.ErrorIs(t, err, context.Canceled) {
					wrong++
				}
			}
			assert.Zero(t, wrong)

			held.open()
			_, err := running.Result()
			require.NoError(t, err)
			_, err = tr.StartRoundTrip(get(t, "http://held.test/after")).Result()
			require.NoError(t, err)
			assert.Equal(t, int64(2), held.calls.Load(), "no canceled request reached the RoundTripper")
		})
	}

	t.Run("request context", func(t *testing.T) {
		held := newHeldTransport()
		tr := newTransport(t, held, httpfutures.WithWorkers(1))
		t.Cleanup(held.open)
		tr.StartRoundTrip(get(t, "http://held.test/running"))
		<-held.entered

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fs := make([]*httpfutures.Future, n)
		for i := range fs {
			fs[i] = tr.StartRoundTrip(get(t, fmt.Sprintf("http://held.test/%d", i)).WithContext(ctx))
		}
		cancel()
		require.ErrorIs(t, httpfutures.WaitAll(context.Background(), fs...), context.Canceled)
		assert.Equal(t, 0, tr.Stats().Queued)
		require.Eventually(t, func() bool { return tr.Stats().Canceled == n }, 5*time.Second, time.Millisecond)
		held.open()
		_, err := tr.StartRoundTrip(get(t, "http://held.test/after")).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(2), held.calls.Load())
	})
}

func TestRedirectsNeverDeadlockThePool(t *testing.T) {
	var hits atomic.Int64
	ts := newRedirectChain(t, &hits)

	tests := []struct {
		name      string
		hostLimit int
		n         int
	}{
		{"as many as the workers", 0, 8},
		{"eight times the workers", 0, 64},
		{"as many as the workers, one per host", 1, 8},
		{"eight times the workers, one per host", 1, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			s := newSession(t, httpfutures.WithWorkers(8), httpfutures.WithHostLimit(tt.hostLimit))
			fs := make([]*httpfutures.Future, tt.n)
			for i := range fs {
				fs[i] = s.Get(ts.URL + "/r/3")
			}
			t.Cleanup(func() { // a deadlock fails the test rather than hang the session's Close
				for _, f := range fs {
					f.Cancel()
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, f := range fs {
				resp, err := f.Wait(ctx)
				require.NoError(t, err, "every redirect chain ends")
				assert.Equal(t, "/r/0", resp.Request.URL.Path)
				assert.Equal(t, "landed", body(t, resp))
			}
			assert.Equal(t, int64(4*tt.n), hits.Load())
		})
	}
}

func TestHostStateEviction(t *testing.T) {
	t.Run("idle hosts are forgotten", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			tr := newTransport(t, &sendRecorder{}, httpfutures.WithHostIdleTimeout(time.Second))
			fs := make([]*httpfutures.Future, 1000)
			for i := range fs {
				fs[i] = tr.StartRoundTrip(get(t, fmt.Sprintf("http://host-%d.test/", i)))
			}
			require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
			assert.Equal(t, 1000, tr.Stats().Hosts, "none has been idle for a second yet")

			time.Sleep(2 * time.Second)
			assert.Equal(t, 1000, tr.Stats().Hosts, "eviction happens on submission, not on a timer")
			submit := func(n int) {
				for range n {
					_, err := tr.StartRoundTrip(get(t, "http://fresh.test/")).Result()
					require.NoError(t, err)
				}
			}
			submit(100)
			assert.Equal(t, 1000-2*100+1, tr.Stats().Hosts, "each submission evicts at most two hosts")
			submit(400)
			assert.Equal(t, 1, tr.Stats().Hosts, "only the host in use is left")
		})
	})

	t.Run("a rate-limited host is kept until its bucket refills", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &sendRecorder{}
			// A token every 4s: longer than the idle timeout.
			tr := newTransport(t, rec, httpfutures.WithHostIdleTimeout(time.Second), httpfutures.WithHostRateLimit(0.25, 1))
			t0 := time.Now()
			_, err := tr.StartRoundTrip(get(t, "http://slow.test/")).Result()
			require.NoError(t, err)

			time.Sleep(2 * time.Second)
			for i := range 3 {
				_, err := tr.StartRoundTrip(get(t, fmt.Sprintf("http://other-%d.test/", i))).Result()
				require.NoError(t, err)
			}
			assert.Equal(t, 4, tr.Stats().Hosts, "slow.test is idle for longer than the timeout, but kept")
			_, err = tr.StartRoundTrip(get(t, "http://slow.test/")).Result()
			require.NoError(t, err)
			assert.Equal(t, []time.Duration{0, 4 * time.Second}, offsetsFrom(t0, rec.times("slow.test")),
				"a fresh bucket would have sent the second request at once")

			time.Sleep(5 * time.Second) // all are due for eviction now
			for i := range 2 {
				_, err := tr.StartRoundTrip(get(t, fmt.Sprintf("http://late-%d.test/", i))).Result()
				require.NoError(t, err)
			}
			assert.Equal(t, 2, tr.Stats().Hosts)
		})
	})
}
