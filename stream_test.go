package httpfutures_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// A streamer is Stream or StreamOrdered of an AsyncTransport or a Session, with the Stats of the
// transport it runs on.
type streamer struct {
	stream func(ctx context.Context, reqs iter.Seq[*http.Request], window int) iter.Seq[*httpfutures.Future]
	stats  func() httpfutures.Stats
}

// streamers returns the four ways to stream, each on a transport or Session of its own made with
// opts, closed when the test ends.
func streamers(t *testing.T, opts ...httpfutures.Option) map[string]func() streamer {
	return map[string]func() streamer{
		"transport": func() streamer {
			tr := newTransport(t, nil, opts...)
			return streamer{tr.Stream, tr.Stats}
		},
		"transport/ordered": func() streamer {
			tr := newTransport(t, nil, opts...)
			return streamer{tr.StreamOrdered, tr.Stats}
		},
		"session": func() streamer {
			s := newSession(t, opts...)
			return streamer{s.Stream, s.Transport().Stats}
		},
		"session/ordered": func() streamer {
			s := newSession(t, opts...)
			return streamer{s.StreamOrdered, s.Transport().Stats}
		},
	}
}

// pulled counts the requests an iterator has yielded, and the greatest number pulled and not yet
// seen by the loop.
type pulled struct {
	n, seen, most int
}

// requests yields GETs of base/0, base/1... up to n, counting them in p.
func (p *pulled) requests(t *testing.T, base string, n int) iter.Seq[*http.Request] {
	return func(yield func(*http.Request) bool) {
		for i := range n {
			p.n++
			p.most = max(p.most, p.n-p.seen)
			if !yield(get(t, base+"/"+strconv.Itoa(i))) {
				return
			}
		}
	}
}

// concurrencyServer answers each request after a millisecond with its path, and records how many
// it served at most at once.
type concurrencyServer struct {
	*httptest.Server
	now, most atomic.Int64
}

func newConcurrencyServer(t *testing.T) *concurrencyServer {
	s := &concurrencyServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.now.Add(1)
		defer s.now.Add(-1)
		for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
		}
		time.Sleep(time.Millisecond) // the server's latency, so that requests overlap
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

// newHangServer starts a server that answers /0 at once with its path, and holds every other
// request until the client gives up on it.
func newHangServer(t *testing.T) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/0" {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestStreamYieldsEachRequestOnceWithinTheWindow(t *testing.T) {
	for _, window := range []int{1, 3, 0} {
		for name, newStreamer := range streamers(t, httpfutures.WithWorkers(2)) {
			t.Run(fmt.Sprintf("%s/window=%d", name, window), func(t *testing.T) {
				ts := newConcurrencyServer(t)
				st := newStreamer()
				want := window
				if window == 0 {
					want = 4 // twice the workers
				}
				const n = 200
				var p pulled
				got := make(map[string]int)
				for f := range st.stream(context.Background(), p.requests(t, ts.URL, n), window) {
					p.seen++
					resp, err := f.Result()
					require.NoError(t, err)
					got[body(t, resp)]++
				}
				assert.Equal(t, n, p.n)
				assert.Len(t, got, n)
				for path, times := range got {
					assert.Equal(t, 1, times, path)
				}
				assert.Equal(t, want, p.most, "pulled and not yet yielded, at most")
				assert.LessOrEqual(t, ts.most.Load(), int64(min(want, 2)), "served at once, at most")
				stats := st.stats() // InFlight may lag: a worker leaves it once the Future resolved
				assert.Equal(t, [3]uint64{n, 0, 0}, [3]uint64{stats.Completed, stats.Failed, stats.Canceled})
			})
		}
	}
}

func TestStreamWindowBeyondTheWorkers(t *testing.T) {
	ts := newConcurrencyServer(t)
	s := newSession(t, httpfutures.WithWorkers(8))
	var p pulled
	for f := range s.Stream(context.Background(), p.requests(t, ts.URL, 200), 3) {
		p.seen++
		_, err := f.Result()
		require.NoError(t, err)
	}
	assert.Equal(t, 3, p.most)
	assert.Equal(t, int64(3), ts.most.Load(), "the window, not the 8 workers, bounds the requests served at once")
}

func TestStreamBreakCancelsWhatIsOutstanding(t *testing.T) {
	for name, newStreamer := range streamers(t, httpfutures.WithWorkers(4)) {
		t.Run(name, func(t *testing.T) {
			ts := newHangServer(t)
			st := newStreamer()
			var p pulled
			yielded, atBreak := 0, 0
			for f := range st.stream(context.Background(), p.requests(t, ts.URL, 100), 8) {
				yielded++
				_, err := f.Result()
				require.NoError(t, err)
				atBreak = p.n
				break
			}
			assert.Equal(t, 1, yielded)
			assert.Equal(t, atBreak, p.n, "no request pulled after the break")
			assert.LessOrEqual(t, p.n, 8, "no request pulled beyond the window")
			stats := st.stats()
			// Stats count a Future before it resolves: once Stream returns, every request pulled
			// but /0 has resolved canceled.
			assert.Equal(t, uint64(1), stats.Completed)
			assert.Equal(t, uint64(p.n-1), stats.Canceled, "every request pulled but /0, resolved before Stream returned")
		})
	}
}

func TestStreamContextEndCancelsWhatIsOutstanding(t *testing.T) {
	for name, newStreamer := range streamers(t, httpfutures.WithWorkers(4)) {
		t.Run(name, func(t *testing.T) {
			ts := newHangServer(t)
			st := newStreamer()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var p pulled
			var ok, canceled, atCancel int
			for f := range st.stream(ctx, p.requests(t, ts.URL, 100), 8) {
				p.seen++
				resp, err := f.Result()
				if err == nil {
					assert.Equal(t, "/0", body(t, resp))
					ok++
					atCancel = p.n
					cancel() // the others hang: only the end of ctx stops them
					continue
				}
				require.ErrorIs(t, err, context.Canceled)
				canceled++
			}
			assert.Equal(t, 1, ok)
			assert.Equal(t, atCancel, p.n, "no request pulled once ctx ended")
			assert.Equal(t, p.n-1, canceled, "each request pulled is yielded, canceled")
			assert.LessOrEqual(t, p.n, 8, "no request pulled beyond the window")
			assert.Equal(t, uint64(p.n-1), st.stats().Canceled)
		})
	}
}

func TestStreamEndedContextPullsNothing(t *testing.T) {
	for name, newStreamer := range streamers(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var p pulled
			for range newStreamer().stream(ctx, p.requests(t, "http://127.0.0.1:1", 10), 0) {
				t.Fatal("yielded a Future with ctx ended")
			}
			assert.Equal(t, 0, p.n)
		})
	}
}

func TestStreamFailedRequests(t *testing.T) {
	ts := newEchoServer(t)
	refused := refusedURL(t)
	urls := []string{ts.URL + "/ok", "http://[::1", refused, "/no-host", ts.URL + "/also-ok"}
	for name, newStreamer := range streamers(t) {
		t.Run(name, func(t *testing.T) {
			reqs := func(yield func(*http.Request) bool) {
				for req := range httpfutures.GetRequests(slices.Values(urls)) {
					if !yield(req) {
						return
					}
				}
				yield(nil)
			}
			var ok []string
			var errs []error
			for f := range newStreamer().stream(context.Background(), reqs, 2) {
				resp, err := f.Result()
				if err != nil {
					errs = append(errs, err)
					continue
				}
				ok = append(ok, body(t, resp))
			}
			assert.ElementsMatch(t, []string{"GET /ok", "GET /also-ok"}, ok)
			require.Len(t, errs, 4)
			var invalid, badURL int
			for _, err := range errs {
				if errors.Is(err, httpfutures.ErrInvalidRequest) {
					invalid++
				}
				if ue, ok := errors.AsType[*url.Error](err); ok && ue.URL == "http://[::1" {
					badURL++
				}
			}
			assert.Equal(t, 3, invalid, "the bad URL, the URL without a host, and nil")
			assert.Equal(t, 1, badURL, "the bad URL's error names it")
		})
	}
}

func TestGetRequests(t *testing.T) {
	var reqs []*http.Request
	for req := range httpfutures.GetRequests(slices.Values([]string{"http://a.test/x", "http://[::1", "http://b.test/y"})) {
		reqs = append(reqs, req)
	}
	require.Len(t, reqs, 3)
	assert.Equal(t, http.MethodGet, reqs[0].Method)
	assert.Equal(t, "http://a.test/x", reqs[0].URL.String())
	assert.Nil(t, reqs[1].URL, "a URL that does not parse")
	assert.Equal(t, "http://b.test/y", reqs[2].URL.String())

	// Sent without Stream, the bad URL's request still fails as invalid.
	tr := newTransport(t, noopTransport{})
	_, err := tr.StartRoundTrip(reqs[1]).Result()
	require.ErrorIs(t, err, httpfutures.ErrInvalidRequest)

	n := 0
	for range httpfutures.GetRequests(slices.Values([]string{"http://a.test/", "http://b.test/"})) {
		n++
		break
	}
	assert.Equal(t, 1, n)
}

func TestStreamPanicInIteratorIsTheCallers(t *testing.T) {
	for name, newStreamer := range streamers(t, httpfutures.WithWorkers(4)) {
		t.Run(name, func(t *testing.T) {
			ts := newHangServer(t)
			st := newStreamer()
			reqs := func(yield func(*http.Request) bool) {
				for i := range 3 {
					if !yield(get(t, ts.URL+"/hang/"+strconv.Itoa(i))) {
						return
					}
				}
				panic("iterator broke")
			}
			assert.PanicsWithValue(t, "iterator broke", func() {
				for range st.stream(context.Background(), reqs, 8) {
					t.Error("yielded a request that hangs")
				}
			})
			assert.Equal(t, uint64(3), st.stats().Canceled, "the panic went on only once the requests outstanding resolved")
		})
	}
}

func TestStreamPanicInLoopBodyCancelsWhatIsOutstanding(t *testing.T) {
	ts := newHangServer(t)
	s := newSession(t, httpfutures.WithWorkers(4))
	var p pulled
	assert.PanicsWithValue(t, "body broke", func() {
		for range s.Stream(context.Background(), p.requests(t, ts.URL, 100), 4) {
			panic("body broke")
		}
	})
	assert.Equal(t, uint64(p.n-1), s.Transport().Stats().Canceled, "the panic went on only once the requests outstanding resolved")
}

func TestStreamNegativeWindowPanics(t *testing.T) {
	tr := newTransport(t, noopTransport{})
	assert.PanicsWithValue(t, "httpfutures: negative stream window -1", func() {
		tr.Stream(context.Background(), nil, -1)
	})
}

func TestStreamNilIteratorYieldsNothing(t *testing.T) {
	tr := newTransport(t, noopTransport{})
	for range tr.Stream(context.Background(), nil, 0) {
		t.Fatal("yielded from a nil iterator")
	}
}

// orderServer holds each request to /N until release(N), and reports each arrival.
type orderServer struct {
	*httptest.Server
	arrived  chan struct{}
	answered chan struct{}
	gates    []chan struct{}
}

func newOrderServer(t *testing.T, n int) *orderServer {
	s := &orderServer{arrived: make(chan struct{}, n), answered: make(chan struct{}, n), gates: make([]chan struct{}, n)}
	for i := range s.gates {
		s.gates[i] = make(chan struct{})
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.URL.Path[1:])
		if err != nil || i < 0 || i >= n {
			http.NotFound(w, r)
			return
		}
		s.arrived <- struct{}{}
		select {
		case <-s.gates[i]:
		case <-r.Context().Done():
		}
		io.WriteString(w, r.URL.Path[1:])
		s.answered <- struct{}{}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *orderServer) release(i int) { close(s.gates[i]) }

// awaitAll waits until every request has arrived.
func (s *orderServer) awaitAll() {
	for range s.gates {
		<-s.arrived
	}
}

func TestStreamYieldsInCompletionOrder(t *testing.T) {
	const n = 5
	completion := []int{3, 1, 4, 0, 2}
	ts := newOrderServer(t, n)
	s := newSession(t, httpfutures.WithWorkers(n))
	// Once all have arrived, the server answers one, and the next each time the loop has seen the
	// one before: only one can resolve at a time, in this order.
	next := make(chan struct{})
	go func() {
		ts.awaitAll()
		for _, i := range completion {
			ts.release(i)
			if _, ok := <-next; !ok {
				return
			}
		}
	}()
	var p pulled
	var got []string
	for f := range s.Stream(context.Background(), p.requests(t, ts.URL, n), n) {
		resp, err := f.Result()
		require.NoError(t, err)
		got = append(got, body(t, resp))
		next <- struct{}{}
	}
	close(next)
	assert.Equal(t, []string{"3", "1", "4", "0", "2"}, got)
}

func TestStreamOrderedYieldsInPullOrder(t *testing.T) {
	const n = 5
	completion := []int{3, 1, 4, 0, 2}
	ts := newOrderServer(t, n)
	// Once all have arrived, the server answers the first in this order, and each of the others
	// once the response before it is in the worker about to resolve its Future.
	next := make(chan struct{}, n)
	var mu sync.Mutex
	var answered []string // in the order the workers got the responses
	s := newSession(t, httpfutures.WithWorkers(n), httpfutures.WithHooks(httpfutures.Hooks{
		Response: func(resp *http.Response) error {
			mu.Lock()
			answered = append(answered, resp.Request.URL.Path[1:])
			mu.Unlock()
			next <- struct{}{}
			return nil
		},
	}))
	go func() {
		ts.awaitAll()
		for _, i := range completion {
			ts.release(i)
			<-next
		}
	}()
	var p pulled
	var got []string
	for f := range s.StreamOrdered(context.Background(), p.requests(t, ts.URL, n), n) {
		resp, err := f.Result()
		require.NoError(t, err)
		got = append(got, body(t, resp))
	}
	assert.Equal(t, []string{"3", "1", "4", "0", "2"}, answered, "the responses came out of order")
	assert.Equal(t, []string{"0", "1", "2", "3", "4"}, got, "and were yielded in the order pulled")
}

func TestStreamJSON(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bad":
			io.WriteString(w, `{"n": "not a number"}`)
		case "/missing":
			http.NotFound(w, r)
		default:
			fmt.Fprintf(w, `{"n": %s}`, r.URL.Path[1:])
		}
	}))
	t.Cleanup(ts.Close)
	s := newSession(t)
	urls := []string{ts.URL + "/1", ts.URL + "/bad", ts.URL + "/2", ts.URL + "/missing", "http://[::1"}
	type item struct{ N int }
	got := make(map[string]int)
	errs := make(map[string]error)
	for f := range httpfutures.StreamJSON[item](context.Background(), s, httpfutures.GetRequests(slices.Values(urls)), 0) {
		v, err := f.Value()
		name := "bad URL"
		if req := f.Request(); req.URL != nil {
			name = req.URL.Path
		}
		if err != nil {
			errs[name] = err
			continue
		}
		got[name] = v.N
	}
	assert.Equal(t, map[string]int{"/1": 1, "/2": 2}, got)
	require.Len(t, errs, 3)
	var syntax *json.UnmarshalTypeError
	assert.ErrorAs(t, errs["/bad"], &syntax)
	var status *httpfutures.StatusError
	require.ErrorAs(t, errs["/missing"], &status)
	assert.Equal(t, http.StatusNotFound, status.StatusCode)
	assert.ErrorIs(t, errs["bad URL"], httpfutures.ErrInvalidRequest)
}

// TestStreamMemoryIsBoundedByTheWindow streams a million requests (fewer under the race
// detector, which is ten times slower) from an iterator that makes them as they are pulled: the
// heap in use, measured after a collection, stays flat.
func TestStreamMemoryIsBoundedByTheWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("streams many requests")
	}
	n := streamHeapRequests
	s := newSession(t, httpfutures.WithClient(&http.Client{Transport: noopTransport{}}))
	reqs := func(yield func(*http.Request) bool) {
		for i := range n {
			req, err := http.NewRequest(http.MethodGet, "http://stream.test/item/"+strconv.Itoa(i), nil)
			if err != nil {
				panic(err)
			}
			if !yield(req) {
				return
			}
		}
	}
	const samples = 10
	heap := make([]uint64, 0, samples)
	var m runtime.MemStats
	done := 0
	for f := range s.Stream(context.Background(), reqs, 0) {
		if _, err := f.Result(); err != nil {
			require.NoError(t, err)
		}
		done++
		if done%(n/samples) == 0 {
			runtime.GC()
			runtime.ReadMemStats(&m)
			heap = append(heap, m.HeapAlloc)
		}
	}
	require.Equal(t, n, done)
	require.Len(t, heap, samples)
	t.Logf("live heap after each tenth of %d requests, KiB: %v", n, kib(heap))
	// The first sample is taken once the pool, the transport and the host are set up: from
	// there, what a growing stream would keep (a Future is 192 bytes, its request several
	// hundred) would add megabytes at each sample.
	for i, h := range heap[1:] {
		assert.Less(t, int64(h)-int64(heap[0]), int64(256<<10), "sample %d grew from %d KiB to %d KiB", i+1, heap[0]>>10, h>>10)
	}
}

func kib(b []uint64) []uint64 {
	k := make([]uint64, len(b))
	for i, v := range b {
		k[i] = v >> 10
	}
	return k
}

func TestSessionStreamRunsRequestsThroughTheClient(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/from", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/to", http.StatusFound)
	})
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "to") })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	tests := []struct {
		name       string
		stream     func(ctx context.Context, reqs iter.Seq[*http.Request], window int) iter.Seq[*httpfutures.Future]
		wantStatus int
		wantPath   string
	}{
		{"session follows the redirect", newSession(t).Stream, http.StatusOK, "/to"},
		{"transport does not", newTransport(t, nil).Stream, http.StatusFound, "/from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			for f := range tt.stream(context.Background(), httpfutures.GetRequests(slices.Values([]string{ts.URL + "/from"})), 0) {
				n++
				resp, err := f.Result()
				require.NoError(t, err)
				assert.Equal(t, tt.wantStatus, resp.StatusCode)
				assert.Equal(t, tt.wantPath, resp.Request.URL.Path)
				resp.Body.Close()
			}
			assert.Equal(t, 1, n)
		})
	}
}

func TestStreamKeepsTheRequestsOwnContext(t *testing.T) {
	ts := newHangServer(t)
	for name, newStreamer := range streamers(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hang := get(t, ts.URL+"/hang").WithContext(ctx)
			reqs := slices.Values([]*http.Request{get(t, ts.URL+"/0"), hang})
			var errs []error
			for f := range newStreamer().stream(context.Background(), reqs, 0) {
				_, err := f.Result()
				errs = append(errs, err)
				cancel() // ends the hanging request's own context, not the stream's
			}
			require.Len(t, errs, 2)
			assert.NoError(t, errs[0], "/0 first")
			assert.ErrorIs(t, errs[1], context.Canceled)
		})
	}
}
