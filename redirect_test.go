package httpfutures_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// concurrency counts the requests a handler runs at once, and the most seen.
type concurrency struct{ cur, most atomic.Int64 }

func (c *concurrency) enter() {
	n := c.cur.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
}

func (c *concurrency) leave() { c.cur.Add(-1) }

// A Session request that redirects follows its redirects in its own worker: however many
// requests redirect, the goroutines and the round trips at once stay bounded by the workers, the
// queued requests stay queued, and Close fails every request that has not started.
func TestRedirectsStayInThePool(t *testing.T) {
	const workers, n = 2, 1000
	var conc concurrency
	var hits atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/r", func(w http.ResponseWriter, r *http.Request) {
		conc.enter()
		defer conc.leave()
		hits.Add(1)
		http.Redirect(w, r, "/final", http.StatusFound)
	})
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) {
		conc.enter()
		defer conc.leave()
		hits.Add(1)
		time.Sleep(time.Millisecond)
		io.WriteString(w, "final")
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	base := runtime.NumGoroutine()
	s := httpfutures.NewSession(httpfutures.WithWorkers(workers))

	fs := make([]*httpfutures.Future, n)
	for i := range fs {
		fs[i] = s.Get(ts.URL + "/r")
	}
	var first *httpfutures.Future
	for f := range httpfutures.AsCompleted(fs...) {
		first = f
		break
	}
	resp, err := first.Result()
	require.NoError(t, err)
	assert.Equal(t, "/final", resp.Request.URL.Path)
	// Each request takes a millisecond at least, so two workers send some four hops a millisecond,
	// and the first result comes after a few: a goroutine per request would have sent most of
	// the 2,000 hops by then. A busy machine may delay this goroutine by tens of milliseconds,
	// while the workers send on.
	assert.Less(t, hits.Load(), int64(n/4), "the first Future resolved before every request had been sent")
	st := s.Stats()
	assert.LessOrEqual(t, st.InFlight, workers, "no request runs outside the pool")
	// The client side: workers, the pacer, two connection loops per connection; the server side:
	// a goroutine per connection. Far below one goroutine per request.
	assert.Less(t, runtime.NumGoroutine()-base, 8*workers+8, "no goroutine per redirected request")

	require.NoError(t, s.Close())
	closed := 0
	for _, f := range fs {
		if _, err := f.Result(); err != nil {
			require.ErrorIs(t, err, httpfutures.ErrClosed)
			closed++
		}
	}
	assert.Greater(t, closed, n/2, "Close failed the requests that had not started")
	assert.LessOrEqual(t, conc.most.Load(), int64(workers), "round trips at once never exceed the workers")
	sent := hits.Load()
	assert.Less(t, sent, int64(2*n), "the requests that Close failed were never sent")
}

// Eight workers and a hundred requests redirecting five times each finish, every hop counted.
func TestRedirectChainsFinish(t *testing.T) {
	ts := newRedirectChain(t, nil)
	s := newSession(t, httpfutures.WithWorkers(8))
	fs := make([]*httpfutures.Future, 100)
	for i := range fs {
		fs[i] = s.Get(ts.URL + "/r/5")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, httpfutures.WaitAll(ctx, fs...), "no deadlock")
	for _, f := range fs {
		resp, err := f.Result()
		require.NoError(t, err)
		assert.Equal(t, "/r/0", resp.Request.URL.Path)
		assert.Equal(t, "landed", body(t, resp))
	}
	st := s.Stats()
	assert.Equal(t, uint64(100), st.Completed, "a request is counted once, however it redirected")
	assert.Equal(t, uint64(500), st.Redirects, "each hop counts as a redirect")
	require.Eventually(t, func() bool { return s.HostStats(ts.URL).InFlight == 0 }, 5*time.Second, time.Millisecond,
		"every slot the redirects took came back")
}

// A redirect to another host waits for that host's slot: its limit holds.
func TestRedirectRespectsTheOtherHostsLimit(t *testing.T) {
	var conc concurrency
	tsB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conc.enter()
		defer conc.leave()
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, "b")
	}))
	t.Cleanup(tsB.Close)
	tsA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, tsB.URL+"/b", http.StatusFound)
	}))
	t.Cleanup(tsA.Close)
	s := newSession(t, httpfutures.WithWorkers(8), httpfutures.WithHostLimit(1))
	fs := make([]*httpfutures.Future, 40)
	for i := range fs {
		if i%2 == 0 {
			fs[i] = s.Get(tsA.URL + "/a")
		} else {
			fs[i] = s.Get(tsB.URL + "/direct")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, httpfutures.WaitAll(ctx, fs...))
	assert.Equal(t, int64(1), conc.most.Load(), "host B never had two round trips at once")
	assert.Equal(t, uint64(20), s.Stats().Redirects)
}

// A redirect to a host with a rate limit waits for its token.
func TestRedirectRespectsTheRateLimit(t *testing.T) {
	var stamps []time.Time
	var mu = make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/r", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/final", http.StatusFound)
	})
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) {
		mu <- struct{}{}
		stamps = append(stamps, time.Now())
		<-mu
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	s := newSession(t, httpfutures.WithWorkers(4), httpfutures.WithRateLimit(50, 1))
	fs := make([]*httpfutures.Future, 10)
	start := time.Now()
	for i := range fs {
		fs[i] = s.Get(ts.URL + "/r")
	}
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	// 20 round trips at 50/s with a burst of 1: at least 19 intervals of 20 ms.
	assert.GreaterOrEqual(t, time.Since(start), 19*20*time.Millisecond*9/10, "every hop took a token")
	assert.Len(t, stamps, 10)
}

// A redirect waiting for a slot of a busy host is stopped by Close, and gives back nothing it
// did not take: the host's slot serves the next request.
func TestCloseStopsARedirectWaitingForASlot(t *testing.T) {
	tsB, g := newGateServer(t)
	tsA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, tsB.URL+"/after-redirect", http.StatusFound)
	}))
	t.Cleanup(tsA.Close)
	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(4), httpfutures.WithHostLimit(1))
	t.Cleanup(func() { sched.Close() })
	holder := newSession(t, httpfutures.WithScheduler(sched))
	held := holder.Get(tsB.URL + "/held") // takes host B's only slot
	<-g.arrived
	s := httpfutures.NewSession(httpfutures.WithScheduler(sched))
	waiting := s.Get(tsA.URL + "/start")
	require.Eventually(t, func() bool { return sched.Stats().InFlight == 2 },
		5*time.Second, time.Millisecond, "the redirect waits for host B, holding its worker")
	require.NoError(t, s.Close())
	assertClosedRunning(t, waiting)
	g.open()
	_, err := held.Result()
	require.NoError(t, err)
	resp, err := holder.Get(tsB.URL + "/next").Result()
	require.NoError(t, err, "host B's slot is free again")
	assert.Equal(t, "/next", body(t, resp))
	assert.Eventually(t, func() bool { return holder.HostStats(tsB.Listener.Addr().String()).InFlight == 0 },
		5*time.Second, time.Millisecond)
}
