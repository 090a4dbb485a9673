package httpfutures_test

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

func TestStartRoundTripReturnsAtOnce(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))

	f1 := tr.StartRoundTrip(get(t, ts.URL+"/one"))
	f2 := tr.StartRoundTrip(get(t, ts.URL+"/two")) // queued behind /one: returns all the same
	assert.Equal(t, "/one", <-g.arrived)
	select {
	case <-f1.Done():
		t.Fatal("resolved before the server answered")
	default:
	}
	g.open()
	r1, err := f1.Result()
	require.NoError(t, err)
	r2, err := f2.Result()
	require.NoError(t, err)
	assert.Equal(t, "/one", body(t, r1))
	assert.Equal(t, "/two", body(t, r2))
}

func TestRoundTripWithHTTPClient(t *testing.T) {
	ts := newEchoServer(t)
	tr := newTransport(t, nil)
	client := &http.Client{Transport: tr}

	resp, err := client.Get(ts.URL + "/sync")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "GET /sync", body(t, resp))
	assert.Equal(t, uint64(1), tr.Stats().Completed)
}

func TestRoundTripIsScheduled(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))
	client := &http.Client{Transport: tr}

	errs := make(chan error, 2)
	for _, p := range []string{"/a", "/b"} {
		go func() {
			resp, err := client.Get(ts.URL + p)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	<-g.arrived
	require.Eventually(t, func() bool { return tr.Stats().Queued == 1 }, 5*time.Second, time.Millisecond,
		"the second synchronous request waits in the queue")
	assert.Empty(t, g.arrived)
	g.open()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
}

func TestRoundTripStreamsTheBody(t *testing.T) {
	release := make(chan struct{})
	ts := newHeadThenTail(t, release)
	tr := newTransport(t, nil)

	resp, err := tr.RoundTrip(get(t, ts.URL))
	require.NoError(t, err, "RoundTrip returns at the headers, before the body is complete")
	buf := make([]byte, 5)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	assert.Equal(t, "head ", string(buf))
	close(release)
	assert.Equal(t, "tail", body(t, resp))
}

func TestErrorsAreShiftedIntoTheFuture(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())

	tests := []struct {
		name  string
		req   func() *http.Request
		check func(t *testing.T, err error)
	}{
		{"nil request", func() *http.Request { return nil }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
		}},
		{"empty URL", func() *http.Request { return get(t, "") }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
		}},
		{"no host", func() *http.Request { return get(t, "http:///path") }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
		}},
		{"nil URL", func() *http.Request { r := get(t, "http://x"); r.URL = nil; return r }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
		}},
		{"unsupported scheme", func() *http.Request { return get(t, "gopher://example.com/") }, func(t *testing.T, err error) {
			assert.ErrorContains(t, err, "unsupported protocol scheme")
		}},
		{"connection refused", func() *http.Request { return get(t, refused) }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, syscall.ECONNREFUSED)
		}},
	}
	tr := newTransport(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tr.StartRoundTrip(tt.req())
			require.NotNil(t, f)
			resp, err := f.Result()
			assert.Nil(t, resp, "a response or an error, never both")
			require.Error(t, err)
			tt.check(t, err)
		})
	}

	t.Run("closed transport", func(t *testing.T) {
		tr := httpfutures.NewTransport(nil)
		require.NoError(t, tr.Close())
		resp, err := tr.StartRoundTrip(get(t, "http://127.0.0.1:1/")).Result()
		assert.Nil(t, resp)
		require.ErrorIs(t, err, httpfutures.ErrClosed)
	})
}

// countingBody is a request body that counts how often it is closed.
type countingBody struct {
	io.Reader
	closes atomic.Int32
}

func (b *countingBody) Close() error {
	b.closes.Add(1)
	return nil
}

func TestRequestBodyClosedExactlyOnce(t *testing.T) {
	ts := newEchoServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	// blocked returns a server whose requests wait until the subtest ends.
	blocked := func(t *testing.T) (*httptest.Server, *gate) {
		ts, g := newGateServer(t)
		t.Cleanup(g.open) // before the transport's Close, which waits for them
		return ts, g
	}

	post := func(url string, b *countingBody) *http.Request {
		req, err := http.NewRequest(http.MethodPost, url, nil)
		require.NoError(t, err)
		req.Body = b
		return req
	}
	tests := []struct {
		name string
		run  func(t *testing.T, b *countingBody) error
	}{
		{"sent", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil)
			_, err := tr.StartRoundTrip(post(ts.URL, b)).Result()
			return err
		}},
		{"sent synchronously", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil)
			resp, err := tr.RoundTrip(post(ts.URL, b))
			if err == nil {
				resp.Body.Close()
			}
			return err
		}},
		{"no host", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil)
			_, err := tr.StartRoundTrip(post("http:///x", b)).Result()
			return err
		}},
		{"connection refused", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil)
			_, err := tr.StartRoundTrip(post(refused, b)).Result()
			return err
		}},
		{"closed transport", func(t *testing.T, b *countingBody) error {
			tr := httpfutures.NewTransport(nil)
			require.NoError(t, tr.Close())
			_, err := tr.StartRoundTrip(post(ts.URL, b)).Result()
			return err
		}},
		{"queue full", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(1))
			blocker, g := blocked(t)
			tr.StartRoundTrip(get(t, blocker.URL))
			<-g.arrived
			tr.StartRoundTrip(get(t, blocker.URL))
			_, err := tr.StartRoundTrip(post(ts.URL, b)).Result()
			return err
		}},
		{"canceled while queued", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil, httpfutures.WithWorkers(1))
			blocker, g := blocked(t)
			tr.StartRoundTrip(get(t, blocker.URL))
			<-g.arrived
			f := tr.StartRoundTrip(post(ts.URL, b))
			f.Cancel()
			_, err := f.Result()
			return err
		}},
		{"closed while queued", func(t *testing.T, b *countingBody) error {
			tr := httpfutures.NewTransport(nil, httpfutures.WithWorkers(1))
			blocker, g := blocked(t)
			first := tr.StartRoundTrip(get(t, blocker.URL))
			<-g.arrived
			f := tr.StartRoundTrip(post(ts.URL, b))
			go g.open()
			require.NoError(t, tr.Close())
			first.Result()
			_, err := f.Result()
			return err
		}},
		{"context ended before the start", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err := tr.StartRoundTrip(post(ts.URL, b).WithContext(ctx)).Result()
			return err
		}},
		{"request hook panicked", func(t *testing.T, b *countingBody) error {
			tr := newTransport(t, nil, httpfutures.WithHooks(httpfutures.Hooks{Request: func(*http.Request) { panic("no") }}))
			_, err := tr.StartRoundTrip(post(ts.URL, b)).Result()
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &countingBody{Reader: strings.NewReader("payload")}
			tt.run(t, b)
			require.Eventually(t, func() bool { return b.closes.Load() >= 1 }, 5*time.Second, time.Millisecond)
			assert.Equal(t, int32(1), b.closes.Load())
		})
	}
}

func TestCallerRequestIsNotModified(t *testing.T) {
	var seen atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("X-Signed"))
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithHooks(httpfutures.Hooks{
		Request: func(r *http.Request) { r.Header.Set("X-Signed", "yes") },
	}))
	req := get(t, ts.URL)
	req.Header.Set("X-Mine", "1")
	ctx := req.Context()

	f := tr.StartRoundTrip(req)
	resp, err := f.Result()
	require.NoError(t, err)
	assert.Equal(t, "yes", seen.Load(), "the hook changed the request that was sent")
	assert.Equal(t, http.Header{"X-Mine": {"1"}}, req.Header, "but not the caller's")
	assert.Equal(t, ctx, req.Context())
	assert.Same(t, req, f.Request())
	assert.Same(t, req, resp.Request, "the response names the request submitted")
}

func TestCloseCancelsQueuedRequests(t *testing.T) {
	ts, g := newGateServer(t)
	var hits atomic.Int32
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(counted.Close)
	tr := httpfutures.NewTransport(nil, httpfutures.WithWorkers(1))

	running := tr.StartRoundTrip(get(t, ts.URL+"/running"))
	<-g.arrived
	queued := []*httpfutures.Future{
		tr.StartRoundTrip(get(t, counted.URL+"/2")),
		tr.StartRoundTrip(get(t, counted.URL+"/3")),
	}
	require.NoError(t, tr.Close(), "Close returns without waiting for the gate")
	for _, f := range queued {
		resp, err := f.Result()
		assert.Nil(t, resp)
		require.ErrorIs(t, err, httpfutures.ErrClosed)
		require.NotErrorIs(t, err, context.Canceled, "never sent")
	}
	_, err := running.Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed, "the running request was stopped")
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int32(0), hits.Load(), "queued requests never reached the network")
	st := tr.Stats()
	assert.Equal(t, uint64(0), st.Completed)
	assert.Equal(t, uint64(3), st.Canceled)
	_, err = tr.StartRoundTrip(get(t, counted.URL)).Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed)
}

func TestShutdownDrains(t *testing.T) {
	ts, g := newGateServer(t)
	tr := httpfutures.NewTransport(nil, httpfutures.WithWorkers(1))
	var fs []*httpfutures.Future
	for i := range 3 {
		fs = append(fs, tr.StartRoundTrip(get(t, fmt.Sprintf("%s/%d", ts.URL, i))))
	}
	<-g.arrived
	done := make(chan error)
	go func() { done <- tr.Shutdown(context.Background()) }()
	var early []*httpfutures.Future // submitted before Shutdown took effect: they are drained too
	require.Eventually(t, func() bool {
		f := tr.StartRoundTrip(get(t, ts.URL))
		select {
		case <-f.Done():
			_, err := f.Result()
			return errors.Is(err, httpfutures.ErrClosed)
		default:
			early = append(early, f)
			return false
		}
	}, 5*time.Second, time.Millisecond, "no new work once Shutdown has begun")
	g.open()
	require.NoError(t, <-done)
	require.NoError(t, httpfutures.WaitAll(context.Background(), early...))
	for i, f := range fs {
		resp, err := f.Result()
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("/%d", i), body(t, resp))
	}
}

func TestShutdownContextEnds(t *testing.T) {
	ts, g := newGateServer(t)
	tr := httpfutures.NewTransport(nil, httpfutures.WithWorkers(1))
	running := tr.StartRoundTrip(get(t, ts.URL+"/running"))
	<-g.arrived
	queued := tr.StartRoundTrip(get(t, ts.URL+"/queued"))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := tr.Shutdown(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = running.Result()
	require.ErrorIs(t, err, context.Canceled, "the running request was canceled")
	_, err = queued.Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed)
}

// A Shutdown whose context ends cancels its own transport's running requests, and not those of
// another transport on the same Scheduler.
func TestShutdownCancelsOnlyItsOwn(t *testing.T) {
	ts, g := newGateServer(t)
	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(2))
	t.Cleanup(func() { sched.Close() })
	mine := httpfutures.NewTransport(nil, httpfutures.WithScheduler(sched))
	other := newTransport(t, nil, httpfutures.WithScheduler(sched))
	running := mine.StartRoundTrip(get(t, ts.URL+"/mine"))
	kept := other.StartRoundTrip(get(t, ts.URL+"/other"))
	<-g.arrived
	<-g.arrived

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, mine.Shutdown(ctx), context.Canceled)
	_, err := running.Result()
	require.ErrorIs(t, err, context.Canceled)
	select {
	case <-kept.Done():
		t.Fatal("the other transport's request was stopped")
	default:
	}
	g.open()
	resp, err := kept.Result()
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "/other", string(body))
}

func TestQueueLimit(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(2))
	first := tr.StartRoundTrip(get(t, ts.URL))
	<-g.arrived
	q1 := tr.StartRoundTrip(get(t, ts.URL))
	q2 := tr.StartRoundTrip(get(t, ts.URL))
	over := tr.StartRoundTrip(get(t, ts.URL))
	select {
	case <-over.Done():
	default:
		t.Fatal("a request over the queue limit must fail at once")
	}
	_, err := over.Result()
	require.ErrorIs(t, err, httpfutures.ErrQueueFull)
	assert.Equal(t, 2, tr.Stats().Queued)
	g.open()
	for _, f := range []*httpfutures.Future{first, q1, q2} {
		_, err := f.Result()
		require.NoError(t, err)
	}
}

func TestCancel(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))
	running := tr.StartRoundTrip(get(t, ts.URL+"/running"))
	<-g.arrived
	queued := tr.StartRoundTrip(get(t, ts.URL+"/queued"))

	assert.True(t, queued.Cancel())
	_, err := queued.Result()
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, queued.Cancel(), "a resolved Future cannot be canceled")
	assert.Zero(t, queued.Timing().Started, "it never started")

	assert.True(t, running.Cancel())
	resp, err := running.Result()
	assert.Nil(t, resp)
	require.ErrorIs(t, err, context.Canceled)

	g.open()
	ok := tr.StartRoundTrip(get(t, ts.URL+"/after"))
	_, err = ok.Result()
	require.NoError(t, err)
	assert.Equal(t, "/after", <-g.arrived, "the queued request never reached the server")
	assert.Equal(t, uint64(2), tr.Stats().Canceled)
}

func TestContextEndsWhileQueued(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))
	tr.StartRoundTrip(get(t, ts.URL+"/running"))
	<-g.arrived

	ctx, cancel := context.WithCancel(context.Background())
	canceled := tr.StartRoundTrip(get(t, ts.URL+"/canceled").WithContext(ctx))
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	expired := tr.StartRoundTrip(get(t, ts.URL+"/expired").WithContext(dctx))
	cancel()

	_, err := canceled.Result()
	require.ErrorIs(t, err, context.Canceled)
	_, err = expired.Result()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 0, tr.Stats().Queued, "both left the queue at once")
	g.open()
	_, err = tr.StartRoundTrip(get(t, ts.URL+"/after")).Result()
	require.NoError(t, err)
	assert.Equal(t, "/after", <-g.arrived, "neither reached the network")
}

// connCounter counts the connections a server accepts.
func connCounter(ts *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func TestBodyIsReadInTheWorker(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 64<<10))
	}))
	conns := connCounter(ts)
	ts.Start()
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))

	var resps []*http.Response
	for range 5 {
		resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
		require.NoError(t, err)
		resps = append(resps, resp) // not read yet: a slow reader
	}
	assert.Equal(t, int32(1), conns.Load(), "each body was read by the worker, so one connection served all")
	ts.Close() // the bodies are in memory already
	for _, resp := range resps {
		assert.Len(t, body(t, resp), 64<<10)
	}
}

func TestBodySizeCap(t *testing.T) {
	big := strings.Repeat("x", 1000)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length
		}
		io.WriteString(w, big)
	}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithMaxBodySize(100))
	for _, path := range []string{"/sized", "/chunked"} {
		t.Run(path, func(t *testing.T) {
			resp, err := tr.StartRoundTrip(get(t, ts.URL+path)).Result()
			assert.Nil(t, resp)
			require.ErrorIs(t, err, httpfutures.ErrBodyTooLarge)
			assert.ErrorContains(t, err, "WithMaxBodySize")
		})
	}
	t.Run("exactly at the cap", func(t *testing.T) {
		tr := newTransport(t, nil, httpfutures.WithMaxBodySize(1000))
		resp, err := tr.StartRoundTrip(get(t, ts.URL+"/sized")).Result()
		require.NoError(t, err)
		assert.Equal(t, big, body(t, resp))
	})
	t.Run("streamed bodies are not capped", func(t *testing.T) {
		req := get(t, ts.URL+"/chunked")
		resp, err := tr.StartRoundTrip(req.WithContext(httpfutures.ContextWithStreaming(req.Context()))).Result()
		require.NoError(t, err)
		assert.Equal(t, big, body(t, resp))
	})
}

// hijack answers with raw bytes and closes the connection: a fault no well-behaved server makes.
func hijack(raw string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		buf.WriteString(raw)
		buf.Flush()
		if tc, ok := conn.(*net.TCPConn); ok && raw == "" {
			tc.SetLinger(0) // a reset, not a clean close
		}
		conn.Close()
	}
}

func TestNetworkFaults(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
		check   func(t *testing.T, err error)
	}{
		{"truncated body", hijack("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"), func(t *testing.T, err error) {
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
			assert.ErrorContains(t, err, "reading response body")
		}},
		{"reset before the response", hijack(""), func(t *testing.T, err error) {
			assert.Error(t, err)
		}},
		{"garbage response", hijack("SMTP ready\r\n\r\n"), func(t *testing.T, err error) {
			assert.ErrorContains(t, err, "malformed HTTP")
		}},
	}
	tr := newTransport(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(tt.handler)
			t.Cleanup(ts.Close)
			resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
			assert.Nil(t, resp)
			tt.check(t, err)
		})
	}
}

func TestStalledServerWithTimeout(t *testing.T) {
	ts, _ := newGateServer(t)
	tr := newTransport(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	resp, err := tr.StartRoundTrip(get(t, ts.URL).WithContext(ctx)).Result()
	assert.Nil(t, resp)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, uint64(1), tr.Stats().Failed)
}

func TestStreamingHoldsTheSlotUntilClose(t *testing.T) {
	ts := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithStreaming(true))
	first, err := tr.StartRoundTrip(get(t, ts.URL+"/first")).Result()
	require.NoError(t, err)
	second := tr.StartRoundTrip(get(t, ts.URL+"/second"))
	require.Eventually(t, func() bool { return tr.Stats().Queued == 1 }, 5*time.Second, time.Millisecond)
	select {
	case <-second.Done():
		t.Fatal("the second request started while the first body held the only slot")
	case <-time.After(20 * time.Millisecond):
	}
	assert.Equal(t, "GET /first", body(t, first)) // reading to the end and closing frees the slot
	resp, err := second.Result()
	require.NoError(t, err)
	assert.Equal(t, "GET /second", body(t, resp))
}

func TestResponseHooks(t *testing.T) {
	ts := newEchoServer(t)

	t.Run("run in the worker before the Future resolves", func(t *testing.T) {
		var order []string
		var mu sync.Mutex
		record := func(s string) httpfutures.Hooks {
			return httpfutures.Hooks{Response: func(resp *http.Response) error {
				b, err := io.ReadAll(resp.Body)
				mu.Lock()
				order = append(order, s+":"+string(b))
				mu.Unlock()
				return err
			}}
		}
		tr := newTransport(t, nil, httpfutures.WithHooks(record("transport")))
		req := get(t, ts.URL+"/x")
		req = req.WithContext(httpfutures.ContextWithHooks(req.Context(), record("request")))
		resp, err := tr.StartRoundTrip(req).Result()
		require.NoError(t, err)
		mu.Lock()
		assert.Equal(t, []string{"transport:GET /x", "request:GET /x"}, order)
		mu.Unlock()
		assert.Equal(t, "GET /x", body(t, resp), "the caller reads the body from the start after the hooks did")
	})

	t.Run("an error becomes the Future's error", func(t *testing.T) {
		boom := errors.New("boom")
		tr := newTransport(t, nil, httpfutures.WithHooks(httpfutures.Hooks{
			Response: func(*http.Response) error { return boom },
		}))
		resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
		assert.Nil(t, resp)
		require.ErrorIs(t, err, boom)
		assert.Equal(t, uint64(1), tr.Stats().Failed)
	})

	t.Run("a panic becomes the Future's error and the worker lives on", func(t *testing.T) {
		tr := newTransport(t, nil, httpfutures.WithWorkers(1))
		req := get(t, ts.URL)
		req = req.WithContext(httpfutures.ContextWithHooks(req.Context(), httpfutures.Hooks{
			Response: func(*http.Response) error { panic("decoder exploded") },
		}))
		resp, err := tr.StartRoundTrip(req).Result()
		assert.Nil(t, resp)
		var perr *httpfutures.PanicError
		require.ErrorAs(t, err, &perr)
		assert.Equal(t, "decoder exploded", perr.Value)
		assert.Contains(t, string(perr.Stack), "TestResponseHooks", "the stack shows where it panicked")
		assert.Contains(t, err.Error(), "decoder exploded")

		_, err = tr.StartRoundTrip(get(t, ts.URL)).Result()
		require.NoError(t, err, "the only worker still serves")
	})

	t.Run("a panic with an error wraps it", func(t *testing.T) {
		tr := newTransport(t, nil, httpfutures.WithHooks(httpfutures.Hooks{
			Response: func(*http.Response) error { panic(io.ErrShortBuffer) },
		}))
		_, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
		require.ErrorIs(t, err, io.ErrShortBuffer)
	})
}

func TestTiming(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))
	first := tr.StartRoundTrip(get(t, ts.URL))
	<-g.arrived
	second := tr.StartRoundTrip(get(t, ts.URL))
	time.Sleep(20 * time.Millisecond) // the second waits in the queue meanwhile
	g.open()
	_, err := second.Result()
	require.NoError(t, err)
	_, err = first.Result()
	require.NoError(t, err)

	tm := second.Timing()
	require.False(t, tm.Queued.IsZero())
	require.False(t, tm.Started.IsZero())
	require.False(t, tm.Finished.IsZero())
	assert.GreaterOrEqual(t, tm.QueueWait(), 20*time.Millisecond)
	assert.Equal(t, tm.QueueWait()+tm.RoundTrip(), tm.Total())
	assert.Less(t, first.Timing().QueueWait(), tm.QueueWait())
}

// A worker that takes one request right after another starts it at the instant the previous one
// ended, without reading the clock again: the timings stay in order, request after request, and
// none starts before it was queued, though it be queued after the previous one ended.
func TestTimingThroughOneWorker(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1))
	var fs []*httpfutures.Future
	for range 200 {
		fs = append(fs, tr.StartRoundTrip(get(t, ts.URL)))
		if len(fs)%10 == 0 {
			_, err := fs[len(fs)-1].Result() // and the next are queued after it ended
			require.NoError(t, err)
		}
	}
	var previous httpfutures.Timing
	for i, f := range fs {
		_, err := f.Result()
		require.NoError(t, err)
		tm := f.Timing()
		assert.False(t, tm.Started.Before(tm.Queued), "request %d started before it was queued", i)
		assert.False(t, tm.Finished.Before(tm.Started), "request %d finished before it started", i)
		assert.False(t, tm.Started.Before(previous.Finished), "request %d started before the one before it ended", i)
		previous = tm
	}
}

// A request queued after its worker's previous one ended, and taken without waiting, starts no
// earlier than it was queued, though the worker's last reading of the clock is older.
func TestTimingOfARequestQueuedAsTheWorkerEnds(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(ts.Close)
	tr := newTransport(t, nil)
	f := tr.RunAsTakenAfter(get(t, ts.URL), time.Millisecond)
	_, err := f.Result()
	require.NoError(t, err)
	tm := f.Timing()
	assert.False(t, tm.Started.Before(tm.Queued), "started %v before it was queued", tm.Queued.Sub(tm.Started))
	assert.False(t, tm.Finished.Before(tm.Started))
}

func TestOptionsPanicOnNegativeValues(t *testing.T) {
	tests := []struct {
		name string
		opt  func() httpfutures.Option
	}{
		{"WithWorkers", func() httpfutures.Option { return httpfutures.WithWorkers(-1) }},
		{"WithHostLimit", func() httpfutures.Option { return httpfutures.WithHostLimit(-1) }},
		{"WithQueueLimit", func() httpfutures.Option { return httpfutures.WithQueueLimit(-1) }},
		{"WithRateLimit", func() httpfutures.Option { return httpfutures.WithRateLimit(-1, 1) }},
		{"WithHostRateLimit", func() httpfutures.Option { return httpfutures.WithHostRateLimit(1, -1) }},
		{"WithMaxBodySize", func() httpfutures.Option { return httpfutures.WithMaxBodySize(-1) }},
		{"WithMaxRetryAfter", func() httpfutures.Option { return httpfutures.WithMaxRetryAfter(-time.Second) }},
		{"WithHostIdleTimeout", func() httpfutures.Option { return httpfutures.WithHostIdleTimeout(-time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				v := recover()
				require.NotNil(t, v, "a negative value must panic")
				assert.True(t, strings.HasPrefix(fmt.Sprint(v), "httpfutures: "+tt.name), "the panic names the option: %v", v)
			}()
			tt.opt()
		})
	}
	t.Run("scheduler options beside WithScheduler", func(t *testing.T) {
		s := httpfutures.NewScheduler()
		defer s.Close()
		assert.PanicsWithValue(t,
			"httpfutures: WithWorkers cannot be combined with WithScheduler: configure the shared Scheduler instead",
			func() { httpfutures.NewTransport(nil, httpfutures.WithScheduler(s), httpfutures.WithWorkers(2)) })
	})
}

func TestZeroOptionsMeanDefaults(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(0), httpfutures.WithMaxBodySize(0), httpfutures.WithRateLimit(0, 0))
	for range 9 {
		tr.StartRoundTrip(get(t, ts.URL))
	}
	for range 8 {
		<-g.arrived
	}
	require.Eventually(t, func() bool { return tr.Stats().Queued == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 8, tr.Stats().InFlight, "8 workers by default")
	g.open()
}

func TestIdlePoolIsSizedToTheWorkers(t *testing.T) {
	fanout := func(next http.RoundTripper) int32 {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		conns := connCounter(ts)
		ts.Start()
		defer ts.Close()
		tr := httpfutures.NewTransport(next, httpfutures.WithWorkers(8))
		defer tr.Close()
		for range 20 {
			fs := make([]*httpfutures.Future, 64)
			for i := range fs {
				fs[i] = tr.StartRoundTrip(get(t, ts.URL))
			}
			require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
		}
		return conns.Load()
	}
	ours := fanout(nil)
	plain := fanout(http.DefaultTransport.(*http.Transport).Clone()) // two idle connections per host
	assert.LessOrEqual(t, ours, int32(16), "connections are kept idle and reused, not churned")
	assert.Greater(t, plain, 2*ours, "the default pool churns under the same fan-out")
}

// TestSlowServerDoesNotBlockOthers checks that a request stalled by a server keeps only its own slot.
func TestSlowServerDoesNotBlockOthers(t *testing.T) {
	slow, g := newGateServer(t)
	fast := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(2))
	stuck := tr.StartRoundTrip(get(t, slow.URL))
	<-g.arrived
	for range 20 {
		_, err := tr.StartRoundTrip(get(t, fast.URL)).Result()
		require.NoError(t, err)
	}
	g.open()
	_, err := stuck.Result()
	require.NoError(t, err)
}

// One policy for an option given where it does not apply: a constructor ignores the options it
// does not configure, and a Scheduler's option beside WithScheduler, which would disagree with
// the shared Scheduler, panics naming it.
func TestOptionsWhereTheyDoNotApply(t *testing.T) {
	ts := newEchoServer(t)
	hooked := false
	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(2),
		httpfutures.WithHooks(httpfutures.Hooks{Request: func(*http.Request) { hooked = true }}),
		httpfutures.WithClient(&http.Client{Timeout: time.Nanosecond}))
	t.Cleanup(func() { sched.Close() })
	tr := newTransport(t, nil, httpfutures.WithScheduler(sched), httpfutures.WithClient(&http.Client{Timeout: time.Nanosecond}))
	resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
	require.NoError(t, err, "the clients' Timeout of a nanosecond was ignored by both")
	assert.Equal(t, "GET /", body(t, resp))
	assert.False(t, hooked, "a transport's hooks given to NewScheduler were ignored")

	for _, opt := range []struct {
		name string
		opt  httpfutures.Option
	}{
		{"WithWorkers", httpfutures.WithWorkers(3)},
		{"WithRateLimit", httpfutures.WithRateLimit(10, 1)},
		{"WithObserver", httpfutures.WithObserver(httpfutures.Observer{})},
		{"WithWorkerIdleTimeout", httpfutures.WithWorkerIdleTimeout(time.Second)},
		{"WithLimitChanged", httpfutures.WithLimitChanged(func(httpfutures.LimitChange) {})},
		{"WithCircuitBreaker", httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{})},
		{"WithAdaptiveThrottle", httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{})},
	} {
		assert.PanicsWithValue(t, "httpfutures: "+opt.name+" cannot be combined with WithScheduler: configure the shared Scheduler instead",
			func() { httpfutures.NewTransport(nil, httpfutures.WithScheduler(sched), opt.opt) })
	}
}
