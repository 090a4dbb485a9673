package httpfutures_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// ctxProbe is a RoundTripper that hands each request's context to the test before sending it
// on, and waits for the test's go-ahead.
type ctxProbe struct {
	next http.RoundTripper
	ctxs chan context.Context
	goOn chan struct{}
}

func newCtxProbe() *ctxProbe {
	return &ctxProbe{next: http.DefaultTransport, ctxs: make(chan context.Context, 10), goOn: make(chan struct{}, 10)}
}

func (p *ctxProbe) RoundTrip(req *http.Request) (*http.Response, error) {
	p.ctxs <- req.Context()
	<-p.goOn
	return p.next.RoundTrip(req)
}

type probeKey struct{}

// A request whose context can never end runs under a context of the Future's own: it behaves as
// any context to the RoundTripper, ends with Cancel, and carries the request's values.
func TestRunningContext(t *testing.T) {
	ts, g := newGateServer(t)
	probe := newCtxProbe()
	tr := newTransport(t, probe)
	parent := context.WithValue(context.Background(), probeKey{}, "value")
	req := get(t, ts.URL).WithContext(parent)
	f := tr.StartRoundTrip(req)

	ctx := <-probe.ctxs
	assert.Equal(t, "value", ctx.Value(probeKey{}), "the request's values are seen")
	_, hasDeadline := ctx.Deadline()
	assert.False(t, hasDeadline)
	require.NoError(t, ctx.Err())
	select {
	case <-ctx.Done():
		t.Fatal("done before Cancel")
	default:
	}
	var ran, stopped atomic.Int32
	context.AfterFunc(ctx, func() { ran.Add(1) })
	stop := context.AfterFunc(ctx, func() { stopped.Add(1) })
	assert.True(t, stop(), "an AfterFunc stopped before the end does not run")
	assert.False(t, stop())
	// The method that package context calls, directly: its stop reports what it did.
	af, ok := ctx.(interface{ AfterFunc(func()) func() bool })
	require.True(t, ok)
	var direct atomic.Int32
	stopRan := af.AfterFunc(func() { direct.Add(1) })
	stopEarly := af.AfterFunc(func() { stopped.Add(1) })
	assert.True(t, stopEarly())
	assert.False(t, stopEarly())
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	probe.goOn <- struct{}{}
	<-g.arrived

	require.True(t, f.Cancel())
	_, err := f.Result()
	require.ErrorIs(t, err, context.Canceled)
	<-ctx.Done()
	<-child.Done()
	require.ErrorIs(t, ctx.Err(), context.Canceled)
	require.ErrorIs(t, context.Cause(ctx), context.Canceled)
	require.ErrorIs(t, context.Cause(child), context.Canceled)
	require.Eventually(t, func() bool { return ran.Load() == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, int32(1), direct.Load(), "called by Cancel, before it returns")
	assert.False(t, stopRan(), "an AfterFunc that ran can no longer be stopped")
	assert.Zero(t, stopped.Load())

	var late atomic.Int32
	context.AfterFunc(ctx, func() { late.Add(1) })
	require.Eventually(t, func() bool { return late.Load() == 1 }, 5*time.Second, time.Millisecond,
		"an AfterFunc registered after the end runs at once")
	require.NoError(t, parent.Err(), "the caller's context is untouched")
	assert.Same(t, req, f.Request())
}

// A request whose context can end gets a child of it, which both Cancel and the parent end.
func TestRunningContextWithCancelableParent(t *testing.T) {
	ts, g := newGateServer(t)
	probe := newCtxProbe()
	tr := newTransport(t, probe)
	parent, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	f := tr.StartRoundTrip(get(t, ts.URL).WithContext(parent))
	ctx := <-probe.ctxs
	probe.goOn <- struct{}{}
	<-g.arrived
	why := errors.New("the caller gave up")
	cancel(why)
	_, err := f.Result()
	require.ErrorIs(t, err, why, "net/http reports the cause")
	<-ctx.Done()
	assert.ErrorIs(t, context.Cause(ctx), why, "the parent's cause reaches the attempt")
}

// A Session's own request is made with its Future's context: Cancel ends the running request,
// the server sees it end, and a request that completed can be sent again.
func TestSessionRequestContext(t *testing.T) {
	ended := make(chan struct{}, 1)
	arrived := make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-r.Context().Done()
			ended <- struct{}{}
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(ts.Close)
	s := newSession(t)

	slow := s.Get(ts.URL + "/slow")
	<-arrived
	require.True(t, slow.Cancel())
	_, err := slow.Result()
	require.ErrorIs(t, err, context.Canceled)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's request did not end")
	}

	f := s.Get(ts.URL + "/ok")
	resp, err := f.Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	require.NoError(t, f.Request().Context().Err(), "a completed request's context is not canceled")
	again, err := http.DefaultClient.Do(f.Request())
	require.NoError(t, err, "the request can be sent again")
	assert.Equal(t, "ok", body(t, again))
}

// The first attempt runs under the Future's own context, a retry under a fresh one: both can be
// canceled.
func TestCancelRetryAttempt(t *testing.T) {
	var attempts atomic.Int32
	arrived := make(chan int32, 10)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := attempts.Add(1)
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		arrived <- n
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	s := newSession(t, httpfutures.WithRetry(httpfutures.RetryPolicy{
		MaxRetries: 3, MinWait: time.Millisecond, MaxWait: time.Millisecond,
		CheckRetry: retryablehttp.DefaultRetryPolicy,
	}))
	f := s.Get(ts.URL)
	assert.Equal(t, int32(2), <-arrived)
	require.True(t, f.Cancel())
	_, err := f.Result()
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 2, f.Attempts())
}

// A request costs three allocations on a RoundTripper that allocates only its response: the
// Future, and the copy of the request that carries the Future's context. Neither a context nor a
// channel is made per request.
func TestAllocationsPerRequest(t *testing.T) {
	tr := newTransport(t, noopTransport{}, httpfutures.WithWorkers(1))
	req := get(t, "http://noop.invalid/")
	tr.StartRoundTrip(req).Result() // start the workers
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := tr.StartRoundTrip(req).Result(); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 3.0)
}

// A fan-out that keeps a few hundred requests queued allocates nothing for the queue itself
// once it has grown: the drained ring is kept for the next batch.
func TestAllocationsPerBatch(t *testing.T) {
	tr := newTransport(t, noopTransport{}, httpfutures.WithWorkers(1))
	req := get(t, "http://noop.invalid/")
	const batch = 256
	fs := make([]*httpfutures.Future, batch)
	run := func() {
		for i := range fs {
			fs[i] = tr.StartRoundTrip(req)
		}
		for _, f := range fs {
			if _, err := f.Result(); err != nil {
				t.Fatal(err)
			}
		}
	}
	run() // start the workers, grow the queue
	allocs := testing.AllocsPerRun(20, run)
	assert.LessOrEqual(t, allocs, 3.0*batch)
}

// A request that a Session made but could not send still has a working context.
func TestSessionInvalidRequestContext(t *testing.T) {
	s := newSession(t)
	f := s.Get("/no-host")
	_, err := f.Result()
	require.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
	require.NotNil(t, f.Request())
	ctx := f.Request().Context()
	assert.Nil(t, ctx.Value(probeKey{}))
	_, hasDeadline := ctx.Deadline()
	assert.False(t, hasDeadline)
	assert.NoError(t, ctx.Err())
}

// Cancel may come at any moment of a request that is being retried: while an attempt runs, while
// it decides to retry, while it waits. Each Future resolves once, canceled or given up.
func TestCancelDuringRetries(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{
		MaxRetries: 20, MinWait: 50 * time.Microsecond, MaxWait: 50 * time.Microsecond,
		CheckRetry: retryablehttp.DefaultRetryPolicy,
		Backoff:    retryablehttp.LinearJitterBackoff,
	}))
	fs := make([]*httpfutures.Future, 40)
	for i := range fs {
		fs[i] = tr.StartRoundTrip(get(t, ts.URL))
	}
	for i, f := range fs {
		time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		f.Cancel()
	}
	for _, f := range fs {
		resp, err := f.Result()
		var re *httpfutures.RetryError
		if !errors.Is(err, context.Canceled) && !errors.As(err, &re) && resp == nil {
			t.Fatalf("want canceled, given up, or the last response, got %v", err)
		}
	}
	st := tr.Stats()
	assert.Equal(t, uint64(len(fs)), st.Canceled+st.Failed+st.Completed)
	assert.Zero(t, st.Queued)
}

// sleepTransport answers after d.
type sleepTransport struct{ d time.Duration }

func (s sleepTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	time.Sleep(s.d)
	return noopTransport{}.RoundTrip(req)
}

// Timing reads the clock the program runs on, a synctest bubble's fake clock included.
func TestTimingFollowsTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := httpfutures.NewTransport(sleepTransport{10 * time.Millisecond})
		defer tr.Close()
		start := time.Now()
		f := tr.StartRoundTrip(get(t, "http://noop.invalid/"))
		_, err := f.Result()
		require.NoError(t, err)
		tm := f.Timing()
		assert.True(t, tm.Queued.Equal(start), "queued at %v, submitted at %v", tm.Queued, start)
		assert.Equal(t, 10*time.Millisecond, tm.RoundTrip())
		assert.Equal(t, 10*time.Millisecond, tm.Total())
	})
}

// A resolved Future lets go of its context's state: the context of a Session's own request that
// completed can never end, and says so with a nil Done channel; functions given to AfterFunc are
// never called, and stop tells so once. The context of one that was canceled stays canceled.
func TestResolvedRequestContext(t *testing.T) {
	ts := newEchoServer(t)
	s := newSession(t)
	f := s.Get(ts.URL + "/done")
	_, err := f.Result()
	require.NoError(t, err)
	ctx := f.Request().Context()
	assert.Nil(t, ctx.Done(), "a context that can never end")
	assert.Nil(t, ctx.Done(), "and says so each time")
	assert.False(t, f.Cancel())
	assert.NoError(t, ctx.Err())
	var called atomic.Bool
	stop := context.AfterFunc(ctx, func() { called.Store(true) })
	assert.True(t, stop(), "stopped before it was called")
	assert.False(t, stop(), "already stopped")
	assert.False(t, called.Load())
	child, cancel := context.WithCancel(ctx)
	require.NoError(t, child.Err())
	cancel()
	assert.ErrorIs(t, child.Err(), context.Canceled, "a child still ends with its own cancel")
	assert.NoError(t, ctx.Err())

	gs, g := newGateServer(t)
	slow := s.Get(gs.URL + "/slow")
	<-g.arrived
	require.True(t, slow.Cancel())
	_, err = slow.Result()
	require.ErrorIs(t, err, context.Canceled)
	ctx = slow.Request().Context()
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
	require.NotNil(t, ctx.Done())
	select {
	case <-ctx.Done():
	default:
		t.Fatal("a canceled request's context is still done once its Future resolved")
	}
}

// A Session request canceled while its worker ends an attempt that is to be tried again fails
// with context.Canceled, and its context ends too, however the two meet: the worker that finds
// it stopped ends its context before it resolves it, as for an attempt that was not retried.
func TestCanceledBetweenAttemptsEndsTheContext(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	judged, goOn := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	s := httpfutures.NewSession(httpfutures.WithWorkers(1), httpfutures.WithRetry(httpfutures.RetryPolicy{
		MaxRetries: 1000,
		Budget:     httpfutures.RetryBudget{Ratio: 1e9},
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			if armed.CompareAndSwap(true, false) { // hold the worker once, to race Cancel with it
				judged <- struct{}{}
				<-goOn
			}
			return ctx.Err() == nil, nil
		},
		Backoff: func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 },
	}))
	defer s.Close()
	for i := range 300 {
		armed.Store(true)
		f := s.Get(ts.URL)
		<-judged
		// Readers of the Future contend for its lock, as waiters and net/http do, which widens
		// the window between the worker's resolving and Cancel's ending of the context.
		stop := make(chan struct{})
		var readers sync.WaitGroup
		for range 4 {
			readers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						f.Timing()
					}
				}
			})
		}
		canceled := make(chan bool)
		go func() { runtime.Gosched(); canceled <- f.Cancel() }()
		goOn <- struct{}{}
		ok := <-canceled
		close(stop)
		readers.Wait()
		_, err := f.Result()
		if ok && errors.Is(err, context.Canceled) {
			require.Error(t, f.Request().Context().Err(), "round %d: canceled, but its context never ends", i)
		}
	}
}
