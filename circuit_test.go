package httpfutures_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// circuitLog records the circuit changes an Observer is told, and checks that it is told with
// no lock held: it asks the Scheduler for the host's state from within the callback.
type circuitLog struct {
	tr      *httpfutures.AsyncTransport
	mu      sync.Mutex
	changes []httpfutures.CircuitChange
	seen    []httpfutures.CircuitState // HostStats(host).Circuit, read in the callback
	changed chan httpfutures.CircuitChange
}

func newCircuitLog() *circuitLog {
	return &circuitLog{changed: make(chan httpfutures.CircuitChange, 100)}
}

func (l *circuitLog) observer() httpfutures.Observer {
	return httpfutures.Observer{CircuitChanged: func(c httpfutures.CircuitChange) {
		var st httpfutures.CircuitState
		if l.tr != nil {
			st = l.tr.HostStats(c.Host).Circuit // takes the Scheduler's lock: would hang were it held
		}
		l.mu.Lock()
		l.changes = append(l.changes, c)
		l.seen = append(l.seen, st)
		l.mu.Unlock()
		l.changed <- c
	}}
}

func (l *circuitLog) all() []httpfutures.CircuitChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]httpfutures.CircuitChange(nil), l.changes...)
}

// await returns the next change told, failing the test after timeout.
func (l *circuitLog) await(t testing.TB, timeout time.Duration) httpfutures.CircuitChange {
	t.Helper()
	select {
	case c := <-l.changed:
		return c
	case <-time.After(timeout):
		t.Fatalf("no circuit change within %v; told %v", timeout, l.all())
		return httpfutures.CircuitChange{}
	}
}

// A breaker opens on a dead host within MinRequests (20) failures, of every kind it counts; its
// queued requests then fail at once, never sent, and so do new ones; the Observer is told, with
// no lock held; HostStats shows it; Stats count the refusals as shed.
func TestCircuitBreakerOpensOnADeadHost(t *testing.T) {
	kinds := []struct {
		name    string
		mode    faultMode
		dead    bool          // connections refused
		timeout time.Duration // each attempt's
	}{
		{"503", answer503, false, 0},
		{"500", answer500, false, 0},
		{"429 without Retry-After", answer429, false, 0},
		{"connection refused", 0, true, 0},
		{"timeout", answerStall, false, 30 * time.Millisecond},
	}
	for _, k := range kinds {
		for _, workers := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/%d workers", k.name, workers), func(t *testing.T) {
				var srv *faultServer
				url := ""
				if k.dead {
					url = refusedURL(t)
				} else {
					srv = newFaultServer(t, k.mode)
					url = srv.URL
				}
				log := newCircuitLog()
				opts := []httpfutures.Option{httpfutures.WithWorkers(workers), httpfutures.WithObserver(log.observer()),
					httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{Cooldown: time.Minute})}
				if k.timeout > 0 {
					opts = append(opts, httpfutures.WithRetry(httpfutures.RetryPolicy{AttemptTimeout: k.timeout, CheckRetry: never}))
				}
				tr := newTransport(t, nil, opts...)
				log.tr = tr
				const n = 60
				fs := make([]*httpfutures.Future, n)
				for i := range fs {
					fs[i] = tr.StartRoundTrip(get(t, url))
				}
				open := log.await(t, 10*time.Second)
				opened := time.Now()
				sent, refused := 0, 0
				for _, f := range fs {
					_, err := f.Result()
					switch {
					case errors.Is(err, httpfutures.ErrCircuitOpen):
						refused++
						assert.Zero(t, f.Attempts(), "refused before it was sent")
					default:
						sent++
					}
				}
				failFast := time.Since(opened)
				assert.Equal(t, httpfutures.CircuitClosed, open.From)
				assert.Equal(t, httpfutures.CircuitOpen, open.To)
				assert.Equal(t, 20, open.Failures, "opened at the 20th failure")
				assert.Equal(t, 20, open.Attempts)
				assert.LessOrEqual(t, sent, 20+workers-1, "no more sent than the failures that open it, and those already running")
				assert.Equal(t, n, sent+refused)
				if srv != nil {
					assert.Equal(t, int64(sent), srv.hits.Load(), "the refused never reached the server")
				}
				st := tr.HostStats(url)
				assert.Equal(t, httpfutures.CircuitOpen, st.Circuit)
				assert.WithinDuration(t, open.At.Add(time.Minute), st.CircuitUntil, time.Millisecond)
				assert.Equal(t, []httpfutures.CircuitState{httpfutures.CircuitOpen}, log.seen, "told with no lock held, after the change")
				_, err := tr.StartRoundTrip(get(t, url)).Result()
				require.ErrorIs(t, err, httpfutures.ErrCircuitOpen, "a new request fails at once")
				assert.Equal(t, uint64(refused+1), tr.Stats().Shed)
				t.Logf("%s, %d workers: sent %d, refused %d; queued requests resolved %v after the breaker opened",
					k.name, workers, sent, refused, failFast.Round(time.Microsecond))
			})
		}
	}
}

// A healthy host with random errors never trips a breaker: 10,000 requests, 1% of them 500s,
// under the default thresholds and tighter ones. A tighter ratio needs a larger minimum: with a
// ratio of 0.1 and the default 20, two errors among the first 20 requests, which come in about
// 1.7% of runs, would open it (see MinRequests).
func TestCircuitBreakerSparesAHealthyHost(t *testing.T) {
	srv := newFaultServer(t, answerRandom500)
	for _, cb := range []httpfutures.CircuitBreaker{
		{},
		{FailureRatio: 0.1, MinRequests: 100},
		{FailureRatio: 0.1, MinRequests: 100, Window: time.Second},
	} {
		t.Run(fmt.Sprintf("ratio %v min %d window %v", cb.FailureRatio, cb.MinRequests, cb.Window), func(t *testing.T) {
			log := newCircuitLog()
			tr := newTransport(t, nil, httpfutures.WithCircuitBreaker(cb), httpfutures.WithObserver(log.observer()))
			const n = 10_000
			start := time.Now()
			errs, refused := 0, 0
			fs := make([]*httpfutures.Future, 0, 256)
			for i := 0; i < n; i++ {
				fs = append(fs, tr.StartRoundTrip(get(t, srv.URL)))
				if len(fs) == cap(fs) || i == n-1 {
					for _, f := range fs {
						resp, err := f.Result()
						switch {
						case errors.Is(err, httpfutures.ErrCircuitOpen):
							refused++
						case err != nil:
							t.Fatal(err)
						case resp.StatusCode != http.StatusOK:
							errs++
						}
					}
					fs = fs[:0]
				}
			}
			assert.Zero(t, refused)
			assert.Empty(t, log.all())
			assert.Equal(t, httpfutures.CircuitClosed, tr.HostStats(srv.URL).Circuit)
			assert.InDelta(t, n/100, errs, n/100, "about 1%% errors")
			t.Logf("%d requests in %v, %d errors (%.2f%%), refused %d", n, time.Since(start).Round(time.Millisecond),
				errs, 100*float64(errs)/n, refused)
		})
	}
}

// MinRequests' doc gives how often chance alone opens a breaker with a FailureRatio of 0.1 on a
// host with 1% of errors at random, by MinRequests. Here each run is a breaker that counts 200
// such attempts, 1 ms apart; later ones cannot reach the ratio but by odds of 1e-12 and less.
func TestCircuitBreakerOpensByChance(t *testing.T) {
	const runs, attempts = 10_000, 200
	tests := []struct {
		min         int
		least, most float64 // share of runs that open
	}{
		{20, 0.012, 0.025}, // P(2 or more of the first 20 fail) = 1.7%, and a few more later
		{50, 0, 0.001},
		{100, 0, 0},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []string
	for _, tt := range tests {
		opened := 0
		for range runs {
			record := httpfutures.CircuitOf(httpfutures.CircuitBreaker{FailureRatio: 0.1, MinRequests: tt.min})
			now := time.Now()
			for i := range attempts {
				if record(now.Add(time.Duration(i)*time.Millisecond), rng.IntN(100) == 0) {
					opened++
					break
				}
			}
		}
		share := float64(opened) / runs
		assert.GreaterOrEqual(t, share, tt.least, "MinRequests %d", tt.min)
		assert.LessOrEqual(t, share, tt.most, "MinRequests %d", tt.min)
		rows = append(rows, fmt.Sprintf("%11d  %6.2f%%", tt.min, 100*share))
	}
	t.Logf("FailureRatio 0.1, 1%% of errors at random, %d runs:\nMinRequests  opened\n%s", runs, strings.Join(rows, "\n"))
}

// An open breaker lets a probe through after its cooldown, and closes when it succeeds: within
// Cooldown and one probe of the host's recovery, only the probe reaching the host meanwhile.
func TestCircuitBreakerClosesWhenTheHostRecovers(t *testing.T) {
	const cooldown = 300 * time.Millisecond
	srv := newFaultServer(t, answer503)
	log := newCircuitLog()
	tr := newTransport(t, nil, httpfutures.WithObserver(log.observer()),
		httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{Cooldown: cooldown}))
	log.tr = tr
	for range 20 {
		tr.StartRoundTrip(get(t, srv.URL)).Result()
	}
	open := log.await(t, 5*time.Second)
	require.Equal(t, httpfutures.CircuitOpen, open.To)
	hitsAtOpen := srv.hits.Load()
	srv.set(answerOK) // the host recovers at once

	// A caller asks every 10 ms, until a request succeeds: the probe.
	refused := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		_, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
		if err == nil {
			break
		}
		require.ErrorIs(t, err, httpfutures.ErrCircuitOpen)
		refused++
	}
	half := log.await(t, 5*time.Second)
	closed := log.await(t, 5*time.Second)
	assert.Equal(t, httpfutures.CircuitHalfOpen, half.To)
	assert.Equal(t, httpfutures.CircuitClosed, closed.To, "told in order")
	assert.GreaterOrEqual(t, half.At.Sub(open.At), cooldown, "no probe before the cooldown")
	assert.Equal(t, hitsAtOpen+1, srv.hits.Load(), "only the probe reached the host while it was open")
	assert.Positive(t, refused, "requests during the cooldown were refused")
	assert.Less(t, closed.At.Sub(open.At), cooldown+time.Second, "closed within the cooldown and one probe, with room for a busy machine")
	assert.Equal(t, httpfutures.CircuitClosed, tr.HostStats(srv.URL).Circuit)
	assert.Zero(t, tr.HostStats(srv.URL).CircuitUntil)
	t.Logf("open at 0, half-open at %v, closed at %v (cooldown %v); %d refused meanwhile",
		half.At.Sub(open.At).Round(time.Millisecond), closed.At.Sub(open.At).Round(time.Millisecond), cooldown, refused)
}

// While a half-open breaker's probes are out, other requests fail at once; a probe that fails
// opens the breaker for another cooldown; it closes once every probe has succeeded.
func TestCircuitBreakerHalfOpen(t *testing.T) {
	const cooldown = 100 * time.Millisecond
	srv := newFaultServer(t, answer503)
	log := newCircuitLog()
	tr := newTransport(t, nil, httpfutures.WithObserver(log.observer()),
		httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{Cooldown: cooldown, MinRequests: 4, Probes: 2}))
	for range 4 {
		tr.StartRoundTrip(get(t, srv.URL)).Result()
	}
	require.Equal(t, httpfutures.CircuitOpen, log.await(t, 5*time.Second).To)

	// After the cooldown, a probe that fails opens it again.
	time.Sleep(cooldown)
	resp, err := tr.StartRoundTrip(get(t, srv.URL+"/probe")).Result()
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the probe's own response")
	assert.Equal(t, httpfutures.CircuitHalfOpen, log.await(t, time.Second).To)
	reopened := log.await(t, time.Second)
	assert.Equal(t, httpfutures.CircuitHalfOpen, reopened.From)
	assert.Equal(t, httpfutures.CircuitOpen, reopened.To)
	assert.Equal(t, int64(5), srv.hits.Load())

	// After another, two probes go, held by the server; the others fail at once.
	srv.set(answerGated)
	time.Sleep(cooldown)
	p1 := tr.StartRoundTrip(get(t, srv.URL+"/p1"))
	p2 := tr.StartRoundTrip(get(t, srv.URL+"/p2"))
	<-srv.arrived
	<-srv.arrived
	assert.Equal(t, httpfutures.CircuitHalfOpen, tr.HostStats(srv.URL).Circuit)
	for range 5 {
		start := time.Now()
		_, err := tr.StartRoundTrip(get(t, srv.URL+"/other")).Result()
		require.ErrorIs(t, err, httpfutures.ErrCircuitOpen)
		assert.Less(t, time.Since(start), 500*time.Millisecond, "at once, not after the probes held by the server")
	}
	srv.release()
	for _, f := range []*httpfutures.Future{p1, p2} {
		resp, err := f.Result()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, httpfutures.CircuitHalfOpen, log.await(t, time.Second).To)
	assert.Equal(t, httpfutures.CircuitClosed, log.await(t, time.Second).To)
	assert.Equal(t, int64(7), srv.hits.Load(), "the others never reached the server")
	resp, err = tr.StartRoundTrip(get(t, srv.URL+"/after")).Result()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// Each host has a breaker of its own: one open, another served.
func TestCircuitBreakerPerHost(t *testing.T) {
	dead := newFaultServer(t, answer503)
	live := newFaultServer(t, answerOK)
	tr := newTransport(t, nil, httpfutures.WithWorkers(8), httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{Cooldown: time.Minute}))
	var fs []*httpfutures.Future
	for range 100 {
		fs = append(fs, tr.StartRoundTrip(get(t, dead.URL)), tr.StartRoundTrip(get(t, live.URL)))
	}
	deadRefused := 0
	for i, f := range fs {
		resp, err := f.Result()
		if i%2 == 1 {
			require.NoError(t, err, "the live host is served")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			continue
		}
		if errors.Is(err, httpfutures.ErrCircuitOpen) {
			deadRefused++
		}
	}
	assert.Equal(t, httpfutures.CircuitOpen, tr.HostStats(dead.URL).Circuit)
	assert.Equal(t, httpfutures.CircuitClosed, tr.HostStats(live.URL).Circuit)
	assert.Equal(t, int64(100), live.hits.Load())
	assert.Positive(t, deadRefused)
	assert.Equal(t, int64(100-deadRefused), dead.hits.Load())
}

// What a breaker counts: each attempt of a retried request; not attempts its caller canceled,
// nor a 429 with Retry-After (the host is paused instead), nor a 404; a custom IsFailure; and an
// IsFailure that panics counts nothing, crashing nothing.
func TestCircuitBreakerCounts(t *testing.T) {
	t.Run("each attempt of a retry", func(t *testing.T) {
		srv := newFaultServer(t, answer503)
		log := newCircuitLog()
		tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithObserver(log.observer()),
			httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{Cooldown: time.Minute}),
			httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: time.Millisecond, MaxWait: time.Millisecond,
				Budget: httpfutures.RetryBudget{MinRetries: 100}}))
		for i := 0; i < 5; i++ {
			resp, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
			if i < 4 {
				require.NoError(t, err)
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "retries exhausted: the last response")
			} else {
				require.ErrorIs(t, err, httpfutures.ErrCircuitOpen, "the 20 attempts of four requests opened it")
			}
		}
		assert.Equal(t, int64(20), srv.hits.Load(), "four requests of five attempts each")
		c := log.all()
		require.Len(t, c, 1)
		assert.Equal(t, 20, c[0].Attempts)
	})
	t.Run("canceled attempts", func(t *testing.T) {
		srv := newFaultServer(t, answerStall)
		tr := newTransport(t, nil, httpfutures.WithWorkers(30), httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{MinRequests: 5}))
		fs := make([]*httpfutures.Future, 30)
		for i := range fs {
			fs[i] = tr.StartRoundTrip(get(t, srv.URL))
		}
		require.Eventually(t, func() bool { return srv.hits.Load() == 30 }, 5*time.Second, time.Millisecond)
		for _, f := range fs {
			f.Cancel()
			_, err := f.Result()
			require.ErrorIs(t, err, context.Canceled)
		}
		assert.Equal(t, httpfutures.CircuitClosed, tr.HostStats(srv.URL).Circuit)
		resp, err := tr.StartRoundTrip(get(t, newEchoServer(t).URL)).Result()
		require.NoError(t, err)
		resp.Body.Close()
	})
	for _, c := range []struct {
		name  string
		mode  faultMode
		judge func(*http.Response, error) bool
		opens bool
	}{
		{"429 with Retry-After", answer429After, nil, false},
		{"404", answer404, nil, false},
		{"404 judged a failure", answer404, func(r *http.Response, err error) bool { return err != nil || r.StatusCode == 404 }, true},
		{"a judge that panics", answer503, func(*http.Response, error) bool { panic("judge") }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newFaultServer(t, c.mode)
			tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithBackpressure(false),
				httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{MinRequests: 5, IsFailure: c.judge}))
			for range 10 {
				tr.StartRoundTrip(get(t, srv.URL)).Result()
			}
			want := httpfutures.CircuitClosed
			if c.opens {
				want = httpfutures.CircuitOpen
			}
			assert.Equal(t, want, tr.HostStats(srv.URL).Circuit)
		})
	}
}

// The zero CircuitBreaker is the documented defaults: opened by 20 failures (a ratio of at least
// a half over 10 s), for 5 seconds. Invalid values panic, naming the option.
func TestCircuitBreakerDefaults(t *testing.T) {
	srv := newFaultServer(t, answerOK)
	log := newCircuitLog()
	tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithObserver(log.observer()),
		httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{}))
	for range 20 {
		tr.StartRoundTrip(get(t, srv.URL)).Result()
	}
	srv.set(answer500)
	for range 19 {
		tr.StartRoundTrip(get(t, srv.URL)).Result()
	}
	assert.Empty(t, log.all(), "19 failures in 39: under a half")
	tr.StartRoundTrip(get(t, srv.URL)).Result()
	c := log.await(t, time.Second)
	assert.Equal(t, httpfutures.CircuitChange{Host: c.Host, From: httpfutures.CircuitClosed, To: httpfutures.CircuitOpen,
		At: c.At, Failures: 20, Attempts: 40}, c, "20 failures in 40: a half")
	assert.Equal(t, 5*time.Second, tr.HostStats(srv.URL).CircuitUntil.Sub(c.At))
	assert.Equal(t, "closed", httpfutures.CircuitState(0).String())
	assert.Equal(t, "half-open", httpfutures.CircuitHalfOpen.String())

	for _, bad := range []httpfutures.CircuitBreaker{
		{Cooldown: -1}, {MinRequests: -1}, {Window: -1}, {Probes: -1}, {FailureRatio: 1.5}, {FailureRatio: -0.1},
	} {
		assert.Contains(t, panicMessage(t, func() { httpfutures.WithCircuitBreaker(bad) }), "WithCircuitBreaker", "%+v", bad)
	}
}

// never is a CheckRetry that retries nothing.
func never(context.Context, *http.Response, error) (bool, error) { return false, nil }

// panicMessage returns what fn panics with, as a string.
func panicMessage(t testing.TB, fn func()) (msg string) {
	t.Helper()
	defer func() { msg = fmt.Sprint(recover()) }()
	fn()
	return "no panic"
}

// Every Observer given is told each circuit change, and one that panics crashes nothing.
func TestCircuitChangedIsToldToEveryObserver(t *testing.T) {
	srv := newFaultServer(t, answer503)
	a, b := newCircuitLog(), newCircuitLog()
	tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithObserver(a.observer()),
		httpfutures.WithObserver(httpfutures.Observer{CircuitChanged: func(httpfutures.CircuitChange) { panic("observer broke") }}),
		httpfutures.WithObserver(b.observer()),
		httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{MinRequests: 3}))
	for range 3 {
		tr.StartRoundTrip(get(t, srv.URL)).Result()
	}
	assert.Equal(t, httpfutures.CircuitOpen, a.await(t, time.Second).To)
	_, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
	require.ErrorIs(t, err, httpfutures.ErrCircuitOpen)
	assert.Empty(t, b.all(), "a panic stops the Observers after it, for that event only")
}
