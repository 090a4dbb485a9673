package httpfutures_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// withDeadline returns req with a context that ends after d.
func withDeadline(t testing.TB, req *http.Request, d time.Duration) *http.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), d)
	t.Cleanup(cancel)
	return req.WithContext(ctx)
}

// pauseServer answers its first request 503 with Retry-After: pause, and the others 200. It
// counts the requests it got.
func pauseServer(t testing.TB, pause int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", fmt.Sprint(pause))
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

// A request whose deadline ends before the pause its host's server asked for fails at once,
// unsent, with an error matching context.DeadlineExceeded: submitted during the pause, or queued
// when it began. One whose deadline ends after the pause waits for it and is sent.
func TestDeadlineBeforeAPauseFailsAtOnce(t *testing.T) {
	for _, c := range []struct {
		name     string
		pause    int // seconds
		deadline time.Duration
		queued   bool // queued before the pause began, rather than submitted during it
		fails    bool
	}{
		{"2s deadline, submitted during a 60s pause", 60, 2 * time.Second, false, true},
		{"2s deadline, queued as a 60s pause begins", 60, 2 * time.Second, true, true},
		{"3s deadline, submitted during a 1s pause", 1, 3 * time.Second, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts, hits := pauseServer(t, c.pause)
			tr := newTransport(t, nil, httpfutures.WithWorkers(1))
			first := tr.StartRoundTrip(get(t, ts.URL+"/first")) // answered 503, Retry-After
			var f *httpfutures.Future
			var start time.Time
			if c.queued {
				start = time.Now()
				f = tr.StartRoundTrip(withDeadline(t, get(t, ts.URL+"/next"), c.deadline))
			}
			resp, err := first.Result()
			require.NoError(t, err)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			if !c.queued {
				start = time.Now()
				f = tr.StartRoundTrip(withDeadline(t, get(t, ts.URL+"/next"), c.deadline))
			}
			resp, err = f.Result()
			took := time.Since(start)
			t.Logf("%s: resolved after %v: %v", c.name, took.Round(time.Microsecond), err)
			if !c.fails {
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.GreaterOrEqual(t, took, 900*time.Millisecond, "it waited for the pause")
				return
			}
			require.ErrorIs(t, err, context.DeadlineExceeded)
			assert.ErrorContains(t, err, "deadline before host may send")
			assert.ErrorContains(t, err, "paused by its server")
			assert.Less(t, took, 100*time.Millisecond, "well before its deadline")
			assert.Zero(t, f.Attempts())
			assert.Equal(t, int64(1), hits.Load(), "never sent")
			assert.Equal(t, uint64(1), tr.Stats().Shed)
		})
	}
}

// A request whose deadline ends before its host's next rate token fails at once: the head of the
// queue as the host waits for the token, and a request submitted while it waits. One whose
// deadline ends after the token is sent.
func TestDeadlineBeforeARateTokenFailsAtOnce(t *testing.T) {
	ts := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithHostRateLimit(2, 1)) // a token each 500 ms
	first := tr.StartRoundTrip(get(t, ts.URL+"/first"))             // takes the burst's token
	start := time.Now()
	head := tr.StartRoundTrip(withDeadline(t, get(t, ts.URL+"/head"), 250*time.Millisecond))
	_, err := head.Result()
	headTook := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "waits for a rate token")
	later := tr.StartRoundTrip(withDeadline(t, get(t, ts.URL+"/later"), 2*time.Second)) // waits for the token
	start = time.Now()
	during := tr.StartRoundTrip(withDeadline(t, get(t, ts.URL+"/during"), 100*time.Millisecond))
	_, err = during.Result()
	duringTook := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "deadline before host may send")
	_, err = first.Result()
	require.NoError(t, err)
	resp, err := later.Result()
	require.NoError(t, err)
	assert.Equal(t, "GET /later", body(t, resp))
	assert.Less(t, headTook, 125*time.Millisecond, "half its deadline")
	assert.Less(t, duringTook, 50*time.Millisecond, "half its deadline")
	assert.Equal(t, int64(2), ts.hits.Load())
	assert.Equal(t, uint64(2), tr.Stats().Shed)
	t.Logf("the head (250 ms deadline) failed after %v, one submitted while the host waits (100 ms) after %v",
		headTook.Round(time.Microsecond), duringTook.Round(time.Microsecond))
}

// A retry that would be due after its request's deadline is not waited for: the request ends at
// once with what its last attempt got, its response, or a *RetryError matching
// context.DeadlineExceeded if it had none (go-retryablehttp#272).
func TestRetryDueAfterTheDeadlineIsNotWaitedFor(t *testing.T) {
	t.Run("a response", func(t *testing.T) {
		ts, hits := pauseServer(t, 10)
		tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{}))
		start := time.Now()
		f := tr.StartRoundTrip(withDeadline(t, get(t, ts.URL), time.Second))
		resp, err := f.Result()
		took := time.Since(start)
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the last attempt's response")
		assert.Equal(t, 1, f.Attempts())
		assert.Equal(t, int64(1), hits.Load())
		assert.Less(t, took, 500*time.Millisecond, "not its deadline")
		t.Logf("a 1 s deadline, a retry due in 10 s: resolved after %v", took.Round(time.Microsecond))
	})
	t.Run("no response", func(t *testing.T) {
		tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: 2 * time.Second}))
		start := time.Now()
		f := tr.StartRoundTrip(withDeadline(t, get(t, refusedURL(t)), time.Second))
		_, err := f.Result()
		took := time.Since(start)
		var re *httpfutures.RetryError
		require.ErrorAs(t, err, &re)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 1, re.Attempts)
		assert.Less(t, took, 500*time.Millisecond)
		t.Logf("a 1 s deadline, a retry due in 2 s: %v after %v", err, took.Round(time.Microsecond))
	})
	t.Run("a retry due before the deadline", func(t *testing.T) {
		ts, _ := pauseServer(t, 1)
		tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{}))
		f := tr.StartRoundTrip(withDeadline(t, get(t, ts.URL), 5*time.Second))
		resp, err := f.Result()
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, 2, f.Attempts())
	})
}

// A request that fails at once for its deadline is counted as shed, and told so.
func TestDeadlineFailureIsShed(t *testing.T) {
	ts, _ := pauseServer(t, 60)
	var outcome atomic.Value
	tr := newTransport(t, nil, httpfutures.WithObserver(httpfutures.Observer{
		Resolved: func(f *httpfutures.Future, o httpfutures.Outcome) { outcome.Store(o) },
	}))
	resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
	require.NoError(t, err)
	resp.Body.Close()
	_, err = tr.StartRoundTrip(withDeadline(t, get(t, ts.URL), time.Second)).Result()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, errors.Is(err, context.Canceled))
	assert.Equal(t, httpfutures.OutcomeShed, outcome.Load())
	st := tr.Stats()
	assert.Equal(t, uint64(1), st.Shed)
	assert.Equal(t, uint64(0), st.Failed)
}

// A retry that comes due while its host is paused past the request's deadline fails then, not
// at its deadline.
func TestRetryDueDuringAPauseFailsAtOnce(t *testing.T) {
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/pause" {
			w.Header().Set("Retry-After", "60")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: 300 * time.Millisecond, MaxWait: 300 * time.Millisecond}))
	start := time.Now()
	f := tr.StartRoundTrip(withDeadline(t, get(t, ts.URL+"/retried"), 5*time.Second)) // its retry due in 300 ms
	require.Eventually(t, func() bool { return hits.Load() == 1 }, 5*time.Second, time.Millisecond)
	pauser := tr.StartRoundTrip(get(t, ts.URL+"/pause")) // pauses the host for 60 s
	require.Eventually(t, func() bool { return tr.HostStats(ts.URL).PausedUntil.After(time.Now()) }, 5*time.Second, time.Millisecond)
	_, err := f.Result()
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "paused by its server")
	assert.Equal(t, 1, f.Attempts())
	assert.Less(t, took, 2500*time.Millisecond, "at its retry's due time, not its deadline")
	assert.Equal(t, int64(2), hits.Load())
	pauser.Cancel()
	t.Logf("a retry due at 300 ms, the host paused for 60 s, a 5 s deadline: failed after %v", took.Round(time.Millisecond))
}
