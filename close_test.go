package httpfutures_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// stalledServer accepts connections, reads the request, and never answers: a server without a
// timeout of its own. It reports each request read.
func stalledServer(t *testing.T) (url string, arrived <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := make(chan struct{}, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					ch <- struct{}{}
				}
				io.Copy(io.Discard, c) // until the client gives up
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String(), ch
}

// assertClosedRunning checks the error of a request that was running when its transport closed.
func assertClosedRunning(t *testing.T, f *httpfutures.Future) {
	t.Helper()
	resp, err := f.Result()
	assert.Nil(t, resp)
	require.ErrorIs(t, err, httpfutures.ErrClosed)
	require.ErrorIs(t, err, context.Canceled)
}

// Close stops at once: against a server that never answers, it returns within a second, the
// running requests fail with ErrClosed and context.Canceled, and the queued ones are never sent.
func TestCloseStopsRunningRequests(t *testing.T) {
	starts := []struct {
		name  string
		start func(s *httpfutures.Session, url string) *httpfutures.Future
	}{
		{"Session.Get", func(s *httpfutures.Session, url string) *httpfutures.Future { return s.Get(url) }},
		{"Session.Do with a context", func(s *httpfutures.Session, url string) *httpfutures.Future {
			ctx, cancel := context.WithCancel(context.Background())
			_ = cancel
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			return s.Do(req)
		}},
		{"StartRoundTrip", func(s *httpfutures.Session, url string) *httpfutures.Future {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			return s.Transport().StartRoundTrip(req)
		}},
	}
	for _, tt := range starts {
		t.Run(tt.name, func(t *testing.T) {
			url, arrived := stalledServer(t)
			s := httpfutures.NewSession(httpfutures.WithWorkers(2))
			running := []*httpfutures.Future{tt.start(s, url+"/1"), tt.start(s, url+"/2")}
			<-arrived
			<-arrived
			queued := tt.start(s, url+"/3")
			start := time.Now()
			require.NoError(t, s.Close())
			assert.Less(t, time.Since(start), time.Second, "Close does not wait for a stalled server")
			for _, f := range running {
				assertClosedRunning(t, f)
			}
			_, err := queued.Result()
			require.ErrorIs(t, err, httpfutures.ErrClosed)
			assert.NotErrorIs(t, err, context.Canceled, "a queued request was never sent")
			select {
			case <-arrived:
				t.Fatal("a queued request reached the server")
			default:
			}
			st := s.Stats()
			assert.Equal(t, uint64(3), st.Canceled)
			assert.Equal(t, 0, st.InFlight)
		})
	}
}

// A Scheduler's Close stops the requests of every transport it runs.
func TestSchedulerCloseStopsRunningRequests(t *testing.T) {
	url, arrived := stalledServer(t)
	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(2))
	a := httpfutures.NewTransport(nil, httpfutures.WithScheduler(sched))
	b := httpfutures.NewTransport(nil, httpfutures.WithScheduler(sched))
	fa := a.StartRoundTrip(get(t, url+"/a"))
	fb := b.StartRoundTrip(get(t, url+"/b"))
	<-arrived
	<-arrived
	start := time.Now()
	require.NoError(t, sched.Close())
	assert.Less(t, time.Since(start), time.Second)
	assertClosedRunning(t, fa)
	assertClosedRunning(t, fb)
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
}

// Closing one transport of a shared Scheduler stops its own requests, not the others'.
func TestCloseStopsOnlyItsOwnRequests(t *testing.T) {
	ts, g := newGateServer(t)
	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(2))
	t.Cleanup(func() { sched.Close() })
	a := httpfutures.NewTransport(nil, httpfutures.WithScheduler(sched))
	b := httpfutures.NewTransport(nil, httpfutures.WithScheduler(sched))
	t.Cleanup(func() { b.Close() })
	fa := a.StartRoundTrip(get(t, ts.URL+"/a"))
	fb := b.StartRoundTrip(get(t, ts.URL+"/b"))
	<-g.arrived
	<-g.arrived
	require.NoError(t, a.Close())
	assertClosedRunning(t, fa)
	g.open()
	resp, err := fb.Result()
	require.NoError(t, err)
	assert.Equal(t, "/b", body(t, resp))
}

// A streamed body handed to the caller before Close stays readable after it.
func TestCloseLeavesHandedBodiesReadable(t *testing.T) {
	for _, stop := range []string{"Close", "Shutdown"} {
		t.Run(stop, func(t *testing.T) {
			more := make(chan struct{})
			ts := newHeadThenTail(t, more)
			tr := httpfutures.NewTransport(nil, httpfutures.WithStreaming(true))
			resp, err := tr.StartRoundTrip(get(t, ts.URL)).Result()
			require.NoError(t, err)
			if stop == "Close" {
				require.NoError(t, tr.Close())
			} else {
				require.NoError(t, tr.Shutdown(context.Background()))
			}
			close(more)
			assert.Equal(t, "head tail", body(t, resp), "the body reads to its end after the transport stopped")
		})
	}
}

// Shutdown whose context ends does what Close does: the running requests are canceled with
// ErrClosed, the queued ones fail unsent, and it returns the context's error.
func TestShutdownWhoseContextEndsCloses(t *testing.T) {
	url, arrived := stalledServer(t)
	s := httpfutures.NewSession(httpfutures.WithWorkers(1))
	running := s.Get(url + "/1")
	<-arrived
	queued := s.Get(url + "/2")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.ErrorIs(t, s.Shutdown(ctx), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	assertClosedRunning(t, running)
	_, err := queued.Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed)
}

// A Response hook waiting on its request's context is reached by Cancel, Close and a Shutdown
// whose context ended.
func TestHooksSeeAContextTheLibraryEnds(t *testing.T) {
	ts := newEchoServer(t)
	stops := []struct {
		name string
		stop func(*httpfutures.Session, *httpfutures.Future)
		want []error
	}{
		{"Cancel", func(_ *httpfutures.Session, f *httpfutures.Future) { assert.True(t, f.Cancel()) }, []error{context.Canceled}},
		{"Close", func(s *httpfutures.Session, _ *httpfutures.Future) { require.NoError(t, s.Close()) },
			[]error{httpfutures.ErrClosed, context.Canceled}},
		{"Shutdown", func(s *httpfutures.Session, _ *httpfutures.Future) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, s.Shutdown(ctx), context.DeadlineExceeded)
		}, []error{httpfutures.ErrClosed, context.Canceled}},
	}
	starts := []struct {
		name  string
		start func(*httpfutures.Session) *httpfutures.Future
	}{
		{"Session.Get", func(s *httpfutures.Session) *httpfutures.Future { return s.Get(ts.URL) }},
		{"StartRoundTrip", func(s *httpfutures.Session) *httpfutures.Future {
			return s.Transport().StartRoundTrip(get(t, ts.URL))
		}},
		{"StartRoundTrip with a context", func(s *httpfutures.Session) *httpfutures.Future {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL, nil)
			require.NoError(t, err)
			return s.Transport().StartRoundTrip(req)
		}},
	}
	for _, stop := range stops {
		for _, st := range starts {
			t.Run(stop.name+"/"+st.name, func(t *testing.T) {
				entered := make(chan struct{})
				s := httpfutures.NewSession(httpfutures.WithHooks(httpfutures.Hooks{
					Response: func(resp *http.Response) error {
						close(entered)
						<-resp.Request.Context().Done()
						return resp.Request.Context().Err()
					},
				}))
				defer s.Close()
				f := st.start(s)
				<-entered
				stop.stop(s, f)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := f.Wait(ctx)
				require.NotErrorIs(t, err, context.DeadlineExceeded, "the hook was never told")
				for _, want := range stop.want {
					require.ErrorIs(t, err, want)
				}
			})
		}
	}
}

// Shutdown of a transport with nothing queued or running returns nil even when its context has
// ended already, as http.Server's does: the context did not end first.
func TestShutdownOfADrainedTransportWithAnEndedContext(t *testing.T) {
	ts := newEchoServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		tr := httpfutures.NewTransport(nil)
		req, err := http.NewRequest(http.MethodGet, ts.URL, nil)
		require.NoError(t, err)
		resp, err := tr.StartRoundTrip(req).Result()
		require.NoError(t, err)
		resp.Body.Close()
		// Every request has resolved; its worker may still be ending the attempt, which
		// Shutdown waits for rather than call it a request its context cut short.
		require.Zero(t, tr.Stats().InFlight)
		require.NoError(t, tr.Shutdown(ctx))
	}
}
