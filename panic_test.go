package httpfutures_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpfutures/httpfutures"
)

// roundTripFunc is a RoundTripper written as a function: the callbacks these tests make misbehave.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// panickingLimiter is a Limiter whose Reserve panics.
type panickingLimiter struct{}

func (panickingLimiter) Reserve(context.Context, string, time.Time) (time.Time, error) {
	panic("limiter broke")
}

// No callback can crash the process: a panic, or a nil response with a nil error, from any of
// them fails only its Future, the worker lives on, and the request's body is closed once.
func TestCallbacksCannotCrashTheProcess(t *testing.T) {
	ts := newEchoServer(t)
	panics := roundTripFunc(func(*http.Request) (*http.Response, error) { panic("round trip broke") })
	nothing := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
	retryOnce := func(p httpfutures.RetryPolicy) httpfutures.RetryPolicy {
		p.MaxRetries = 1
		p.Backoff = func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 }
		return p
	}
	tests := []struct {
		name      string
		next      http.RoundTripper
		opts      []httpfutures.Option
		wantPanic any // the panic value; nil for an error that is not a panic
		wantErr   string
	}{
		{name: "RoundTripper panics", next: panics, wantPanic: "round trip broke"},
		{name: "RoundTripper returns nil, nil", next: nothing, wantErr: "nil *Response with a nil error"},
		{name: "Limiter panics", opts: []httpfutures.Option{httpfutures.WithLimiter(panickingLimiter{})},
			wantPanic: "limiter broke"},
		{name: "CheckRetry panics", opts: []httpfutures.Option{httpfutures.WithRetry(retryOnce(httpfutures.RetryPolicy{
			CheckRetry: func(context.Context, *http.Response, error) (bool, error) { panic("check broke") },
		}))}, wantPanic: "check broke"},
		{name: "Backoff panics", opts: []httpfutures.Option{httpfutures.WithRetry(httpfutures.RetryPolicy{
			MaxRetries: 1,
			CheckRetry: func(context.Context, *http.Response, error) (bool, error) { return true, nil },
			Backoff:    func(time.Duration, time.Duration, int, *http.Response) time.Duration { panic("backoff broke") },
		})}, wantPanic: "backoff broke"},
		{name: "Request hook panics", opts: []httpfutures.Option{httpfutures.WithHooks(httpfutures.Hooks{
			Request: func(*http.Request) { panic("request hook broke") },
		})}, wantPanic: "request hook broke"},
	}
	for _, tt := range tests {
		for _, kind := range []string{"transport", "session"} {
			t.Run(tt.name+"/"+kind, func(t *testing.T) {
				opts := append([]httpfutures.Option{httpfutures.WithWorkers(1)}, tt.opts...)
				var start func(*http.Request) *httpfutures.Future
				if kind == "transport" {
					tr := newTransport(t, tt.next, opts...)
					start = tr.StartRoundTrip
				} else {
					opts = append(opts, httpfutures.WithClient(&http.Client{Transport: tt.next}))
					s := newSession(t, opts...)
					start = s.Do
				}
				b := &countingBody{Reader: strings.NewReader("payload")}
				var again *countingBody
				req, err := http.NewRequest(http.MethodPut, ts.URL, b)
				require.NoError(t, err)
				req.GetBody = func() (io.ReadCloser, error) {
					again = &countingBody{Reader: strings.NewReader("payload")}
					return again, nil
				}
				_, err = start(req).Result()
				require.Error(t, err)
				if tt.wantPanic != nil {
					var pe *httpfutures.PanicError
					require.ErrorAs(t, err, &pe)
					assert.Equal(t, tt.wantPanic, pe.Value)
					assert.NotEmpty(t, pe.Stack)
				} else {
					assert.Contains(t, err.Error(), tt.wantErr)
				}
				assert.Equal(t, int32(1), b.closes.Load(), "the request body is closed once")
				if again != nil {
					assert.Equal(t, int32(1), again.closes.Load(), "the body made for a retry is closed once")
				}
			})
		}
	}
}

// After a callback panicked, the worker that ran it serves the next request.
func TestWorkerLivesOnAfterAPanic(t *testing.T) {
	ts := newEchoServer(t)
	calls := 0
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			panic("first")
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	tr := newTransport(t, next, httpfutures.WithWorkers(1))
	_, err := tr.StartRoundTrip(get(t, ts.URL+"/1")).Result()
	var pe *httpfutures.PanicError
	require.ErrorAs(t, err, &pe)
	resp, err := tr.StartRoundTrip(get(t, ts.URL+"/2")).Result()
	require.NoError(t, err)
	assert.Equal(t, "GET /2", body(t, resp))
	st := tr.Stats()
	assert.Equal(t, uint64(1), st.Failed)
	assert.Equal(t, uint64(1), st.Completed)
	require.Eventually(t, func() bool { return tr.HostStats(ts.URL).InFlight == 0 }, 5*time.Second, time.Millisecond,
		"the worker came back, and gave the host's slot back")
}

// panickingObserver is a Limiter that lets every request go and panics when told of
// backpressure.
type panickingObserver struct{}

func (panickingObserver) Reserve(_ context.Context, _ string, now time.Time) (time.Time, error) {
	return now, nil
}

func (panickingObserver) ObserveBackpressure(string, httpfutures.Backpressure) {
	panic("observer broke")
}

// A BackpressureObserver that panics fails the round trip that it was told of, and nothing else.
func TestPanickingBackpressureObserver(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithLimiter(panickingObserver{}))
	_, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
	var pe *httpfutures.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "observer broke", pe.Value)
}

// panickingJar is a cookie jar whose Cookies panics, before the client sends anything.
type panickingJar struct{}

func (panickingJar) SetCookies(*url.URL, []*http.Cookie) {}
func (panickingJar) Cookies(*url.URL) []*http.Cookie     { panic("jar broke") }

// cookieDroppingJar is a cookie jar whose SetCookies panics, which the client calls holding the
// response.
type cookieDroppingJar struct{}

func (cookieDroppingJar) SetCookies(*url.URL, []*http.Cookie) { panic("jar broke") }
func (cookieDroppingJar) Cookies(*url.URL) []*http.Cookie     { return nil }

// A callback that panics inside the Session's http.Client lets go of what the client held: the
// 3xx response a redirect policy was judging (its connection and goroutines do not outlive
// Close), and the body of a request the client never sent.
func TestPanicInTheClientLeaksNothing(t *testing.T) {
	t.Run("redirect policy", func(t *testing.T) {
		ts := newRedirectChain(t, nil)
		before := goleak.IgnoreCurrent()
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { panic("redirect policy broke") }}
		s := httpfutures.NewSession(httpfutures.WithClient(c), httpfutures.WithWorkers(1))
		_, err := s.Get(ts.URL + "/r/2").Result()
		var pe *httpfutures.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "redirect policy broke", pe.Value)
		s.Close()
		assert.NoError(t, goleak.Find(before), "the 3xx response's connection outlives Close")
	})
	t.Run("jar holding the response", func(t *testing.T) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "a", Value: "b"})
			io.WriteString(w, "a body the client never reads")
		}))
		defer ts.Close()
		before := goleak.IgnoreCurrent()
		s := httpfutures.NewSession(httpfutures.WithClient(&http.Client{Jar: cookieDroppingJar{}}), httpfutures.WithWorkers(1))
		_, err := s.Get(ts.URL).Result()
		var pe *httpfutures.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "jar broke", pe.Value)
		s.Close()
		assert.NoError(t, goleak.Find(before), "the response's connection outlives Close")
	})
	t.Run("jar", func(t *testing.T) {
		ts := newEchoServer(t)
		s := httpfutures.NewSession(httpfutures.WithClient(&http.Client{Jar: panickingJar{}}), httpfutures.WithWorkers(1))
		defer s.Close()
		body := &countingBody{Reader: strings.NewReader("payload")}
		req, err := http.NewRequest(http.MethodPut, ts.URL, body)
		require.NoError(t, err)
		_, err = s.Do(req).Result()
		var pe *httpfutures.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "jar broke", pe.Value)
		assert.EqualValues(t, 1, body.closes.Load(), "the unsent body is closed once")
		assert.Zero(t, ts.hits.Load())
	})
}

// A GetBody that panics while a hedged request's copies are queued fails the Future with a
// *PanicError, closes the request's body once, and sends none of the copies queued before it.
func TestPanickingGetBodyOfAHedgedRequest(t *testing.T) {
	ts := newEchoServer(t)
	tr := httpfutures.NewTransport(nil, httpfutures.WithHedge(20*time.Millisecond, 2), httpfutures.WithWorkers(2))
	defer tr.Close()
	body := &countingBody{Reader: strings.NewReader("payload")}
	req, err := http.NewRequest(http.MethodPut, ts.URL, body)
	require.NoError(t, err)
	calls := 0
	req.GetBody = func() (io.ReadCloser, error) {
		if calls++; calls == 2 {
			panic("GetBody broke")
		}
		return io.NopCloser(strings.NewReader("payload")), nil
	}
	_, err = tr.StartRoundTrip(req).Result()
	var pe *httpfutures.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "GetBody broke", pe.Value)
	time.Sleep(100 * time.Millisecond) // past the copies' delays
	assert.EqualValues(t, 1, body.closes.Load())
	assert.Zero(t, ts.hits.Load(), "a copy was sent for a Future that failed before its round trip")
	assert.Zero(t, tr.Stats().Hedges)
}

// A PanicError's message is one line, as a log line or an error wrapped in another's wants; the
// stack is there for whoever asks for it: StackTrace, or the %+v verb.
func TestPanicErrorIsOneLine(t *testing.T) {
	tr := newTransport(t, roundTripFunc(func(*http.Request) (*http.Response, error) {
		panic("transport exploded")
	}))
	_, err := tr.StartRoundTrip(get(t, "http://example.test/")).Result()
	var pe *httpfutures.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "httpfutures: callback panicked: transport exploded", err.Error())
	assert.NotContains(t, fmt.Sprintf("%v", err), "\n")
	assert.Equal(t, err.Error(), fmt.Sprintf("%s", err))
	assert.Equal(t, fmt.Sprintf("%q", err.Error()), fmt.Sprintf("%q", err))
	assert.Contains(t, pe.StackTrace(), "TestPanicErrorIsOneLine", "the stack shows where it panicked")
	assert.Equal(t, string(pe.Stack), pe.StackTrace())
	full := fmt.Sprintf("%+v", err)
	assert.True(t, strings.HasPrefix(full, err.Error()+"\n"), "%%+v: the message, then the stack")
	assert.Contains(t, full, "TestPanicErrorIsOneLine")
}
