package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/loadgen"
)

// tourServer is an embedded server of the tour, on a loopback port: it serves the demo's
// paths, /hang (answers when the client leaves, or after 30s) and counts the requests it is
// answering at once.
type tourServer struct {
	*demoServer
	cur, peak atomic.Int64
	started   atomic.Int64 // requests received
	left      atomic.Int64 // /hang requests whose client left before the answer
}

func startTourServer() (*tourServer, error) {
	ts := &tourServer{}
	demo := newDemoHandler()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.started.Add(1)
		n := ts.cur.Add(1)
		defer ts.cur.Add(-1)
		for p := ts.peak.Load(); n > p && !ts.peak.CompareAndSwap(p, n); p = ts.peak.Load() {
		}
		if r.URL.Path == "/hang" {
			t := time.NewTimer(30 * time.Second)
			defer t.Stop()
			select {
			case <-r.Context().Done():
				ts.left.Add(1)
			case <-t.C:
			}
			return
		}
		demo.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting a tour server: %w", err)
	}
	ts.demoServer = &demoServer{
		URL:    "http://" + ln.Addr().String(),
		srv:    &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		served: make(chan error, 1),
	}
	go func() { ts.served <- ts.srv.Serve(ln) }()
	return ts, nil
}

// A tourStep is one line of the tour: what it shows, what happened, and whether the claim held
// (checked from what happened).
type tourStep struct {
	claim string
	what  string
	held  bool
}

func (s tourStep) String() string {
	mark := "ok"
	if !s.held {
		mark = "NOT HELD"
	}
	return fmt.Sprintf("%s: %s [%s]", s.claim, s.what, mark)
}

// tourStep functions each show one thing, against the tour's two servers.
type tourFunc func(ctx context.Context, a, b *tourServer) (tourStep, error)

// tourSteps are the steps in their order.
var tourSteps = []tourFunc{tourOutOfOrder, tourThrottledHost, tourPausedHost, tourStreamWindow, tourClose}

// runTour is "httpfutures tour": a few lines, each the library doing one thing against
// embedded servers, with what was measured. It uses only the package's public API.
func runTour(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("httpfutures tour", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: httpfutures tour")
		fmt.Fprintln(stderr, "Shows the httpfutures library at work against two embedded loopback servers, a line a feature.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	steps, err := tour(ctx)
	for i, s := range steps {
		fmt.Fprintf(stdout, "%d. %s\n", i+1, s)
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures tour: %v\n", err)
		return exitFail
	}
	for _, s := range steps {
		if !s.held {
			return exitFail
		}
	}
	fmt.Fprintln(stdout, "Each line is measured as it ran: see cmd/httpfutures/tour.go for the code, and httpfutures [flags] URL for a load test.")
	return exitOK
}

// tour runs the steps against two fresh servers, and returns them as far as they got.
func tour(ctx context.Context) ([]tourStep, error) {
	a, err := startTourServer()
	if err != nil {
		return nil, err
	}
	defer a.Close()
	b, err := startTourServer()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var steps []tourStep
	for _, step := range tourSteps {
		s, err := step(ctx, a, b)
		if err != nil {
			return steps, err
		}
		steps = append(steps, s)
	}
	return steps, nil
}

func tourGet(ctx context.Context, url string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil) // the tour's own URLs
	return req
}

// drain reads a Future's response to its end and closes it, and returns its error.
func drain(f *httpfutures.Future) error {
	resp, err := f.Result()
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// outOfOrder is what tourOutOfOrder saw: the delays in the order submitted and in the order
// the Futures resolved.
type outOfOrder struct{ submitted, resolved []int }

// tourOutOfOrder submits three requests that take 300, 100 and 200 ms, and takes the Futures
// as they resolve: fastest first.
func tourOutOfOrder(ctx context.Context, a, _ *tourServer) (tourStep, error) {
	d, err := runOutOfOrder(ctx, a)
	if err != nil {
		return tourStep{}, err
	}
	return tourStep{
		claim: "Futures resolve out of order",
		what:  fmt.Sprintf("submitted /delay/%s, resolved /delay/%s", joinInts(d.submitted), joinInts(d.resolved)),
		held:  d.held(),
	}, nil
}

func (d outOfOrder) held() bool {
	if len(d.resolved) != len(d.submitted) {
		return false
	}
	for i := 1; i < len(d.resolved); i++ {
		if d.resolved[i] < d.resolved[i-1] {
			return false // resolved by how long each took, not by when it was submitted
		}
	}
	return fmt.Sprint(d.resolved) != fmt.Sprint(d.submitted)
}

func runOutOfOrder(ctx context.Context, a *tourServer) (outOfOrder, error) {
	t := httpfutures.NewTransport(nil)
	defer t.Close()
	d := outOfOrder{submitted: []int{300, 100, 200}}
	var fs []*httpfutures.Future
	delayOf := map[*httpfutures.Future]int{}
	for _, ms := range d.submitted {
		f := t.StartRoundTrip(tourGet(ctx, a.URL+"/delay/"+strconv.Itoa(ms)))
		fs = append(fs, f)
		delayOf[f] = ms
	}
	for f := range httpfutures.AsCompleted(fs...) {
		if err := drain(f); err != nil {
			return d, err
		}
		d.resolved = append(d.resolved, delayOf[f])
	}
	return d, nil
}

// throttled is what tourThrottledHost saw: when the throttled host's last request and the
// other host's request ended, from the start.
type throttled struct {
	rate          float64
	n             int
	throttledLast time.Duration
	other         time.Duration
}

// tourThrottledHost limits each host to 10 requests a second and queues 6 requests to one host,
// then 1 to the other: that one is not held behind the 6.
func tourThrottledHost(ctx context.Context, a, b *tourServer) (tourStep, error) {
	d, err := runThrottled(ctx, a, b)
	if err != nil {
		return tourStep{}, err
	}
	return tourStep{
		claim: "A throttled host does not delay another",
		what: fmt.Sprintf("%d requests queued first to host A at %g/s took until %s; the one to host B queued after them was done in %s",
			d.n, d.rate, roundMs(d.throttledLast), roundMs(d.other)),
		held: d.held(),
	}, nil
}

func (d throttled) held() bool {
	minThrottled := time.Duration(float64(d.n-1) / d.rate * float64(time.Second))
	return d.throttledLast >= minThrottled*9/10 && d.other < d.throttledLast/2
}

func runThrottled(ctx context.Context, a, b *tourServer) (throttled, error) {
	d := throttled{rate: 10, n: 6}
	t := httpfutures.NewTransport(nil, httpfutures.WithHostRateLimit(rate.Limit(d.rate), 1))
	defer t.Close()
	start := time.Now()
	var fs []*httpfutures.Future
	for range d.n {
		fs = append(fs, t.StartRoundTrip(tourGet(ctx, a.URL+"/get")))
	}
	other := t.StartRoundTrip(tourGet(ctx, b.URL+"/get"))
	if err := drain(other); err != nil {
		return d, err
	}
	d.other = time.Since(start)
	for _, f := range fs {
		if err := drain(f); err != nil {
			return d, err
		}
	}
	d.throttledLast = time.Since(start)
	return d, nil
}

// paused is what tourPausedHost saw: how long after the 429 the paused host's next request was
// sent, and how long the other host's request took.
type paused struct {
	code      int
	nextAfter time.Duration // from the 429 to the next request to that host being answered
	other     time.Duration // from the 429 to the other host's answer
}

// tourPausedHost gets a 429 with Retry-After: 1 from host A: A's next request waits a second,
// host B's goes at once.
func tourPausedHost(ctx context.Context, a, b *tourServer) (tourStep, error) {
	d, err := runPaused(ctx, a, b)
	if err != nil {
		return tourStep{}, err
	}
	return tourStep{
		claim: "A 429 pauses one host",
		what: fmt.Sprintf("host A answered %d with Retry-After: 1; its next request was answered %s later, host B's in %s",
			d.code, roundMs(d.nextAfter), roundMs(d.other)),
		held: d.held(),
	}, nil
}

func (d paused) held() bool {
	return d.code == http.StatusTooManyRequests && d.nextAfter >= 900*time.Millisecond && d.other < 500*time.Millisecond
}

func runPaused(ctx context.Context, a, b *tourServer) (paused, error) {
	var d paused
	t := httpfutures.NewTransport(nil) // backpressure is on by default
	defer t.Close()
	resp, err := t.StartRoundTrip(tourGet(ctx, a.URL+"/status/429")).Result()
	if err != nil {
		return d, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d.code = resp.StatusCode
	at := time.Now()
	next := t.StartRoundTrip(tourGet(ctx, a.URL+"/get"))
	other := t.StartRoundTrip(tourGet(ctx, b.URL+"/get"))
	if err := drain(other); err != nil {
		return d, err
	}
	d.other = time.Since(at)
	if err := drain(next); err != nil {
		return d, err
	}
	d.nextAfter = time.Since(at)
	return d, nil
}

// window is what tourStreamWindow saw: the most requests the server answered at once.
type window struct {
	n, window int
	done      int
	peak      int64
}

// tourStreamWindow streams 24 requests of 50 ms with a window of 4, on a transport of 8
// workers: the server never has more than 4 at once.
func tourStreamWindow(ctx context.Context, a, _ *tourServer) (tourStep, error) {
	d, err := runWindow(ctx, a)
	if err != nil {
		return tourStep{}, err
	}
	return tourStep{
		claim: "A Stream holds its window",
		what:  fmt.Sprintf("%d requests streamed with a window of %d on 8 workers: at most %d at the server at once, %d done", d.n, d.window, d.peak, d.done),
		held:  d.held(),
	}, nil
}

func (d window) held() bool { return d.done == d.n && d.peak >= 1 && d.peak <= int64(d.window) }

func runWindow(ctx context.Context, a *tourServer) (window, error) {
	d := window{n: 24, window: 4}
	t := httpfutures.NewTransport(nil, httpfutures.WithWorkers(8))
	defer t.Close()
	a.peak.Store(0)
	reqs := iter.Seq[*http.Request](func(yield func(*http.Request) bool) {
		for range d.n {
			if !yield(tourGet(ctx, a.URL+"/delay/50")) {
				return
			}
		}
	})
	for f := range t.Stream(ctx, reqs, d.window) {
		if err := drain(f); err != nil {
			return d, err
		}
		d.done++
	}
	d.peak = a.peak.Load()
	return d, nil
}

// closed is what tourClose saw: how long Close took with requests running and queued, how
// their Futures ended, and whether the server saw the running ones go.
type closed struct {
	running, queued int
	took            time.Duration
	errClosed       int // Futures that failed with ErrClosed
	left            int64
}

// tourClose starts 2 requests that hang, on 2 workers, with 3 more queued, and closes the
// transport: Close returns at once, every Future fails with ErrClosed, and the server sees
// the running ones leave.
func tourClose(ctx context.Context, a, _ *tourServer) (tourStep, error) {
	d, err := runClose(ctx, a)
	if err != nil {
		return tourStep{}, err
	}
	return tourStep{
		claim: "Close stops what runs",
		what: fmt.Sprintf("Close with %d requests running and %d queued returned in %s: %d Futures failed with ErrClosed, the server saw %d running requests leave",
			d.running, d.queued, roundMs(d.took), d.errClosed, d.left),
		held: d.held(),
	}, nil
}

func (d closed) held() bool {
	return d.took < time.Second && d.errClosed == d.running+d.queued && d.left == int64(d.running)
}

func runClose(ctx context.Context, a *tourServer) (closed, error) {
	d := closed{running: 2, queued: 3}
	t := httpfutures.NewTransport(nil, httpfutures.WithWorkers(d.running))
	a.left.Store(0)
	before := a.started.Load()
	var fs []*httpfutures.Future
	for range d.running + d.queued {
		fs = append(fs, t.StartRoundTrip(tourGet(ctx, a.URL+"/hang")))
	}
	// Close once the server has the running ones.
	for deadline := time.Now().Add(5 * time.Second); a.started.Load()-before < int64(d.running); {
		if time.Now().After(deadline) {
			t.Close()
			return d, errors.New("the hanging requests did not reach the server in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := t.Close(); err != nil {
		return d, err
	}
	d.took = time.Since(start)
	for _, f := range fs {
		if _, err := f.Result(); errors.Is(err, httpfutures.ErrClosed) {
			d.errClosed++
		}
	}
	// The server notices a client gone when its connection closes: give it a moment.
	for deadline := time.Now().Add(2 * time.Second); a.left.Load() < int64(d.running) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	d.left = a.left.Load()
	return d, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", /delay/")
}

func roundMs(d time.Duration) string { return loadgen.FormatDuration(d) }
