package otelfutures_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/otelfutures"
)

// retryFast retries at once, twice at most.
var retryFast = httpfutures.WithRetry(httpfutures.RetryPolicy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: time.Millisecond})

// Each request is counted by its outcome, its round trip recorded by method and status or error,
// its time queued recorded; each retry by its cause, each redirect.
func TestMetricsCountRequests(t *testing.T) {
	ts := newServer(t)
	mp, r := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(tracenoop.NewTracerProvider()))
	s := newSession(t, tel.Option(), retryFast)

	for _, path := range []string{"/ok", "/ok", "/ok", "/flaky", "/moved", "/missing"} {
		resp, err := s.Get(ts.URL + path).Result()
		require.NoError(t, err)
		resp.Body.Close()
	}
	_, err := s.Get("http://127.0.0.1:1/refused").Result()
	require.Error(t, err)
	require.NoError(t, s.Close()) // its workers have told the Observer all, and are gone

	m := collect(t, r)
	assert.Equal(t, points{"httpfutures.outcome=completed": 6, "httpfutures.outcome=failed": 1}, m["httpfutures.requests"])
	assert.Equal(t, points{
		"http.request.method=GET,http.response.status_code=200":                5,
		"error.type=404,http.request.method=GET,http.response.status_code=404": 1,
		"error.type=connection_refused,http.request.method=GET":                1,
	}, m["http.client.request.duration"])
	assert.Equal(t, points{"http.response.status_code=503": 1, "error.type=connection_refused": 2}, m["httpfutures.retries"])
	assert.Equal(t, points{"": 1}, m["httpfutures.redirects"])
	assert.Equal(t, points{"": 7}, m["httpfutures.queue.duration"])
	assert.Equal(t, points{"": 0}, m["httpfutures.queue.size"])
	assert.Equal(t, points{"": 0}, m["http.client.active_requests"])
	assert.Equal(t, points{"": 0}, m["httpfutures.host.paused"])
	assert.NotContains(t, m, "httpfutures.host.limit", "no host has series of its own")
	assert.NotContains(t, m, "httpfutures.hedges", "none was sent")
}

// A request shed by a full queue is counted as shed, and not as queued; one canceled in its
// queue as canceled, with its time queued.
func TestMetricsOutcomes(t *testing.T) {
	ts := newServer(t)
	mp, r := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp))
	tr := httpfutures.NewTransport(nil, tel.Option(), httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(1))
	defer tr.Close()
	get := func(path string) *httpfutures.Future {
		req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		require.NoError(t, err)
		return tr.StartRoundTrip(req)
	}
	running := get("/gate")
	<-ts.arrived
	queued := get("/ok")
	_, err := get("/shed").Result()
	require.ErrorIs(t, err, httpfutures.ErrQueueFull)
	assert.Equal(t, points{"": 1}, collect(t, r)["httpfutures.queue.size"])
	assert.Equal(t, points{"": 1}, collect(t, r)["http.client.active_requests"])
	queued.Cancel()
	ts.open()
	_, err = running.Result()
	require.NoError(t, err)
	require.NoError(t, tr.Close())

	m := collect(t, r)
	assert.Equal(t, points{"httpfutures.outcome=completed": 1, "httpfutures.outcome=canceled": 1, "httpfutures.outcome=shed": 1},
		m["httpfutures.requests"])
	assert.Equal(t, points{"": 2}, m["httpfutures.queue.duration"], "the request running and the one canceled in its queue")
	assert.Equal(t, points{"http.request.method=GET,http.response.status_code=200": 1}, m["http.client.request.duration"])
}

// A copy of a slow request is counted.
func TestMetricsHedges(t *testing.T) {
	ts := newServer(t)
	mp, r := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp))
	s := newSession(t, tel.Option(), httpfutures.WithHedge(10*time.Millisecond, 1))
	resp, err := s.Get(ts.URL + "/slow").Result()
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, s.Close())
	m := collect(t, r)
	assert.Equal(t, points{"": 1}, m["httpfutures.hedges"])
	assert.Equal(t, points{"httpfutures.outcome=completed": 1}, m["httpfutures.requests"], "a copy is not a request of its own")
}

// The gauges add up the Schedulers observed: requests queued and in flight; Close stops them.
func TestMetricsGauges(t *testing.T) {
	ts := newServer(t)
	mp, r := meter(t)
	tel, err := otelfutures.New(otelfutures.WithMeterProvider(mp))
	require.NoError(t, err)
	a := httpfutures.NewTransport(nil, tel.Option(), httpfutures.WithWorkers(2))
	defer a.Close()
	sched := httpfutures.NewScheduler(tel.Option(), httpfutures.WithWorkers(1))
	defer sched.Close()
	b := httpfutures.NewTransport(nil, httpfutures.WithScheduler(sched))
	defer b.Close()

	var fs []*httpfutures.Future
	for _, tr := range []*httpfutures.AsyncTransport{a, a, a, a, a, b, b, b} {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/gate", nil)
		require.NoError(t, err)
		fs = append(fs, tr.StartRoundTrip(req))
	}
	for range 3 {
		<-ts.arrived
	}
	m := collect(t, r)
	assert.Equal(t, points{"": 3}, m["http.client.active_requests"], "2 workers of a, 1 of b")
	assert.Equal(t, points{"": 5}, m["httpfutures.queue.size"])
	ts.open()
	require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
	require.NoError(t, a.Close())
	require.NoError(t, sched.Close())
	m = collect(t, r)
	assert.Equal(t, points{"": 0}, m["http.client.active_requests"])
	assert.Equal(t, points{"": 0}, m["httpfutures.queue.size"])
	assert.Equal(t, points{"httpfutures.outcome=completed": 8}, m["httpfutures.requests"])

	require.NoError(t, tel.Close())
	require.NoError(t, tel.Close(), "Close twice is no error")
	m = collect(t, r)
	assert.NotContains(t, m, "httpfutures.queue.size", "closed: no gauge is read")
	assert.Equal(t, points{"httpfutures.outcome=completed": 8}, m["httpfutures.requests"], "what was counted stays")
}

// WithHosts gives series of their own to the first hosts seen: their requests carry the host,
// and their limits and pauses are reported each; the other hosts are counted together.
func TestMetricsHosts(t *testing.T) {
	servers := []*server{newServer(t), newServer(t), newServer(t), newServer(t)}
	mp, r := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp), otelfutures.WithHosts(2))
	s := newSession(t, tel.Option(), httpfutures.WithAdaptiveHostLimit(8))
	for _, ts := range servers {
		resp, err := s.Get(ts.URL + "/pause").Result() // pauses its host for 30 seconds
		require.NoError(t, err)
		resp.Body.Close()
	}
	first, second := hostOf(servers[0].Server), hostOf(servers[1].Server)
	require.Eventually(t, func() bool { return collect(t, r)["http.client.request.duration"].sum() == 4 },
		5*time.Second, time.Millisecond, "the workers tell the Observer after the Futures resolve")
	m := collect(t, r)
	assert.Equal(t, points{
		"httpfutures.outcome=completed," + first:  1,
		"httpfutures.outcome=completed," + second: 1,
		"httpfutures.outcome=completed":           2,
	}, m["httpfutures.requests"])
	assert.Equal(t, points{first: 8, second: 8}, m["httpfutures.host.limit"], "the adaptive limit, as it starts")
	assert.Equal(t, points{first: 1, second: 1, "": 2}, m["httpfutures.host.paused"], "the others, together")
	assert.Equal(t, 4.0, m["httpfutures.host.paused"].sum(), "the hosts paused, whichever series they are in")
	assert.Contains(t, m["http.client.request.duration"], "http.request.method=GET,http.response.status_code=200,"+first)
	assert.Contains(t, m["http.client.request.duration"], "http.request.method=GET,http.response.status_code=200")
}

// A host's circuit breaker shows as a gauge of its state, and each change it makes is counted by
// the state it changed to.
func TestMetricsCircuit(t *testing.T) {
	broken, healthy := newServer(t), newServer(t)
	mp, r := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp), otelfutures.WithHosts(2))
	s := newSession(t, tel.Option(), httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{MinRequests: 4, Cooldown: time.Hour}))
	for range 6 {
		s.Get(broken.URL + "/broken").Result()
	}
	resp, err := s.Get(healthy.URL + "/ok").Result()
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, s.Close()) // a change is told by the worker, after its Future resolved
	m := collect(t, r)
	bad, good := hostOf(broken.Server), hostOf(healthy.Server)
	assert.Equal(t, points{"httpfutures.circuit.state=open," + bad: 1}, m["httpfutures.circuit.changes"])
	assert.Equal(t, points{bad: 1}, m["httpfutures.host.circuit"], "open for the broken host")
	assert.NotContains(t, m["httpfutures.host.circuit"], good, "a host the Scheduler holds nothing of has no point")
}

// A circuit change is counted under its host's series even when no request to the host has
// resolved yet: the host has its series from its first attempt. Here the four attempts that open
// the breaker are held in Observer.Resolved, and the change is told by the request it refuses.
func TestMetricsCircuitBeforeAnyResult(t *testing.T) {
	broken := newServer(t)
	mp, r := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp), otelfutures.WithHosts(2))
	var holding atomic.Bool
	holding.Store(true)
	hold := make(chan struct{})
	held := httpfutures.Observer{Resolved: func(*httpfutures.Future, httpfutures.Outcome) {
		if holding.Load() {
			<-hold
		}
	}}
	tr := httpfutures.NewTransport(nil, httpfutures.WithWorkers(4), httpfutures.WithObserver(held), tel.Option(),
		httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{MinRequests: 4, Cooldown: time.Hour}))
	t.Cleanup(func() { tr.Close() })
	for range 4 {
		req, err := http.NewRequest(http.MethodGet, broken.URL+"/broken", nil)
		require.NoError(t, err)
		tr.StartRoundTrip(req)
	}
	require.Eventually(t, func() bool { return tr.HostStats(broken.URL).Circuit == httpfutures.CircuitOpen },
		5*time.Second, time.Millisecond, "opened by the four attempts, each held before its result")
	holding.Store(false)
	req, err := http.NewRequest(http.MethodGet, broken.URL+"/broken", nil)
	require.NoError(t, err)
	_, err = tr.StartRoundTrip(req).Result()
	require.ErrorIs(t, err, httpfutures.ErrCircuitOpen)
	assert.Equal(t, points{"httpfutures.circuit.state=open," + hostOf(broken.Server): 1}, collect(t, r)["httpfutures.circuit.changes"])
	close(hold)
}

// A host's series names it by the URL's host name and port, the scheme's default if it names
// none; the default port given or not is the same host.
func TestMetricsHostNames(t *testing.T) {
	mp, r := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp), otelfutures.WithHosts(10))
	s := newSession(t, tel.Option(), httpfutures.WithClient(&http.Client{Transport: answerAll{}}))
	for _, u := range []string{"http://A.test/", "http://a.test:80/", "https://b.test/", "https://b.test:443/", "http://c.test:8080/", "http://[::1]:9/"} {
		resp, err := s.Get(u).Result()
		require.NoError(t, err, u)
		resp.Body.Close()
	}
	require.NoError(t, s.Close())
	assert.Equal(t, points{
		"httpfutures.outcome=completed,server.address=a.test,server.port=80":   2,
		"httpfutures.outcome=completed,server.address=b.test,server.port=443":  2,
		"httpfutures.outcome=completed,server.address=c.test,server.port=8080": 1,
		"httpfutures.outcome=completed,server.address=::1,server.port=9":       1,
	}, collect(t, r)["httpfutures.requests"])
}

// answerAll answers every request with a 200, at once.
type answerAll struct{}

func (answerAll) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// With no-op providers, nothing is observed: the Observer is the zero Observer.
func TestOff(t *testing.T) {
	tel := newTelemetry(t, otelfutures.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelfutures.WithTracerProvider(tracenoop.NewTracerProvider()))
	o := tel.Observer()
	assert.True(t, o.Queued == nil && o.Started == nil && o.Retried == nil && o.Redirected == nil && o.Hedged == nil &&
		o.Resolved == nil && o.Context == nil && o.Attached == nil && o.HostPaused == nil && o.LimitChanged == nil)

	var zero otelfutures.Telemetry
	o = zero.Observer()
	assert.True(t, o.Resolved == nil && o.Started == nil, "the zero Telemetry observes nothing")
	assert.NoError(t, zero.Close())
	s := newSession(t, zero.Option())
	_, err := s.Get("http://127.0.0.1:1/").Result()
	assert.Error(t, err)
}

// A Telemetry does not keep the Schedulers it observes: one dropped is collected, and no longer
// read.
func TestMetricsLetSchedulersGo(t *testing.T) {
	mp, _ := meter(t)
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp))
	func() {
		for range 3 {
			tr := httpfutures.NewTransport(answerAll{}, tel.Option())
			req, err := http.NewRequest(http.MethodGet, "http://a.test/", nil)
			require.NoError(t, err)
			_, err = tr.RoundTrip(req)
			require.NoError(t, err)
			require.NoError(t, tr.Close())
		}
	}()
	keep := httpfutures.NewScheduler(tel.Option())
	defer keep.Close()
	require.Equal(t, 4, otelfutures.Schedulers(tel))
	require.Eventually(t, func() bool {
		runtime.GC()
		return otelfutures.Schedulers(tel) == 1
	}, 5*time.Second, 10*time.Millisecond, "the dropped ones are collected")
}

// The package httpfutures imports no OpenTelemetry: only programs that import otelfutures build it.
func TestRootImportsNoOpenTelemetry(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/httpfutures/httpfutures").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "golang.org/x/time/rate", "the list is the package's dependencies")
	for _, d := range deps {
		assert.NotContains(t, d, "opentelemetry", "the package httpfutures imports %s", d)
	}
}

// Requests that fail before they are queued (no request, no host) are counted and traced like
// any, and make no host's series.
func TestInvalidRequests(t *testing.T) {
	mp, r := meter(t)
	x := newTraced(t, sdktrace.AlwaysSample())
	tel := newTelemetry(t, otelfutures.WithMeterProvider(mp), otelfutures.WithTracerProvider(x.tp), otelfutures.WithHosts(10))
	tr := httpfutures.NewTransport(nil, tel.Option())
	_, err := tr.StartRoundTrip(nil).Result()
	require.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
	_, err = tr.StartRoundTrip(&http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "http", Path: "/no-host"}}).Result()
	require.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
	require.NoError(t, tr.Close())
	assert.Equal(t, points{"httpfutures.outcome=failed": 2}, collect(t, r)["httpfutures.requests"])
	spans := x.rec.Ended()
	require.Len(t, spans, 2)
	for _, s := range spans {
		assert.Equal(t, "invalid_request", attr(s, "error.type").AsString())
	}
}
