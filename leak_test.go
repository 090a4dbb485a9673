package httpfutures_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// What a caller that leaks meets: a library that drops response bodies unread and unclosed, or
// builds a transport per call and never closes it.

// newBodyServer starts a server whose responses are larger than a socket buffer, so that a body
// left unread holds its connection.
func newBodyServer(t testing.TB) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":"`+strings.Repeat("x", 256<<10)+`"}`)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// getWith sends a GET of url through client under ctx.
func getWith(t testing.TB, ctx context.Context, client *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	return client.Do(req)
}

// A streamed body whose request's context ends gives its slots back at once, and is closed: as
// net/http frees a connection of a MaxConnsPerHost of 1 when the first request's context ends,
// the next request here goes, however many slots the leaked bodies held.
func TestBodyOfAnEndedRequestGivesBackItsSlots(t *testing.T) {
	ts := newBodyServer(t)
	for _, tc := range []struct {
		name   string
		leaked int
		opts   []httpfutures.Option
	}{
		{"1 worker", 1, []httpfutures.Option{httpfutures.WithWorkers(1)}},
		{"2 workers", 2, []httpfutures.Option{httpfutures.WithWorkers(2)}},
		{"8 workers", 8, nil},
		{"host limit 1 of 8 workers", 1, []httpfutures.Option{httpfutures.WithHostLimit(1)}},
		{"host limit 3 of 4 workers", 3, []httpfutures.Option{httpfutures.WithWorkers(4), httpfutures.WithHostLimit(3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTransport(t, nil, tc.opts...)
			client := &http.Client{Transport: tr}
			var leaked []*http.Response
			var cancels []context.CancelFunc
			for range tc.leaked {
				ctx, cancel := context.WithCancel(context.Background())
				resp, err := getWith(t, ctx, client, ts.URL)
				require.NoError(t, err)
				leaked, cancels = append(leaked, resp), append(cancels, cancel)
			}
			st := tr.Stats()
			assert.Equal(t, tc.leaked, st.Bodies, "the transport shows the slots its open bodies hold")
			assert.Equal(t, tc.leaked, tr.Scheduler().Stats().Bodies)
			assert.Zero(t, st.InFlight, "a request whose body streams has resolved")
			for _, cancel := range cancels {
				cancel()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := getWith(t, ctx, client, ts.URL)
			require.NoError(t, err, "the slots of the ended requests' bodies came back")
			assert.Contains(t, body(t, resp), `{"items":"xxx`)
			for _, resp := range leaked {
				_, err := io.ReadAll(resp.Body)
				assert.Error(t, err, "the body of an ended request is closed")
				assert.NoError(t, resp.Body.Close(), "closing it again is harmless")
			}
			require.Eventually(t, func() bool { return tr.Stats().Bodies == 0 }, 5*time.Second, time.Millisecond)
			assert.Zero(t, tr.Stats().LeakedBodies, "closed when their context ended: not leaked")
		})
	}
}

// A streamed body that becomes garbage unclosed gives its slots back when the collector finds it,
// and is counted as leaked; its connection is closed. So on every path a streamed response
// takes: RoundTrip under a context that never ends or one that may, a Session's own requests and
// those given to Do, over HTTP/1 and HTTP/2.
func TestLeakedBodyIsCollected(t *testing.T) {
	h1 := newBodyServer(t)
	h2 := httptest.NewUnstartedServer(h1.Config.Handler)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	live, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	viaClient := func(ctx context.Context) func(*httpfutures.AsyncTransport) func(testing.TB, string) *http.Response {
		return func(tr *httpfutures.AsyncTransport) func(testing.TB, string) *http.Response {
			return func(t testing.TB, url string) *http.Response {
				resp, err := getWith(t, ctx, &http.Client{Transport: tr}, url)
				require.NoError(t, err)
				return resp
			}
		}
	}
	for _, srv := range []*httptest.Server{h1, h2} {
		proto := "HTTP/1.1"
		if srv == h2 {
			proto = "HTTP/2.0"
		}
		for _, workers := range []int{1, 2, 8} {
			for _, p := range []struct {
				name string
				send func(t testing.TB, opts ...httpfutures.Option) (func(testing.TB, string) *http.Response, *httpfutures.AsyncTransport)
			}{
				{"RoundTrip", func(t testing.TB, opts ...httpfutures.Option) (func(testing.TB, string) *http.Response, *httpfutures.AsyncTransport) {
					tr := newTransport(t, srv.Client().Transport, opts...)
					return viaClient(context.Background())(tr), tr
				}},
				{"RoundTrip, a context that may end", func(t testing.TB, opts ...httpfutures.Option) (func(testing.TB, string) *http.Response, *httpfutures.AsyncTransport) {
					tr := newTransport(t, srv.Client().Transport, opts...)
					return viaClient(live)(tr), tr
				}},
				{"Session.Get, streaming", func(t testing.TB, opts ...httpfutures.Option) (func(testing.TB, string) *http.Response, *httpfutures.AsyncTransport) {
					s := newSession(t, append(opts, httpfutures.WithClient(srv.Client()), httpfutures.WithStreaming(true))...)
					return func(t testing.TB, url string) *http.Response {
						resp, err := s.Get(url).Result()
						require.NoError(t, err)
						return resp
					}, s.Transport()
				}},
				{"Session.Do, streaming, a context that may end", func(t testing.TB, opts ...httpfutures.Option) (func(testing.TB, string) *http.Response, *httpfutures.AsyncTransport) {
					s := newSession(t, append(opts, httpfutures.WithClient(srv.Client()), httpfutures.WithStreaming(true))...)
					return func(t testing.TB, url string) *http.Response {
						req, err := http.NewRequestWithContext(live, http.MethodGet, url, nil)
						require.NoError(t, err)
						resp, err := s.Do(req).Result()
						require.NoError(t, err)
						return resp
					}, s.Transport()
				}},
			} {
				t.Run(fmt.Sprintf("%s, %s, %d workers", proto, p.name, workers), func(t *testing.T) {
					send, tr := p.send(t, httpfutures.WithWorkers(workers))
					func() {
						for range workers {
							resp := send(t, srv.URL)
							require.Equal(t, proto, resp.Proto)
						}
					}()
					st := tr.Stats()
					require.Equal(t, uint64(workers), uint64(st.Bodies)+st.LeakedBodies,
						"every slot is held by a body no one holds, or was given back by a collection since")
					// A worker may still hold the last Future as the collector runs: it collects again.
					require.Eventually(t, func() bool {
						runtime.GC()
						return tr.Stats().Bodies == 0
					}, 5*time.Second, 10*time.Millisecond)
					assert.Equal(t, uint64(workers), tr.Stats().LeakedBodies)
					assert.Equal(t, uint64(workers), tr.Scheduler().Stats().LeakedBodies)
					resp := send(t, srv.URL)
					assert.Contains(t, body(t, resp), `{"items":"xxx`)
				})
			}
		}
	}
}

// A streamed response's trailers show once its body is read, though the response handed on is a
// copy of the one the RoundTripper made: declared in a Trailer header, or not.
func TestStreamedResponseTrailers(t *testing.T) {
	for _, declare := range []bool{false, true} {
		t.Run(fmt.Sprintf("declared %v", declare), func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if declare {
					w.Header().Set("Trailer", "Declared")
				}
				io.WriteString(w, "body")
				w.(http.Flusher).Flush()
				w.Header().Set("Declared", "d")
				w.Header().Set(http.TrailerPrefix+"Undeclared", "u")
			}))
			t.Cleanup(ts.Close)
			tr := newTransport(t, nil)
			resp, err := (&http.Client{Transport: tr}).Get(ts.URL)
			require.NoError(t, err)
			assert.Equal(t, "body", body(t, resp))
			if declare {
				assert.Equal(t, "d", resp.Trailer.Get("Declared"))
			}
			assert.Equal(t, "u", resp.Trailer.Get("Undeclared"))
		})
	}
}

// leak sends n GETs of url and drops their responses unread and unclosed, as a client library
// that decodes nothing for a 2xx does.
func leak(t testing.TB, client *http.Client, url string, n int) {
	t.Helper()
	for range n {
		resp, err := client.Get(url)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
}

// A library that drops every body is not deadlocked for good once the bodies fill every slot:
// requests that wait on slots held only by bodies make the Scheduler ask for a collection, which
// gives the slots of the garbage ones back.
func TestDroppedBodiesDoNotDeadlock(t *testing.T) {
	ts := newBodyServer(t)
	for _, workers := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			tr := newTransport(t, nil, httpfutures.WithWorkers(workers))
			client := &http.Client{Transport: tr}
			done := make(chan struct{})
			go func() {
				defer close(done)
				leak(t, client, ts.URL, 3*workers)
			}()
			start := time.Now()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("3x%d requests whose bodies are dropped still wait after 30 s: %+v", workers, tr.Stats())
			}
			t.Logf("3x%d requests, each body dropped: %v", workers, time.Since(start))
			assert.GreaterOrEqual(t, tr.Stats().LeakedBodies, uint64(2*workers))
			collectAll(t, tr)
		})
	}
}

// collectAll collects the bodies tr's caller dropped, so that their connections end with the test.
func collectAll(t testing.TB, tr *httpfutures.AsyncTransport) {
	t.Helper()
	require.Eventually(t, func() bool {
		runtime.GC()
		return tr.Stats().Bodies == 0
	}, 5*time.Second, 10*time.Millisecond)
}

// An idle Scheduler keeps no goroutine: its workers and pacer end after WithWorkerIdleTimeout,
// and start again at the next request.
func TestIdleSchedulerKeepsNoGoroutine(t *testing.T) {
	ts := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkerIdleTimeout(100*time.Millisecond))
	assert.Zero(t, tr.Stats().Goroutines, "none before the first request")
	for round := range 3 {
		resp, err := tr.StartRoundTrip(get(t, fmt.Sprintf("%s/%d", ts.URL, round))).Result()
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("GET /%d", round), body(t, resp))
		assert.Equal(t, httpfutures.DefaultWorkers+1, tr.Stats().Goroutines, "the workers and the pacer run")
		require.Eventually(t, func() bool { return tr.Stats().Goroutines == 0 }, 5*time.Second, 5*time.Millisecond,
			"round %d: the goroutines end once idle", round)
	}
	assert.Equal(t, uint64(3), tr.Stats().Completed)
}

// Streamed bodies held open keep their slots, not the goroutines: with every slot held by a body,
// 1 to 8 workers, the Scheduler is idle and its goroutines end; the bodies closed, the slots are
// back, and the next requests run on goroutines started again.
func TestIdleWithBodiesOpen(t *testing.T) {
	ts := newBodyServer(t)
	for _, workers := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			tr := newTransport(t, nil, httpfutures.WithWorkers(workers), httpfutures.WithWorkerIdleTimeout(50*time.Millisecond))
			client := &http.Client{Transport: tr}
			var open []*http.Response
			for range workers {
				resp, err := client.Get(ts.URL)
				require.NoError(t, err)
				open = append(open, resp)
			}
			assert.Equal(t, workers, tr.Stats().Bodies)
			require.Eventually(t, func() bool { return tr.Stats().Goroutines == 0 }, 5*time.Second, 5*time.Millisecond,
				"every slot held by a body: nothing for the goroutines to do")
			for _, resp := range open {
				assert.Contains(t, body(t, resp), `{"items":"xxx`)
			}
			st := tr.Stats()
			assert.Zero(t, st.Bodies)
			assert.Zero(t, st.InFlight)
			for range 2 * workers {
				resp, err := client.Get(ts.URL)
				require.NoError(t, err, "the slots came back")
				body(t, resp)
			}
			require.Eventually(t, func() bool { return tr.Stats().Goroutines == 0 }, 5*time.Second, 5*time.Millisecond)
		})
	}
}

// The idle period counts from when the Scheduler last had something to do, and a request that
// waits in the queue is something to do, however it leaves it. With every slot held by an open
// body (1, 2 and 8 workers), one more request waits 8 s and leaves the queue unsent (its
// context canceled, its Future canceled, or its deadline passed): the goroutines stay for the
// whole idle period after that, and end once it is over. (Counted from when that request was
// queued, they ended 2 s after it left.)
func TestIdlePeriodCountsFromTheQueueLeftEmpty(t *testing.T) {
	const idle, wait = 10 * time.Second, 8 * time.Second
	leaves := []struct {
		name  string
		start func(tr *httpfutures.AsyncTransport, req *http.Request) (f *httpfutures.Future, leave func())
		err   error
	}{
		{"its context canceled", func(tr *httpfutures.AsyncTransport, req *http.Request) (*httpfutures.Future, func()) {
			ctx, cancel := context.WithCancel(req.Context())
			return tr.StartRoundTrip(req.WithContext(ctx)), cancel
		}, context.Canceled},
		{"its Future canceled", func(tr *httpfutures.AsyncTransport, req *http.Request) (*httpfutures.Future, func()) {
			f := tr.StartRoundTrip(req)
			return f, func() { f.Cancel() }
		}, context.Canceled},
		{"its deadline passed", func(tr *httpfutures.AsyncTransport, req *http.Request) (*httpfutures.Future, func()) {
			ctx, cancel := context.WithTimeout(req.Context(), wait)
			t.Cleanup(cancel)
			return tr.StartRoundTrip(req.WithContext(ctx)), func() {}
		}, context.DeadlineExceeded},
	}
	for _, workers := range []int{1, 2, 8} {
		for _, leave := range leaves {
			t.Run(fmt.Sprintf("%d workers, %s", workers, leave.name), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					open := roundTripFunc(func(req *http.Request) (*http.Response, error) {
						return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("body")), Request: req}, nil
					})
					tr := httpfutures.NewTransport(open, httpfutures.WithWorkers(workers), httpfutures.WithWorkerIdleTimeout(idle))
					defer tr.Close()
					var held []*http.Response
					for range workers {
						resp, err := tr.RoundTrip(get(t, "http://h.test/held"))
						require.NoError(t, err)
						held = append(held, resp)
					}
					f, leaveQueue := leave.start(tr, get(t, "http://h.test/waiting"))
					time.Sleep(wait - time.Millisecond)
					synctest.Wait()
					assert.Equal(t, 1, tr.Stats().Queued, "the request waits for a slot that a body holds")
					time.Sleep(time.Millisecond)
					leaveQueue()
					_, err := f.Result()
					require.ErrorIs(t, err, leave.err)

					time.Sleep(idle - time.Millisecond)
					synctest.Wait()
					assert.Equal(t, workers+1, tr.Stats().Goroutines, "%v after the queue emptied, the workers and the pacer still run", idle-time.Millisecond)
					time.Sleep(time.Millisecond)
					synctest.Wait()
					assert.Zero(t, tr.Stats().Goroutines, "%v after the queue emptied, they ended", idle)

					for _, resp := range held {
						assert.Equal(t, "body", body(t, resp))
					}
					assert.Zero(t, tr.Stats().LeakedBodies)
				})
			})
		}
	}
}

// A Scheduler shared by transports keeps no goroutine once idle either, and is closed as usual.
func TestIdleSharedScheduler(t *testing.T) {
	ts := newEchoServer(t)
	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(3), httpfutures.WithWorkerIdleTimeout(50*time.Millisecond))
	a := newTransport(t, nil, httpfutures.WithScheduler(sched))
	b := newTransport(t, nil, httpfutures.WithScheduler(sched))
	fs := []*httpfutures.Future{a.StartRoundTrip(get(t, ts.URL)), b.StartRoundTrip(get(t, ts.URL))}
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	require.Eventually(t, func() bool { return sched.Stats().Goroutines == 0 }, 5*time.Second, 5*time.Millisecond)
	resp, err := b.StartRoundTrip(get(t, ts.URL+"/again")).Result()
	require.NoError(t, err)
	assert.Equal(t, "GET /again", body(t, resp))
	assert.Equal(t, 4, a.Stats().Goroutines, "started again, as the transports share them")
	require.NoError(t, sched.Close())
	assert.Zero(t, sched.Stats().Goroutines)
}

// schedulerGoroutines counts the goroutines of this package's Schedulers in the process, as a
// stack dump shows them: workers and pacers.
func schedulerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "httpfutures.(*Scheduler).worker") || strings.Contains(g, "httpfutures.(*Scheduler).pace") {
			count++
		}
	}
	return count
}

// Transports made per call and never closed, as a library that builds a client for each token
// fetch makes them, keep no goroutine once the idle period has passed. (Goroutines of other
// Schedulers in the process may end meanwhile, never start: the count can only fall.)
func TestForgottenTransportsKeepNoGoroutine(t *testing.T) {
	ts := newEchoServer(t)
	before := schedulerGoroutines()
	for i := range 100 {
		tr := httpfutures.NewTransport(nil, httpfutures.WithWorkerIdleTimeout(200*time.Millisecond))
		resp, err := (&http.Client{Transport: tr}).Get(fmt.Sprintf("%s/%d", ts.URL, i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("GET /%d", i), body(t, resp))
		assert.Equal(t, httpfutures.DefaultWorkers+1, tr.Stats().Goroutines, "transport %d runs its goroutines", i)
	}
	require.Eventually(t, func() bool { return schedulerGoroutines() <= before }, 10*time.Second, 10*time.Millisecond,
		"100 forgotten transports keep no goroutine after their idle period")
}

// The default idle period is at most 10 s: a transport used in a testing/synctest bubble and
// never closed lets the bubble end, its goroutines gone by the end of the period.
func TestForgottenTransportInABubble(t *testing.T) {
	assert.LessOrEqual(t, httpfutures.DefaultWorkerIdleTimeout, 10*time.Second)
	synctest.Test(t, func(t *testing.T) {
		tr := httpfutures.NewTransport(noopTransport{})
		s := httpfutures.NewSession(httpfutures.WithClient(&http.Client{Transport: noopTransport{}}))
		_, err := tr.StartRoundTrip(get(t, "http://h.test/")).Result()
		require.NoError(t, err)
		_, err = s.Get("http://h.test/").Result()
		require.NoError(t, err)
		assert.Positive(t, tr.Stats().Goroutines)
		time.Sleep(httpfutures.DefaultWorkerIdleTimeout)
		synctest.Wait()
		assert.Zero(t, tr.Stats().Goroutines, "the transport's goroutines ended after the idle period")
		assert.Zero(t, s.Stats().Goroutines, "the Session's too")
		// The bubble ends only once every goroutine in it has: none is left blocked for ever.
	})
}
