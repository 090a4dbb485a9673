package httpfutures_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

// Each benchmark measures the package beside its baseline, in one run:
//
//	go test -run '^$' -bench . -benchmem
//
// Compare ratios taken in the same run; absolute figures drift with the machine's load.

// noopTransport answers every request at once, without I/O: what remains is the cost of the
// layer above it.
type noopTransport struct{}

func (noopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// window is how many requests each benchmark keeps outstanding, as a fan-out does.
const window = 256

// inWindows starts b.N requests with start, window at a time, and waits for each window's
// results before it starts the next.
func inWindows(b *testing.B, start func() *httpfutures.Future) {
	fs := make([]*httpfutures.Future, 0, window)
	for i := 0; i < b.N; i++ {
		fs = append(fs, start())
		if len(fs) == window || i == b.N-1 {
			for _, f := range fs {
				if _, err := f.Result(); err != nil {
					b.Fatal(err)
				}
			}
			fs = fs[:0]
		}
	}
}

// BenchmarkOverhead is the cost of scheduling one request, on a RoundTripper that does nothing,
// against the plainest asynchronous baseline: a goroutine and a channel per request. That one
// cannot be stopped; beside it, the same with what stopping a request takes in net/http, which
// cancels a round trip only through its request's context: a context that can be canceled, and
// a copy of the request carrying it, as a Future of StartRoundTrip has.
//
// The new-request pair makes each request as it goes, as a fan-out over URLs does: a goroutine
// and a channel for http.NewRequest's request, against Session.Get, whose request is made with
// its Future as its context, so that it can be stopped with no copy.
func BenchmarkOverhead(b *testing.B) {
	const url = "http://noop.invalid/"
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	b.Run("goroutine+channel", func(b *testing.B) {
		b.ReportAllocs()
		goroutines(b, func() (*http.Request, context.CancelFunc) { return req, nil })
	})
	b.Run("goroutine+channel+cancel", func(b *testing.B) {
		b.ReportAllocs()
		goroutines(b, func() (*http.Request, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			return req.WithContext(ctx), cancel
		})
	})
	b.Run("httpfutures", func(b *testing.B) {
		b.ReportAllocs()
		tr := httpfutures.NewTransport(noopTransport{})
		defer tr.Close()
		inWindows(b, func() *httpfutures.Future { return tr.StartRoundTrip(req) })
	})
	b.Run("new-request/goroutine+channel", func(b *testing.B) {
		b.ReportAllocs()
		goroutines(b, func() (*http.Request, context.CancelFunc) {
			r, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				b.Fatal(err)
			}
			return r, nil
		})
	})
	b.Run("new-request/session", func(b *testing.B) {
		b.ReportAllocs()
		s := httpfutures.NewSession(httpfutures.WithClient(&http.Client{Transport: noopTransport{}}))
		defer s.Close()
		inWindows(b, func() *httpfutures.Future { return s.Get(url) })
	})
}

// goroutines runs b.N round trips on a RoundTripper that does nothing, each of a request from
// next in a goroutine of its own that hands its result back on a channel, window at a time. If
// next returns a cancel function, the goroutine calls it once the round trip is done, as a
// Future ends its context.
func goroutines(b *testing.B, next func() (*http.Request, context.CancelFunc)) {
	var rt noopTransport
	type result struct {
		resp *http.Response
		err  error
	}
	chans := make([]chan result, 0, window)
	for i := 0; i < b.N; i++ {
		ch := make(chan result, 1)
		r, cancel := next()
		go func() {
			resp, err := rt.RoundTrip(r)
			if cancel != nil {
				cancel()
			}
			ch <- result{resp, err}
		}()
		chans = append(chans, ch)
		if len(chans) == window || i == b.N-1 {
			for _, ch := range chans {
				if r := <-ch; r.err != nil {
					b.Fatal(r.err)
				}
			}
			chans = chans[:0]
		}
	}
}

// BenchmarkFanout is many GETs to one loopback server, 8 at a time: 8 goroutines sharing one
// http.Client (the limit: nothing between them and net/http), against a Session of 8 workers.
// Between them, a worker pool written by hand with the Session's contract: a queue in front of
// 8 goroutines, the body read in the worker, each result handed back on a channel of its own.
// It is what the pattern costs before any scheduler: the raw goroutines queue nothing and hand
// nothing back.
func BenchmarkFanout(b *testing.B) {
	ts := httptest.NewServer(jsonHandler)
	defer ts.Close()
	url := ts.URL + "/get"
	client := func(b *testing.B) *http.Client { return benchClient(b, nil) }

	b.Run("raw-goroutines", func(b *testing.B) {
		rawGets(b, client(b), url, b.ResetTimer)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	// A sliding window of requests outstanding: the oldest is waited for before the next is
	// sent. Twice the workers keeps them from running dry, as the raw goroutines' feeder never
	// lets them; a deeper queue (256) costs a few percent on this machine, to the pool as to the
	// Session, as the Go scheduler then runs the same work on fewer cores.
	for _, outstanding := range []int{16, 256} {
		b.Run(fmt.Sprintf("pool/outstanding=%d", outstanding), func(b *testing.B) {
			c := client(b)
			type result struct {
				resp *http.Response
				err  error
			}
			type job struct {
				req *http.Request
				out chan result
			}
			jobs := make(chan job, outstanding)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for j := range jobs {
						resp, err := c.Do(j.req)
						if err == nil {
							var body []byte
							body, err = io.ReadAll(resp.Body)
							resp.Body.Close()
							resp.Body = io.NopCloser(bytes.NewReader(body))
						}
						j.out <- result{resp, err}
					}
				})
			}
			slide(b, outstanding, func() func() {
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					b.Fatal(err)
				}
				out := make(chan result, 1)
				jobs <- job{req, out}
				return func() {
					r := <-out
					if r.err != nil {
						b.Fatal(r.err)
					}
					r.resp.Body.Close()
				}
			})
			close(jobs)
			wg.Wait()
		})
		b.Run(fmt.Sprintf("session/outstanding=%d", outstanding), func(b *testing.B) {
			s := httpfutures.NewSession(httpfutures.WithWorkers(8))
			defer s.Close()
			slide(b, outstanding, func() func() {
				f := s.Get(url)
				return func() {
					resp, err := f.Result()
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
				}
			})
		})
	}
}

// slide sends b.N requests with outstanding of them in flight, and reports the rate: start sends
// one and returns what waits for it; the oldest is waited for before the next is sent.
func slide(b *testing.B, outstanding int, start func() (wait func())) {
	ring := make([]func(), outstanding)
	b.ResetTimer()
	for i := range b.N {
		if wait := ring[i%outstanding]; wait != nil {
			wait()
		}
		ring[i%outstanding] = start()
	}
	for i := range outstanding {
		if wait := ring[(b.N+i)%outstanding]; wait != nil {
			wait()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// sendTimes is a RoundTripper that records when each request was sent.
type sendTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func (s *sendTimes) RoundTrip(req *http.Request) (*http.Response, error) {
	now := time.Now()
	s.mu.Lock()
	s.times = append(s.times, now)
	s.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// maxGap is the longest time between two sorted times: how late the latest wake-up came.
func maxGap(times []time.Time) time.Duration {
	var gap time.Duration
	for i := 1; i < len(times); i++ {
		gap = max(gap, times[i].Sub(times[i-1]))
	}
	return gap
}

// BenchmarkRate is the rate achieved at 1,000, 10,000 and 50,000 requests per second with a
// burst of 1, on a RoundTripper that does nothing: x/time/rate used naively (Wait before each
// request) against WithRateLimit. Each op is a quarter second of requests; "%target" is the
// achieved rate over the target, "win-excess" is how far the busiest 100 ms window went over
// rate x 100 ms + burst, in requests, and "max-gap-µs" the longest pause between two requests:
// the latest wake-up, whose backlog is sent at once to keep the rate.
func BenchmarkRate(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://noop.invalid/", nil)
	for _, r := range []int{1000, 10000, 50000} {
		n := r / 4
		report := func(b *testing.B, rec *sendTimes, elapsed time.Duration) {
			achieved := float64(len(rec.times)) / elapsed.Seconds()
			b.ReportMetric(100*achieved/float64(r), "%target")
			slices.SortFunc(rec.times, func(a, b time.Time) int { return a.Compare(b) })
			b.ReportMetric(float64(countInWindow(rec.times, 100*time.Millisecond)-(r/10+1)), "win-excess")
			b.ReportMetric(float64(maxGap(rec.times).Microseconds()), "max-gap-µs")
		}
		b.Run(fmt.Sprintf("%d/naive-wait", r), func(b *testing.B) {
			lim := rate.NewLimiter(rate.Limit(r), 1)
			rec := &sendTimes{}
			start := time.Now()
			for range b.N {
				for range n {
					if err := lim.Wait(context.Background()); err != nil {
						b.Fatal(err)
					}
					rec.RoundTrip(req)
				}
			}
			report(b, rec, time.Since(start))
		})
		b.Run(fmt.Sprintf("%d/httpfutures", r), func(b *testing.B) {
			rec := &sendTimes{}
			tr := httpfutures.NewTransport(rec, httpfutures.WithRateLimit(rate.Limit(r), 1))
			defer tr.Close()
			fs := make([]*httpfutures.Future, 0, n)
			start := time.Now()
			for range b.N {
				for range n {
					fs = append(fs, tr.StartRoundTrip(req))
				}
				if err := httpfutures.WaitAll(context.Background(), fs...); err != nil {
					b.Fatal(err)
				}
				fs = fs[:0]
			}
			report(b, rec, time.Since(start))
		})
	}
}

// oneHostLimiter throttles one host and lets every other go at once.
type oneHostLimiter struct {
	host string
	lim  *httpfutures.RateLimiter
}

func (l oneHostLimiter) Reserve(ctx context.Context, host string, now time.Time) (time.Time, error) {
	if host != l.host {
		return now, nil
	}
	return l.lim.Reserve(ctx, host, now)
}

// BenchmarkFairness is the time for 50 requests to an idle host, alone and while another host
// has 10,000 requests queued behind a limit of 100 per second on the same Scheduler: with no
// head-of-line blocking the two are the same.
func BenchmarkFairness(b *testing.B) {
	idle, _ := http.NewRequest(http.MethodGet, "http://idle.invalid/", nil)
	throttled, _ := http.NewRequest(http.MethodGet, "http://throttled.invalid/", nil)
	run := func(b *testing.B, busy bool) {
		limiter := oneHostLimiter{"throttled.invalid", httpfutures.NewRateLimiter(100, 1)}
		tr := httpfutures.NewTransport(noopTransport{}, httpfutures.WithLimiter(limiter), httpfutures.WithWorkers(8))
		defer tr.Close()
		// Either way 10,000 requests are queued, so that both cases carry the same live heap
		// (and garbage collector's work): beside the idle host, or on a transport of their own.
		other := tr
		if !busy {
			block := make(blockingTransport)
			other = httpfutures.NewTransport(block, httpfutures.WithWorkers(1))
			defer func() {
				close(block) // before Close, which waits for the request it holds
				other.Close()
			}()
		}
		for range 10000 {
			other.StartRoundTrip(throttled)
		}
		var total time.Duration
		for range b.N {
			fs := make([]*httpfutures.Future, 50)
			start := time.Now()
			for i := range fs {
				fs[i] = tr.StartRoundTrip(idle)
			}
			if err := httpfutures.WaitAll(context.Background(), fs...); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
		}
		b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs/50-idle-host")
	}
	b.Run("alone", func(b *testing.B) { run(b, false) })
	b.Run("beside-throttled-host", func(b *testing.B) { run(b, true) })
}

// BenchmarkQueued is the memory and goroutines of 20,000 queued requests, the requests
// themselves included, against a goroutine per request blocked on a channel.
func BenchmarkQueued(b *testing.B) {
	const n = 20000
	measure := func(b *testing.B, queue func(reqs []*http.Request) (release func())) {
		for range b.N {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			g0 := runtime.NumGoroutine()
			reqs := make([]*http.Request, n)
			for i := range reqs {
				reqs[i], _ = http.NewRequest(http.MethodGet, fmt.Sprintf("http://example.invalid/item/%d", i), nil)
			}
			release := queue(reqs)
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc+(after.StackInuse-before.StackInuse))/n, "B/queued")
			b.ReportMetric(float64(runtime.NumGoroutine()-g0), "goroutines")
			release()
		}
	}
	b.Run("goroutine-per-request", func(b *testing.B) {
		measure(b, func(reqs []*http.Request) func() {
			gate := make(chan struct{})
			var wg sync.WaitGroup
			for _, req := range reqs {
				wg.Go(func() {
					<-gate
					noopTransport{}.RoundTrip(req)
				})
			}
			return func() { close(gate); wg.Wait() }
		})
	})
	b.Run("httpfutures", func(b *testing.B) {
		measure(b, func(reqs []*http.Request) func() {
			block := make(chan struct{})
			tr := httpfutures.NewTransport(blockingTransport(block), httpfutures.WithWorkers(1))
			fs := make([]*httpfutures.Future, len(reqs))
			for i, req := range reqs {
				fs[i] = tr.StartRoundTrip(req)
			}
			return func() { close(block); tr.Close() }
		})
	})
}

// blockingTransport answers each request once release is closed.
type blockingTransport chan struct{}

func (c blockingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	<-c
	return noopTransport{}.RoundTrip(req)
}

// BenchmarkHosts is the memory and time per host of requests to 100,000 distinct hosts, each
// with its own rate limit: the state a crawler keeps.
func BenchmarkHosts(b *testing.B) {
	const n = 100000
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i], _ = http.NewRequest(http.MethodGet, fmt.Sprintf("http://host-%d.invalid/", i), nil)
	}
	for range b.N {
		tr := httpfutures.NewTransport(noopTransport{}, httpfutures.WithHostRateLimit(10, 1))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		fs := make([]*httpfutures.Future, n)
		for i, req := range reqs {
			fs[i] = tr.StartRoundTrip(req)
		}
		if err := httpfutures.WaitAll(context.Background(), fs...); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		fs = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/host")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/host-kept")
		b.ReportMetric(float64(tr.Stats().Hosts), "hosts-kept")
		tr.Close()
	}
}

// BenchmarkStream is many GETs to one loopback server through Session.Stream, the requests made
// as they are pulled (GetRequests) and each Future dropped once yielded, against 8 goroutines
// sharing an http.Client that discard each response, as BenchmarkFanout's raw goroutines do.
// The windows beside the default (0: twice the workers, 16) show why it is the default.
func BenchmarkStream(b *testing.B) {
	ts := httptest.NewServer(jsonHandler)
	defer ts.Close()
	url := ts.URL + "/get"

	b.Run("raw-goroutines", func(b *testing.B) {
		var cpu0 time.Duration
		rawGets(b, benchClient(b, nil), url, func() {
			runtime.GC()
			cpu0 = cpuTime()
			b.ResetTimer()
		})
		reportStream(b, cpu0)
	})
	urls := func(n int) iter.Seq[string] {
		return func(yield func(string) bool) {
			for range n {
				if !yield(url) {
					return
				}
			}
		}
	}
	for _, window := range []int{0, 4, 8, 32, 64} {
		b.Run(fmt.Sprintf("stream/window=%d", window), func(b *testing.B) {
			s := httpfutures.NewSession(httpfutures.WithWorkers(8))
			defer s.Close()
			runtime.GC()
			cpu0 := cpuTime()
			b.ResetTimer()
			for f := range s.Stream(context.Background(), httpfutures.GetRequests(urls(b.N)), window) {
				resp, err := f.Result()
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			reportStream(b, cpu0)
		})
	}
}

// reportStream reports the rate, and the CPU time the process spent per request since cpu0, the
// server's included: on a shared machine it moves less with the other load than the rate does.
func reportStream(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	if cpu := cpuTime(); cpu > 0 {
		b.ReportMetric(float64((cpu-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/req")
	}
}

// jsonHandler answers every request with a small JSON document, as the fan-out benchmarks do.
var jsonHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"url":%q,"args":{}}`, r.URL.String())
})

// rawGets sends b.N GETs of url from 8 goroutines sharing c, each response read and discarded:
// the limit, with nothing between the goroutines and net/http. start runs once the goroutines
// are up, just before the first request is handed to them; it starts the timer.
func rawGets(b *testing.B, c *http.Client, url string, start func()) {
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range jobs {
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	start()
	for range b.N {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
}

// benchClient returns a client whose transport keeps 8 idle connections per host, closed when b
// ends.
func benchClient(b *testing.B, base *http.Transport) *http.Client {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	tr.MaxIdleConnsPerHost = 8
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// BenchmarkRetained is the memory that resolved Futures keep beyond their requests and
// responses: 10,000 GETs to a loopback server kept in a slice, against the same GETs sent with
// an http.Client and kept as their responses, each body read into memory. "B/future" is the difference per
// request; "B/kept-raw" and "B/kept-session" are the heap per request of each.
func BenchmarkRetained(b *testing.B) {
	const n = 10000
	ts := httptest.NewServer(jsonHandler)
	defer ts.Close()
	url := ts.URL + "/get"
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for range b.N {
		// The same requests and responses, kept by hand: each body read into memory, as a
		// Future's is.
		c := benchClient(b, nil)
		resps := make([]*http.Response, n)
		base := heap()
		for i := range resps {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, resp.ContentLength)
			if _, err := io.ReadFull(resp.Body, body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resps[i] = resp
		}
		raw := heap() - base
		runtime.KeepAlive(resps)
		resps = nil
		c.CloseIdleConnections()

		s := httpfutures.NewSession(httpfutures.WithWorkers(8))
		fs := make([]*httpfutures.Future, n)
		base = heap()
		for i := range fs {
			fs[i] = s.Get(url)
			if _, err := fs[i].Result(); err != nil {
				b.Fatal(err)
			}
		}
		kept := heap() - base
		runtime.KeepAlive(fs)
		s.Close()
		b.ReportMetric(float64(raw)/n, "B/kept-raw")
		b.ReportMetric(float64(kept)/n, "B/kept-session")
		b.ReportMetric((float64(kept)-float64(raw))/n, "B/future")
	}
}

// BenchmarkSessionGet is one Session.Get and its Result at a time against a loopback server, for
// its allocations, beside http.Client.Get with the body read.
func BenchmarkSessionGet(b *testing.B) {
	ts := httptest.NewServer(jsonHandler)
	defer ts.Close()
	url := ts.URL + "/get"
	b.Run("http.Client", func(b *testing.B) {
		b.ReportAllocs()
		c := benchClient(b, nil)
		for range b.N {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("Session", func(b *testing.B) {
		b.ReportAllocs()
		s := httpfutures.NewSession(httpfutures.WithWorkers(8))
		defer s.Close()
		for range b.N {
			resp, err := s.Get(url).Result()
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

// BenchmarkAllAtOnce is b.N GETs submitted at once to a Session of 8 workers, each Result then
// read in order, against 8 raw goroutines sharing an http.Client that discard each response, and
// 8 that keep it (its body read into memory) until the end, as the Session's caller keeps its
// Futures. It runs against one loopback server, 100 of them (the requests spread evenly), one
// speaking HTTP/2 over TLS, and one that answers after 10 ms. Run it with -benchtime 10000x
// (400x for delay-10ms), each contender in a run of its own, alternating.
func BenchmarkAllAtOnce(b *testing.B) {
	type target struct {
		name  string
		urls  []string
		base  *http.Transport // the client transport to clone: for TLS, the server's
		close func()
	}
	targets := func(b *testing.B) []target {
		one := httptest.NewServer(jsonHandler)
		var many []*httptest.Server
		var manyURLs []string
		for range 100 {
			ts := httptest.NewServer(jsonHandler)
			many = append(many, ts)
			manyURLs = append(manyURLs, ts.URL+"/get")
		}
		h2 := httptest.NewUnstartedServer(jsonHandler)
		h2.EnableHTTP2 = true
		h2.StartTLS()
		delay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(10 * time.Millisecond)
			jsonHandler(w, r)
		}))
		return []target{
			{name: "one-host", urls: []string{one.URL + "/get"}, close: one.Close},
			{name: "100-hosts", urls: manyURLs, close: func() {
				for _, ts := range many {
					ts.Close()
				}
			}},
			{name: "h2-tls", urls: []string{h2.URL + "/get"}, base: h2.Client().Transport.(*http.Transport), close: h2.Close},
			{name: "delay-10ms", urls: []string{delay.URL + "/delay/10"}, close: delay.Close},
		}
	}
	for _, tg := range targets(b) {
		defer tg.close()
		url := func(i int) string { return tg.urls[i%len(tg.urls)] }
		raw := func(b *testing.B, keep bool) {
			c := benchClient(b, tg.base)
			kept := make([]*http.Response, b.N)
			jobs := make(chan int)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for i := range jobs {
						resp, err := c.Get(url(i))
						if err != nil {
							b.Error(err)
							continue
						}
						if !keep {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							continue
						}
						body, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err != nil {
							b.Error(err)
						}
						resp.Body = io.NopCloser(bytes.NewReader(body))
						kept[i] = resp
					}
				})
			}
			b.ResetTimer()
			for i := range b.N {
				jobs <- i
			}
			close(jobs)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			runtime.KeepAlive(kept)
		}
		b.Run(tg.name+"/raw-discard", func(b *testing.B) { raw(b, false) })
		b.Run(tg.name+"/raw-keep", func(b *testing.B) { raw(b, true) })
		b.Run(tg.name+"/session", func(b *testing.B) {
			s := httpfutures.NewSession(httpfutures.WithWorkers(8), httpfutures.WithClient(benchClient(b, tg.base)))
			defer s.Close()
			fs := make([]*httpfutures.Future, b.N)
			b.ResetTimer()
			for i := range fs {
				fs[i] = s.Get(url(i))
			}
			for _, f := range fs {
				resp, err := f.Result()
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkAdaptiveLimit is the cost per request of an adaptive host limit, beside a static one
// of the same size, on a RoundTripper that does nothing: the observation each attempt hands its
// worker, and the limit's update under the Scheduler's lock.
func BenchmarkAdaptiveLimit(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://noop.invalid/", nil)
	for _, c := range []struct {
		name string
		opt  httpfutures.Option
	}{
		{"static", httpfutures.WithHostLimit(8)},
		{"adaptive", httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 8, Initial: 8})},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			tr := httpfutures.NewTransport(noopTransport{}, c.opt)
			defer tr.Close()
			inWindows(b, func() *httpfutures.Future { return tr.StartRoundTrip(req) })
		})
	}
}

// BenchmarkAdaptiveLoopback is GETs to a healthy loopback server answering 24 bytes of JSON, 64
// at a time through 64 workers, with an adaptive limit of up to 64 beside a static limit of 64:
// what adaptive limits cost where there is nothing to find, the case of a healthy server
// talking the limit down. "decreases" counts the adaptive limit's falls, which must be none: it
// stays at the concurrency in use once it gets there.
func BenchmarkAdaptiveLoopback(b *testing.B) {
	ts := httptest.NewServer(jsonHandler)
	defer ts.Close()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/get", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opt  httpfutures.Option
	}{
		{"static", httpfutures.WithHostLimit(64)},
		{"adaptive", httpfutures.WithAdaptiveHostLimit(64)},
	} {
		b.Run(c.name, func(b *testing.B) {
			var decreases atomic.Int64
			var why atomic.Value
			tr := httpfutures.NewTransport(nil, httpfutures.WithWorkers(64), c.opt,
				httpfutures.WithLimitChanged(func(lc httpfutures.LimitChange) {
					if lc.To < lc.From {
						decreases.Add(1)
						why.Store(lc)
					}
				}))
			defer tr.Close()
			slide(b, 64, func() func() {
				f := tr.StartRoundTrip(req)
				return func() {
					resp, err := f.Result()
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
				}
			})
			b.ReportMetric(float64(decreases.Load()), "decreases")
			if n := decreases.Load(); n > 0 {
				b.Errorf("the limit of a healthy server fell %d times, last %+v", n, why.Load())
			}
		})
	}
}

// BenchmarkHedge is the cost per request of arming a hedge (WithHedge) that a fast answer makes
// unneeded, beside no hedging, on a RoundTripper that does nothing: the copy queued to wait, and
// canceled.
func BenchmarkHedge(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, "http://noop.invalid/", nil)
	for _, c := range []struct {
		name string
		opts []httpfutures.Option
	}{
		{"off", nil},
		{"armed", []httpfutures.Option{httpfutures.WithHedge(time.Second, 1),
			httpfutures.WithRetry(httpfutures.RetryPolicy{Budget: httpfutures.RetryBudget{Ratio: math.Inf(1)}})}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			tr := httpfutures.NewTransport(noopTransport{}, c.opts...)
			defer tr.Close()
			inWindows(b, func() *httpfutures.Future { return tr.StartRoundTrip(req) })
		})
	}
}
