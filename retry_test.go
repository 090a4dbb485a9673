package httpfutures_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// fast is a retry policy that waits a millisecond between attempts.
var fast = httpfutures.RetryPolicy{MinWait: time.Millisecond, MaxWait: time.Millisecond}

// flaky is a server whose handler for each attempt (0, 1, ...) is given by attempt; past the end
// of the list, the last handler answers. It records the bodies it was sent and the time of each
// attempt.
type flaky struct {
	*httptest.Server
	conns  *atomic.Int32
	mu     sync.Mutex
	bodies [][]byte
	times  []time.Time
}

func newFlaky(t *testing.T, attempt ...http.HandlerFunc) *flaky {
	t.Helper()
	s := &flaky{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		n := len(s.bodies)
		s.bodies = append(s.bodies, b)
		s.times = append(s.times, time.Now())
		s.mu.Unlock()
		attempt[min(n, len(attempt)-1)](w, r)
	}))
	s.conns = connCounter(s.Server)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *flaky) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func status(code int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		io.WriteString(w, strings.Repeat(http.StatusText(code)+" ", 100))
	}
}

func ok(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

func TestRetryThenSuccess(t *testing.T) {
	tests := []struct {
		name  string
		first http.HandlerFunc
	}{
		{"503", status(http.StatusServiceUnavailable)},
		{"500", status(http.StatusInternalServerError)},
		{"429", status(http.StatusTooManyRequests)},
		{"reset mid-body", hijack("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")},
		{"reset before the response", hijack("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFlaky(t, tt.first, ok)
			tr := newTransport(t, nil, httpfutures.WithRetry(fast))
			f := tr.StartRoundTrip(get(t, srv.URL))
			resp, err := f.Result()
			require.NoError(t, err)
			assert.Equal(t, "ok", body(t, resp))
			assert.Equal(t, 2, f.Attempts())
			assert.Equal(t, 2, srv.attempts())
			st := tr.Stats()
			assert.Equal(t, uint64(1), st.Retries)
			assert.Equal(t, uint64(1), st.Completed, "a Future counts once, however many attempts")
		})
	}
}

func TestRetryDrainsFailedAttemptsSoConnectionsAreReused(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "buffered", true: "streamed"}[stream], func(t *testing.T) {
			srv := newFlaky(t, status(http.StatusServiceUnavailable), status(http.StatusServiceUnavailable), ok)
			tr := newTransport(t, nil, httpfutures.WithRetry(fast), httpfutures.WithStreaming(stream))
			resp, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
			require.NoError(t, err)
			assert.Equal(t, "ok", body(t, resp))
			assert.Equal(t, int32(1), srv.conns.Load(), "the failed attempts' bodies were drained and their connection reused")
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	tests := []struct {
		name  string
		value func() string
		least time.Duration
	}{
		{"seconds", func() string { return "1" }, time.Second},
		{"HTTP-date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newFlaky(t, func(w http.ResponseWriter, r *http.Request) {
				status(http.StatusTooManyRequests, "Retry-After", tt.value())(w, r)
			}, ok)
			tr := newTransport(t, nil, httpfutures.WithRetry(fast))
			f := tr.StartRoundTrip(get(t, srv.URL))
			_, err := f.Result()
			require.NoError(t, err)
			srv.mu.Lock()
			gap := srv.times[1].Sub(srv.times[0])
			srv.mu.Unlock()
			assert.GreaterOrEqual(t, gap, tt.least, "the retry waited as the server asked")
		})
	}
}

func TestRetryAfterIsCapped(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable, "Retry-After", "1743405600"), ok) // about 484,289 hours
	tr := newTransport(t, nil, httpfutures.WithRetry(fast), httpfutures.WithMaxRetryAfter(50*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := tr.StartRoundTrip(get(t, srv.URL)).Wait(ctx)
	require.NoError(t, err, "a server asking for decades cannot wedge the client")
	assert.Equal(t, "ok", body(t, resp))
}

func TestRetry429PausesTheHostForEveryone(t *testing.T) {
	srv := newFlaky(t, status(http.StatusTooManyRequests, "Retry-After", "1"), ok)
	other := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithRetry(fast))
	retried := tr.StartRoundTrip(get(t, srv.URL+"/retried"))
	require.Eventually(t, func() bool { return srv.attempts() == 1 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return tr.Stats().Paused == 1 }, 5*time.Second, time.Millisecond)

	start := time.Now()
	bystander := tr.StartRoundTrip(get(t, srv.URL+"/bystander")) // not retrying, same host
	_, err := tr.StartRoundTrip(get(t, other.URL)).Result()
	require.NoError(t, err)
	assert.Less(t, time.Since(start), time.Second, "another host is not paused")
	_, err = bystander.Result()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "the paused host's other requests waited too")
	_, err = retried.Result()
	require.NoError(t, err)
}

func TestRetryReplaysIdenticalBodies(t *testing.T) {
	payload := make([]byte, 64<<10)
	_, err := rand.Read(payload)
	require.NoError(t, err)
	srv := newFlaky(t, status(http.StatusServiceUnavailable), status(http.StatusBadGateway), ok)
	tr := newTransport(t, nil, httpfutures.WithRetry(fast))
	req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Idempotency-Key", "order-42")

	resp, err := tr.StartRoundTrip(req).Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	require.Equal(t, 3, srv.attempts())
	for i, b := range srv.bodies {
		assert.True(t, bytes.Equal(payload, b), "attempt %d sent the same bytes", i)
	}
}

// replayBody is a body that counts its closes, for GetBody.
type replayBody struct {
	io.Reader
	closes *atomic.Int32
}

func (b replayBody) Close() error {
	b.closes.Add(1)
	return nil
}

func TestRetryRefusals(t *testing.T) {
	tests := []struct {
		name     string
		policy   httpfutures.RetryPolicy
		req      func(t *testing.T, url string) *http.Request
		reason   error
		attempts int
	}{
		{"a body that cannot be replayed is sent once", httpfutures.RetryPolicy{MinWait: time.Millisecond, RetryNonIdempotent: true},
			func(t *testing.T, url string) *http.Request {
				req, err := http.NewRequest(http.MethodPost, url, io.NopCloser(strings.NewReader("once")))
				require.NoError(t, err)
				return req
			}, httpfutures.ErrNotReplayable, 1},
		{"POST is not retried unless asked", fast,
			func(t *testing.T, url string) *http.Request {
				req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("order"))
				require.NoError(t, err)
				return req
			}, httpfutures.ErrNotIdempotent, 1},
		{"PATCH is not retried unless asked", fast,
			func(t *testing.T, url string) *http.Request {
				req, err := http.NewRequest(http.MethodPatch, url, strings.NewReader("x"))
				require.NoError(t, err)
				return req
			}, httpfutures.ErrNotIdempotent, 1},
		{"retries run out", httpfutures.RetryPolicy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: time.Millisecond},
			func(t *testing.T, url string) *http.Request { return get(t, url) }, httpfutures.ErrRetriesExhausted, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFlaky(t, status(http.StatusServiceUnavailable))
			tr := newTransport(t, nil, httpfutures.WithRetry(tt.policy))
			f := tr.StartRoundTrip(tt.req(t, srv.URL))
			resp, err := f.Result()
			require.NoError(t, err, "a response is not an error, whatever its status: %v is why it was not retried", tt.reason)
			require.NotNil(t, resp, "the last response is the Future's")
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			assert.Contains(t, body(t, resp), "Service Unavailable", "with its body")
			assert.Equal(t, tt.attempts, f.Attempts())
			assert.Equal(t, tt.attempts, srv.attempts())
			st := tr.Stats()
			assert.Equal(t, uint64(1), st.Completed)
			assert.Zero(t, st.Failed)
		})
		t.Run(tt.name+", streamed", func(t *testing.T) {
			srv := newFlaky(t, status(http.StatusServiceUnavailable))
			tr := newTransport(t, nil, httpfutures.WithRetry(tt.policy))
			resp, err := tr.RoundTrip(tt.req(t, srv.URL))
			require.NoError(t, err)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			assert.Contains(t, body(t, resp), "Service Unavailable", "its body streams, unread")
			assert.Equal(t, tt.attempts, srv.attempts())
		})
	}

	t.Run("POST with RetryNonIdempotent is retried", func(t *testing.T) {
		srv := newFlaky(t, status(http.StatusServiceUnavailable), ok)
		tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: time.Millisecond, RetryNonIdempotent: true}))
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("x"))
		require.NoError(t, err)
		_, err = tr.StartRoundTrip(req).Result()
		require.NoError(t, err)
		assert.Equal(t, 2, srv.attempts())
	})

	t.Run("connection errors wrap their cause", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond}))
		_, err = tr.StartRoundTrip(get(t, "http://"+addr)).Result()
		require.ErrorIs(t, err, httpfutures.ErrRetriesExhausted)
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		var re *httpfutures.RetryError
		require.ErrorAs(t, err, &re)
		assert.Nil(t, re.Response)
		assert.Equal(t, 2, re.Attempts)
	})
}

func TestRetryStalledServer(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newFlaky(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, ok)
	tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{
		MinWait: time.Millisecond, AttemptTimeout: 100 * time.Millisecond,
	}))
	f := tr.StartRoundTrip(get(t, srv.URL))
	resp, err := f.Result()
	require.NoError(t, err, "the stalled attempt timed out and the next one succeeded")
	assert.Equal(t, "ok", body(t, resp))
	assert.Equal(t, 2, f.Attempts())
}

func TestRetryHoldsNoWorkerWhileWaiting(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable), ok)
	other := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithRetry(httpfutures.RetryPolicy{
		MinWait: time.Hour, MaxWait: time.Hour, // the retry waits an hour
	}))
	retrying := tr.StartRoundTrip(get(t, srv.URL))
	require.Eventually(t, func() bool { return tr.Stats().Retries == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 1, tr.Stats().Queued, "the retry waits in the queue")
	assert.Equal(t, 0, tr.Stats().InFlight)

	resp, err := tr.StartRoundTrip(get(t, other.URL)).Result()
	require.NoError(t, err, "the only worker is free for other requests")
	assert.Equal(t, "GET /", body(t, resp))

	assert.True(t, retrying.Cancel(), "a retry waiting can be canceled")
	_, err = retrying.Result()
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, srv.attempts())
}

func TestRetryAttemptsArePaced(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable), status(http.StatusServiceUnavailable), ok)
	tr := newTransport(t, nil, httpfutures.WithRateLimit(10, 1), httpfutures.WithRetry(fast))
	_, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
	require.NoError(t, err)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.times, 3)
	// Three attempts take three tokens of the 10/s limit: the last goes at least 200 ms after
	// the first's token, give or take how late the first reached the server. (One gap alone may
	// be shorter: a late wake-up is made up on the limiter's schedule.)
	assert.GreaterOrEqual(t, srv.times[2].Sub(srv.times[0]), 180*time.Millisecond,
		"every attempt waits for a token of the 10/s limit")
}

func TestRetryBudget(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable))
	tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{
		MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond,
		Budget: httpfutures.RetryBudget{Ratio: 0.1, MinRetries: 1, Window: time.Minute},
	}))
	fs := make([]*httpfutures.Future, 20)
	for i := range fs {
		fs[i] = tr.StartRoundTrip(get(t, srv.URL))
	}
	budgeted := 0
	for _, f := range fs {
		resp, err := f.Result()
		require.NoError(t, err, "the last response is the Future's, retried or not")
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		if f.Attempts() == 1 {
			budgeted++
		}
	}
	retries := tr.Stats().Retries
	assert.LessOrEqual(t, retries, uint64(2), "at most 10%% of 20 requests were retried")
	assert.GreaterOrEqual(t, retries, uint64(1), "the minimum is always allowed")
	assert.Equal(t, 20+int(retries), srv.attempts())
	assert.Equal(t, 20-int(retries), budgeted)
}

func TestRetryCloseWhileWaiting(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable), ok)
	tr := httpfutures.NewTransport(nil, httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: time.Hour, MaxWait: time.Hour}))
	var closes atomic.Int32
	req, err := http.NewRequest(http.MethodPut, srv.URL, strings.NewReader("x"))
	require.NoError(t, err)
	req.GetBody = func() (io.ReadCloser, error) { return replayBody{strings.NewReader("x"), &closes}, nil }
	f := tr.StartRoundTrip(req)
	require.Eventually(t, func() bool { return tr.Stats().Retries == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, tr.Close())
	_, err = f.Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed)
	assert.Equal(t, int32(1), closes.Load(), "the body made for the retry was closed")
}

// TestRetryableHTTPClientAboveTransport composes retryablehttp's client above an AsyncTransport:
// every attempt passes the Scheduler.
func TestRetryableHTTPClientAboveTransport(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable), ok)
	tr := newTransport(t, nil)
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: tr}
	rc.RetryWaitMin, rc.RetryWaitMax = time.Millisecond, time.Millisecond
	rc.Logger = nil

	resp, err := rc.Get(srv.URL)
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	assert.Equal(t, uint64(2), tr.Stats().Completed, "both attempts went through the scheduler")
}

// TestTransportAboveRetryableHTTP puts an AsyncTransport over retryablehttp's RoundTripper: the
// Future resolves with the final attempt.
func TestTransportAboveRetryableHTTP(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable), ok)
	rc := retryablehttp.NewClient()
	rc.RetryWaitMin, rc.RetryWaitMax = time.Millisecond, time.Millisecond
	rc.Logger = nil
	tr := newTransport(t, &retryablehttp.RoundTripper{Client: rc})

	resp, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	assert.Equal(t, 2, srv.attempts())
	assert.Equal(t, uint64(1), tr.Stats().Completed)
	rc.HTTPClient.CloseIdleConnections()
}

func TestRetryPolicyFromRetryableHTTP(t *testing.T) {
	srv := newFlaky(t, status(http.StatusServiceUnavailable), ok)
	var checked atomic.Int32
	tr := newTransport(t, nil, httpfutures.WithRetry(httpfutures.RetryPolicy{
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			checked.Add(1)
			return retryablehttp.ErrorPropagatedRetryPolicy(ctx, resp, err)
		},
		Backoff: retryablehttp.LinearJitterBackoff,
		MinWait: time.Millisecond, MaxWait: 2 * time.Millisecond,
	}))
	_, err := tr.StartRoundTrip(get(t, srv.URL)).Result()
	require.NoError(t, err)
	assert.Equal(t, int32(2), checked.Load(), "the policy judged each attempt once")
}

func TestSessionRetries(t *testing.T) {
	srv := newFlaky(t, status(http.StatusBadGateway), ok)
	s := newSession(t, httpfutures.WithRetry(fast))
	f := s.Get(srv.URL)
	resp, err := f.Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
	assert.Equal(t, 2, f.Attempts())
}
