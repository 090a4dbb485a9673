package httpfutures_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// echoServer answers every request with its method and path, and counts them.
type echoServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newEchoServer(t testing.TB) *echoServer {
	t.Helper()
	s := &echoServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(s.Close)
	return s
}

// gate is a handler that blocks each request until released, and reports arrivals.
type gate struct {
	arrived chan string
	release chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{arrived: make(chan string, 1000), release: make(chan struct{})}
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.arrived <- r.URL.Path
	select {
	case <-g.release:
	case <-r.Context().Done():
	}
	io.WriteString(w, r.URL.Path)
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// newGateServer starts a server whose handler blocks until the gate opens. The gate opens before
// the server closes, so no test hangs on it.
func newGateServer(t testing.TB) (*httptest.Server, *gate) {
	t.Helper()
	g := newGate()
	ts := httptest.NewServer(g)
	t.Cleanup(ts.Close)
	t.Cleanup(g.open)
	return ts, g
}

// newTransport returns an AsyncTransport closed when the test ends.
func newTransport(t testing.TB, next http.RoundTripper, opts ...httpfutures.Option) *httpfutures.AsyncTransport {
	t.Helper()
	tr := httpfutures.NewTransport(next, opts...)
	t.Cleanup(func() { require.NoError(t, tr.Close()) })
	return tr
}

func newSession(t testing.TB, opts ...httpfutures.Option) *httpfutures.Session {
	t.Helper()
	s := httpfutures.NewSession(opts...)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func get(t testing.TB, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return req
}

func body(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return string(b)
}

// newRedirectChain starts a server on which /r/N redirects to /r/N-1, and /r/0 answers
// "landed". It counts the requests it serves in hits, if not nil.
func newRedirectChain(t testing.TB, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
			return
		}
		io.WriteString(w, "landed")
	}))
	t.Cleanup(ts.Close)
	return ts
}

// newHeadThenTail starts a server that writes "head ", flushes, and writes "tail" once more is
// closed.
func newHeadThenTail(t testing.TB, more <-chan struct{}) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head ")
		w.(http.Flusher).Flush()
		<-more
		io.WriteString(w, "tail")
	}))
	t.Cleanup(ts.Close)
	return ts
}
