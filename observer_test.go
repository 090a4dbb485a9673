package httpfutures_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

// events records what an Observer is told, as lines, calling back into the transport from each
// callback: an Observer is called with no lock held.
type events struct {
	t     *testing.T // for the callbacks' own checks
	mu    sync.Mutex
	lines []string
	tr    atomic.Pointer[httpfutures.AsyncTransport]
}

func (e *events) add(format string, args ...any) {
	if tr := e.tr.Load(); tr != nil {
		tr.Stats() // takes the Scheduler's lock: held by the caller, it would deadlock
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lines = append(e.lines, fmt.Sprintf(format, args...))
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.lines...)
}

// count returns how many lines start with prefix.
func (e *events) count(prefix string) int {
	n := 0
	for _, l := range e.all() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (e *events) observer() httpfutures.Observer {
	path := func(f *httpfutures.Future) string { return f.Request().URL.Path }
	return httpfutures.Observer{
		Queued:  func(f *httpfutures.Future) { e.add("queued %s", path(f)) },
		Started: func(f *httpfutures.Future, attempt int) { e.add("started %s %d", path(f), attempt) },
		Retried: func(f *httpfutures.Future, r httpfutures.Retry) {
			e.add("retried %s attempt=%d status=%d", path(f), r.Attempt, r.StatusCode)
		},
		Redirected: func(f *httpfutures.Future, req *http.Request) { e.add("redirected %s to %s", path(f), req.URL.Path) },
		Hedged:     func(f *httpfutures.Future) { e.add("hedged %s", path(f)) },
		Resolved: func(f *httpfutures.Future, o httpfutures.Outcome) {
			_, err := f.Result() // final: does not block
			assert.False(e.t, f.Timing().Finished.IsZero())
			e.add("resolved %s %s %v", path(f), o, err != nil)
		},
		HostPaused:    func(host string, until time.Time) { e.add("paused %v", time.Until(until) > 0) },
		HostResumed:   func(host string) { e.add("resumed") },
		HostPaced:     func(host string, pace rate.Limit, until time.Time) { e.add("paced %.0f", float64(pace)) },
		LimitChanged:  func(c httpfutures.LimitChange) { e.add("limit %d->%d %s", c.From, c.To, c.Reason) },
		LimiterFailed: func(host string, err error) { e.add("limiter failed %v", err) },
	}
}

// eventServer answers each path as its name says.
func eventServer(t *testing.T) *httptest.Server {
	var flaky atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky":
			if flaky.Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		case "/pause":
			w.Header().Set("RateLimit", `"default";r=0;t=1`)
		case "/pace":
			w.Header().Set("RateLimit", `"default";r=50;t=10`)
		case "/slow":
			time.Sleep(50 * time.Millisecond)
		case "/shed":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(ts.Close)
	return ts
}

// An Observer is told each event as it happens, with no lock held, of requests and of hosts.
func TestObserverIsToldEachEvent(t *testing.T) {
	ts := eventServer(t)
	e := &events{t: t}
	s := newSession(t, httpfutures.WithObserver(e.observer()), httpfutures.WithWorkerIdleTimeout(time.Second),
		httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: time.Millisecond, MaxWait: time.Millisecond}))
	e.tr.Store(s.Transport())

	_, err := s.Get(ts.URL + "/flaky").Result()
	require.NoError(t, err)
	_, err = s.Get(ts.URL + "/moved").Result()
	require.NoError(t, err)
	_, err = s.Get(ts.URL + "/pace").Result()
	require.NoError(t, err)
	_, err = s.Get(ts.URL + "/pause").Result()
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.count("resumed") == 1 }, 5*time.Second, time.Millisecond,
		"the pause of a second ends, and is told: %q", e.all())
	f := s.Get("http://127.0.0.1:1/refused")
	_, err = f.Result()
	require.Error(t, err)
	require.NoError(t, s.Close()) // a worker tells a Future's end after it resolved: Close waits for it

	lines := e.all()
	t.Logf("%q", lines)
	for _, want := range []string{
		"queued /flaky", "started /flaky 1", "retried /flaky attempt=1 status=503", "started /flaky 2",
		"resolved /flaky completed false",
		"queued /moved", "redirected /moved to /ok", "resolved /moved completed false",
		"paced 5", "paused true", "resumed",
		"resolved /refused failed true",
	} {
		assert.Contains(t, lines, want)
	}
	// Queued is told by the submitter once the request is queued, where a worker may have taken it
	// already: it may come after Started. A Future's events from its workers come in order.
	assert.Less(t, indexOf(lines, "started /flaky 1"), indexOf(lines, "retried /flaky attempt=1 status=503"))
	assert.Less(t, indexOf(lines, "retried /flaky attempt=1 status=503"), indexOf(lines, "started /flaky 2"))
	assert.Less(t, indexOf(lines, "started /flaky 2"), indexOf(lines, "resolved /flaky completed false"))
}

func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if l == s {
			return i
		}
	}
	return -1
}

// The outcomes a Future resolves with: a response, an error, a cancellation, and a request shed
// by a full queue; each counted in Stats as the Observer is told it.
func TestObserverOutcomes(t *testing.T) {
	ts, g := newGateServer(t)
	e := &events{t: t}
	tr := newTransport(t, nil, httpfutures.WithObserver(e.observer()), httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(1))
	e.tr.Store(tr)
	running := tr.StartRoundTrip(get(t, ts.URL+"/running"))
	require.Equal(t, "/running", <-g.arrived)
	queued := tr.StartRoundTrip(get(t, ts.URL+"/queued"))
	_, err := tr.StartRoundTrip(get(t, ts.URL+"/shed")).Result()
	require.ErrorIs(t, err, httpfutures.ErrQueueFull)
	queued.Cancel()
	g.open()
	_, err = running.Result()
	require.NoError(t, err)
	st := tr.Stats()
	assert.Equal(t, uint64(1), st.Completed)
	assert.Equal(t, uint64(1), st.Canceled)
	assert.Equal(t, uint64(1), st.Shed)
	assert.Zero(t, st.Failed)
	require.NoError(t, tr.Close()) // a worker tells a Future's end after it resolved: Close waits for it
	assert.Equal(t, 1, e.count("resolved /shed shed true"))
	assert.Equal(t, 1, e.count("resolved /queued canceled true"))
	assert.Equal(t, 1, e.count("resolved /running completed false"))
}

// Hedges, adaptive limits and failing Limiters are told too.
func TestObserverHedgesLimitsAndLimiters(t *testing.T) {
	ts := eventServer(t)
	t.Run("hedged", func(t *testing.T) {
		e := &events{t: t}
		tr := newTransport(t, nil, httpfutures.WithObserver(e.observer()), httpfutures.WithHedge(5*time.Millisecond, 1))
		_, err := tr.StartRoundTrip(get(t, ts.URL+"/slow")).Result()
		require.NoError(t, err)
		require.NoError(t, tr.Close()) // a Future's end is told once it resolved: Close waits for it
		assert.Equal(t, 1, e.count("hedged /slow"))
		assert.Equal(t, 1, e.count("resolved /slow"), "a copy is not a Future the caller sees")
	})
	t.Run("limit changed", func(t *testing.T) {
		e := &events{t: t}
		tr := newTransport(t, nil, httpfutures.WithObserver(e.observer()), httpfutures.WithAdaptiveHostLimit(16))
		for range 30 {
			tr.StartRoundTrip(get(t, ts.URL+"/shed")).Result()
		}
		require.NoError(t, tr.Close()) // a change may be told after its request resolved
		assert.Positive(t, e.count("limit "), "the 503s lowered the limit: %q", e.all())
	})
	t.Run("limiter failed", func(t *testing.T) {
		e := &events{t: t}
		refused := errors.New("no quota")
		tr := newTransport(t, nil, httpfutures.WithObserver(e.observer()), httpfutures.WithLimiter(failingLimiter{refused}))
		_, err := tr.StartRoundTrip(get(t, ts.URL+"/ok")).Result()
		require.ErrorIs(t, err, refused)
		require.NoError(t, tr.Close()) // the failure is told after the request has failed: Close waits for it
		assert.Equal(t, 1, e.count("limiter failed no quota"))
	})
}

// failingLimiter refuses every request with err.
type failingLimiter struct{ err error }

func (l failingLimiter) Reserve(context.Context, string, time.Time) (time.Time, error) {
	return time.Time{}, l.err
}

// A noteLog keeps, in order, what Observers note from any goroutine.
type noteLog struct {
	mu  sync.Mutex
	all []string
}

func (l *noteLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, s)
}

func (l *noteLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// Observers given several times are each told every event, in order; one that panics neither
// crashes the process nor fails a request, and the others are still told.
func TestObserversComposeAndCannotCrash(t *testing.T) {
	ts := eventServer(t)
	var notes noteLog
	note := notes.add
	tr := newTransport(t, nil,
		httpfutures.WithObserver(httpfutures.Observer{Resolved: func(*httpfutures.Future, httpfutures.Outcome) { note("first") }}),
		httpfutures.WithObserver(httpfutures.Observer{
			Queued:   func(*httpfutures.Future) { panic("observer broke") },
			Resolved: func(*httpfutures.Future, httpfutures.Outcome) { note("second"); panic("observer broke") },
			Context:  func(context.Context, *httpfutures.Future) context.Context { panic("observer broke") },
		}),
		httpfutures.WithObserver(httpfutures.Observer{Resolved: func(*httpfutures.Future, httpfutures.Outcome) { note("third") }}),
	)
	resp, err := tr.StartRoundTrip(get(t, ts.URL+"/ok")).Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	require.NoError(t, tr.Close()) // a worker tells a Future's end after it resolved: Close waits for it
	assert.Equal(t, []string{"first", "second"}, notes.list(), "a panic stops the Observers after it, for that event only")
}

// An Observer joined with And tells each part every event, in order, and skips the parts that
// are nil; their contexts chain, the first part's outermost.
func TestObserverAnd(t *testing.T) {
	ts := eventServer(t)
	type key string
	var notes noteLog
	note := notes.add
	seen := make(chan [2]any, 1)
	first := httpfutures.Observer{
		Queued: func(*httpfutures.Future) { note("queued 1") },
		Context: func(ctx context.Context, _ *httpfutures.Future) context.Context {
			return context.WithValue(ctx, key("a"), 1)
		},
	}
	second := httpfutures.Observer{
		Queued:   func(*httpfutures.Future) { note("queued 2") },
		Resolved: func(*httpfutures.Future, httpfutures.Outcome) { note("resolved 2") },
		Context: func(ctx context.Context, _ *httpfutures.Future) context.Context {
			return context.WithValue(ctx, key("b"), ctx.Value(key("a")))
		},
	}
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen <- [2]any{r.Context().Value(key("a")), r.Context().Value(key("b"))}
		return http.DefaultTransport.RoundTrip(r)
	})
	tr := newTransport(t, next, httpfutures.WithObserver(first.And(httpfutures.Observer{}).And(second)))
	resp, err := tr.StartRoundTrip(get(t, ts.URL+"/ok")).Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	require.NoError(t, tr.Close())
	assert.Equal(t, [2]any{1, 1}, <-seen, "the second part's context wraps the first's")
	assert.Equal(t, []string{"queued 1", "queued 2", "resolved 2"}, notes.list())
}

// An Observer's Context is the context the next RoundTripper sees: a tracer's span goes there.
func TestObserverContextReachesTheRoundTripper(t *testing.T) {
	type spanKey struct{}
	seen := make(chan any, 4)
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen <- r.Context().Value(spanKey{})
		return noopTransport{}.RoundTrip(r)
	})
	tr := newTransport(t, next, httpfutures.WithObserver(httpfutures.Observer{
		Context: func(ctx context.Context, f *httpfutures.Future) context.Context {
			return context.WithValue(ctx, spanKey{}, "span of "+f.Request().URL.Path)
		},
	}))
	f := tr.StartRoundTrip(get(t, "http://h.test/a"))
	_, err := f.Result()
	require.NoError(t, err)
	assert.Equal(t, "span of /a", <-seen)
	assert.Nil(t, f.Request().Context().Value(spanKey{}), "the caller's request is left as it was")
}

// An Observer is told once of each Scheduler it observes, before any request, and may read the
// Scheduler's Stats from then on: a Scheduler of its own, a transport's, and one shared.
func TestObserverAttached(t *testing.T) {
	ts, g := newGateServer(t)
	var mu sync.Mutex
	var scheds []*httpfutures.Scheduler
	var queuedAt []httpfutures.Stats
	o := httpfutures.Observer{
		Attached: func(s *httpfutures.Scheduler) {
			st := s.Stats() // the Scheduler is set up: its methods may be called
			mu.Lock()
			defer mu.Unlock()
			scheds = append(scheds, s)
			queuedAt = append(queuedAt, st)
		},
	}
	attached := func() []*httpfutures.Scheduler {
		mu.Lock()
		defer mu.Unlock()
		return append([]*httpfutures.Scheduler(nil), scheds...)
	}

	shared := httpfutures.NewScheduler(httpfutures.WithObserver(o), httpfutures.WithObserver(httpfutures.Observer{}))
	defer shared.Close()
	require.Equal(t, []*httpfutures.Scheduler{shared}, attached(), "told by NewScheduler, once")
	on := newTransport(t, nil, httpfutures.WithScheduler(shared))
	require.Len(t, attached(), 1, "a transport on a shared Scheduler attaches nothing more")

	own := newTransport(t, nil, httpfutures.WithObserver(o))
	got := attached()
	require.Len(t, got, 2, "a transport of its own Scheduler attaches it")
	f := own.StartRoundTrip(get(t, ts.URL+"/own"))
	require.Equal(t, "/own", <-g.arrived)
	assert.Equal(t, 1, got[1].Stats().InFlight, "the transport's own Scheduler runs its requests")
	for _, st := range queuedAt {
		assert.Zero(t, st.Queued+st.InFlight, "told before any request")
	}
	g.open()
	_, err := f.Result()
	require.NoError(t, err)
	_, err = on.StartRoundTrip(get(t, ts.URL+"/shared")).Result()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), got[0].Stats().Completed)
	assert.Len(t, attached(), 2, "once per Scheduler")
}
