package httpfutures_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// http.Client adds the cookies of its jar to the request it is given: a Session must give it a
// copy, or the caller's request changes, retries send the cookie twice, and two requests made
// from one http.Request race.
func TestSessionJarLeavesTheRequestAlone(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Cookie"))
		mu.Unlock()
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(ts.Close)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	u, err := url.Parse(ts.URL)
	require.NoError(t, err)
	jar.SetCookies(u, []*http.Cookie{{Name: "a", Value: "1"}})
	s := newSession(t, httpfutures.WithClient(&http.Client{Jar: jar}), httpfutures.WithRetry(fast))

	req := get(t, ts.URL)
	var wg sync.WaitGroup
	for range 2 { // the same request twice, at once
		wg.Go(func() {
			_, err := s.Do(req).Result()
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Empty(t, req.Header, "the caller's request is unchanged")
	mu.Lock()
	defer mu.Unlock()
	for _, c := range seen {
		assert.Equal(t, "a=1", c, "every attempt sent the cookie once")
	}
}

// customCtx is a cancelable context of a type the context package does not know (it hides its
// values): each context derived from it costs a goroutine until one of the two is canceled.
type customCtx struct{ context.Context }

func (customCtx) Value(any) any { return nil }

func TestAttemptTimeoutLeavesNoContextBehind(t *testing.T) {
	ts := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{AttemptTimeout: time.Minute}))
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	parent := customCtx{base}
	_, err := tr.StartRoundTrip(get(t, ts.URL).WithContext(parent)).Result() // warm up the pool
	require.NoError(t, err)
	before := runtime.NumGoroutine()
	for range 50 {
		_, err := tr.StartRoundTrip(get(t, ts.URL).WithContext(parent)).Result()
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return runtime.NumGoroutine() < before+10 }, 5*time.Second, 10*time.Millisecond,
		"each attempt's context is released when it ends: %d goroutines, %d before", runtime.NumGoroutine(), before)
}

// A Session request that followed a redirect runs with no slot; its host must not be evicted
// meanwhile, or a retry on it would run beside a second state for the same host, and the host
// limit would not hold.
func TestDetachedRequestKeepsItsHost(t *testing.T) {
	releaseB := make(chan struct{})
	releaseA := make(chan struct{})
	var bHits atomic.Int32
	tsB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bHits.Add(1) == 1 {
			<-releaseB
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(tsB.Close)
	var cur, most atomic.Int32
	tsA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		defer cur.Add(-1)
		for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
		}
		if r.URL.Path == "/block" {
			<-releaseA
			return
		}
		http.Redirect(w, r, tsB.URL+"/b", http.StatusFound)
	}))
	t.Cleanup(tsA.Close)
	s := newSession(t, httpfutures.WithHostLimit(1), httpfutures.WithWorkers(4),
		httpfutures.WithHostIdleTimeout(time.Nanosecond),
		httpfutures.WithRetry(httpfutures.RetryPolicy{Backoff: func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 }}))

	redirected := s.Get(tsA.URL + "/start")
	require.Eventually(t, func() bool { return bHits.Load() == 1 }, 5*time.Second, time.Millisecond)
	s.Get(tsB.URL + "/evict") // a request elsewhere: the scheduler may evict idle hosts now
	blocking := s.Get(tsA.URL + "/block")
	require.Eventually(t, func() bool { return cur.Load() == 1 }, 5*time.Second, time.Millisecond)
	close(releaseB) // B fails: the redirected request is retried on host A, whose slot is taken
	require.Eventually(t, func() bool { return s.Transport().HostStats(tsA.Listener.Addr().String()).Queued == 1 },
		5*time.Second, time.Millisecond, "the retry waits for host A's only slot")
	close(releaseA)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := redirected.Wait(ctx)
	require.NoError(t, err)
	_, err = blocking.Wait(ctx)
	require.NoError(t, err)
	assert.Equal(t, int32(1), most.Load(), "host A never had two requests at once")
}

// Close and Shutdown return once every Future they ended has resolved, however many there are.
func TestShutdownReturnsAfterEveryFutureResolved(t *testing.T) {
	ts := newEchoServer(t)
	s := httpfutures.NewScheduler(httpfutures.WithHostRateLimit(0.001, 1))
	tr := httpfutures.NewTransport(nil, httpfutures.WithScheduler(s))
	fs := make([]*httpfutures.Future, 20000)
	for i := range fs {
		fs[i] = tr.StartRoundTrip(get(t, ts.URL))
	}
	_, err := fs[0].Result() // the first goes; the others wait a thousand seconds for a token
	require.NoError(t, err)
	done := make(chan int)
	go func() {
		tr.Shutdown(context.Background())
		unresolved := 0
		for _, f := range fs {
			select {
			case <-f.Done():
			default:
				unresolved++
			}
		}
		done <- unresolved
	}()
	require.Eventually(t, func() bool { return tr.Stats().Queued == len(fs)-1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, s.Close()) // fails the queued requests, which Shutdown waits for
	assert.Equal(t, 0, <-done, "no Future was left unresolved when Shutdown returned")
}

func TestRetryBudgetWithATinyWindow(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable), ok)
	tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{
		MinWait: time.Millisecond, MaxWait: time.Millisecond, Budget: httpfutures.RetryBudget{Window: 5 * time.Nanosecond},
	}))
	_, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
	require.NoError(t, err, "a window too short to divide in ten buckets still works")
}
