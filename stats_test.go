package httpfutures_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// A Scheduler's Stats add up the requests of every transport it runs, and HostStats tells a
// host's default port by its scheme.
func TestSchedulerStatsAddUp(t *testing.T) {
	ok := newEchoServer(t)
	sched := httpfutures.NewScheduler()
	t.Cleanup(func() { sched.Close() })
	a := newTransport(t, nil, httpfutures.WithScheduler(sched))
	b := newTransport(t, nil, httpfutures.WithScheduler(sched), httpfutures.WithRetry(httpfutures.RetryPolicy{
		MaxRetries: 1,
		Backoff:    func(_, _ time.Duration, _ int, _ *http.Response) time.Duration { return 0 },
	}))
	_, err := a.StartRoundTrip(get(t, ok.URL)).Result()
	require.NoError(t, err)
	_, err = b.StartRoundTrip(get(t, "http://127.0.0.1:1/refused")).Result()
	require.Error(t, err)
	f := a.StartRoundTrip(get(t, ok.URL))
	f.Cancel()
	f.Result()
	st := sched.Stats()
	sa, sb := a.Stats(), b.Stats()
	assert.Equal(t, sa.Completed+sb.Completed, st.Completed)
	assert.Equal(t, sa.Failed+sb.Failed, st.Failed)
	assert.Equal(t, sa.Canceled+sb.Canceled, st.Canceled)
	assert.Equal(t, uint64(1), st.Retries)
	assert.Equal(t, uint64(1), st.Failed)
	assert.GreaterOrEqual(t, st.Completed+st.Canceled, uint64(2))
}

// A Scheduler that a transport made counts that transport's requests once, and those of another
// transport sharing it too: retries, redirects, outcomes and bodies.
func TestOwnedSchedulerStatsAddUp(t *testing.T) {
	ok := newEchoServer(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, ok.URL, http.StatusFound) })
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	retry := httpfutures.WithRetry(httpfutures.RetryPolicy{
		MaxRetries: 2,
		Backoff:    func(_, _ time.Duration, _ int, _ *http.Response) time.Duration { return 0 },
	})
	owner := newSession(t, retry)
	other := newSession(t, httpfutures.WithScheduler(owner.Transport().Scheduler()), httpfutures.WithStreaming(true))
	for _, s := range []*httpfutures.Session{owner, owner, other} {
		resp, err := s.Get(srv.URL + "/moved").Result()
		require.NoError(t, err)
		body(t, resp)
	}
	resp, err := owner.Get(srv.URL + "/busy").Result()
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "the last response, after the retries")
	held, err := other.Get(ok.URL).Result()
	require.NoError(t, err)
	t.Cleanup(func() { held.Body.Close() })

	so, sx, st := owner.Stats(), other.Stats(), owner.Transport().Scheduler().Stats()
	assert.Equal(t, uint64(3), so.Completed)
	assert.Equal(t, uint64(2), sx.Completed)
	assert.Equal(t, uint64(5), st.Completed, "each request counted once")
	assert.Equal(t, uint64(2), so.Retries)
	assert.Equal(t, uint64(2), st.Retries)
	assert.Equal(t, uint64(1), sx.Redirects)
	assert.Equal(t, uint64(3), st.Redirects)
	assert.Equal(t, 1, sx.Bodies)
	assert.Equal(t, 1, st.Bodies)
	assert.Equal(t, st, owner.Transport().Scheduler().Stats(), "read again, the same")
}

// HostOf names a URL's host as the Scheduler does, and HostStats finds a host by that name.
func TestHostOf(t *testing.T) {
	for raw, want := range map[string]string{
		"http://Example.COM/x":       "example.com",
		"http://example.com:80/":     "example.com",
		"https://example.com:443/":   "example.com",
		"https://example.com:80/":    "example.com:80",
		"http://example.com:443/":    "example.com:443",
		"http://127.0.0.1:8080/path": "127.0.0.1:8080",
		"http://[::1]:80/":           "[::1]",
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		assert.Equal(t, want, httpfutures.HostOf(u), raw)
	}

	ts := newEchoServer(t)
	tr := newTransport(t, nil, httpfutures.WithAdaptiveHostLimit(8))
	req := get(t, ts.URL+"/x")
	_, err := tr.StartRoundTrip(req).Result()
	require.NoError(t, err)
	assert.NotZero(t, tr.HostStats(httpfutures.HostOf(req.URL)).Limit, "HostStats finds the host by that name")
}

// HostStats tells a default port from the same number on another scheme: https://h.test:80 is
// not http://h.test.
func TestHostStatsKnowsTheScheme(t *testing.T) {
	held := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-held })
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(handler)
	t.Cleanup(secure.Close)
	t.Cleanup(func() {
		select {
		case <-held:
		default:
			close(held)
		}
	})
	// Every name dials one of the two loopback servers: plain for http, TLS for https.
	next := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			if _, port, _ := net.SplitHostPort(addr); port == "80" && addr != "h.test:80" {
				return d.DialContext(ctx, network, plain.Listener.Addr().String())
			}
			return d.DialContext(ctx, network, secure.Listener.Addr().String())
		},
	}
	t.Cleanup(next.CloseIdleConnections)
	// https://h.test:80 dials h.test:80, which the dialer sends to the TLS server; http://p.test
	// dials p.test:80, sent to the plain one.
	tr := newTransport(t, next)
	f1 := tr.StartRoundTrip(get(t, "https://h.test:80/"))
	f2 := tr.StartRoundTrip(get(t, "https://h.test:80/"))
	f3 := tr.StartRoundTrip(get(t, "http://p.test/"))
	require.Eventually(t, func() bool { return tr.Stats().InFlight == 3 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, 2, tr.HostStats("h.test:80").InFlight, "an explicit :80 on https is part of the host")
	assert.Equal(t, 0, tr.HostStats("h.test").InFlight, "https://h.test would be port 443")
	assert.Equal(t, 2, tr.HostStats("https://h.test:80").InFlight, "a URL names its scheme")
	assert.Equal(t, 1, tr.HostStats("p.test").InFlight)
	assert.Equal(t, 1, tr.HostStats("p.test:80").InFlight, "the default port may be given")
	assert.Equal(t, 1, tr.HostStats("http://p.test:80").InFlight)
	close(held)
	for _, f := range []*httpfutures.Future{f1, f2, f3} {
		_, err := f.Result()
		require.NoError(t, err)
	}
}

// A transport's InFlight changes before the Future resolves: a reader who has the result never
// sees the request still in flight, nor, when it retries, still queued.
func TestStatsAgreeWithTheResult(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []httpfutures.Option
	}{
		{"one worker", []httpfutures.Option{httpfutures.WithWorkers(1)}},
		{"eight workers", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTransport(t, noopTransport{}, tc.opts...)
			seen := 0
			for range 20000 {
				f := tr.StartRoundTrip(get(t, "http://h.test/"))
				_, err := f.Result()
				require.NoError(t, err)
				if st := tr.Stats(); st.InFlight != 0 || st.Queued != 0 {
					seen++
				}
			}
			assert.Zero(t, seen, "of 20,000 requests, a resolved one was still counted in flight or queued")
		})
	}
}
