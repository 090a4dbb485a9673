package compat_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpfutures/httpfutures"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// item is the JSON the servers answer with.
type item struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// api is a loopback JSON API: /items/N answers item N, /flaky/K answers 503 to its first K
// requests, /moved/N redirects to /items/N. It counts the requests of each path.
type api struct {
	*httptest.Server
	mu       sync.Mutex
	hits     map[string]int // requests by path
	inflight int            // requests being served
	peak     int            // the most served at once
}

func newAPI(t testing.TB, secure bool) *api {
	t.Helper()
	a := &api{hits: make(map[string]int)}
	h := http.HandlerFunc(a.serve)
	if secure {
		a.Server = httptest.NewTLSServer(h)
	} else {
		a.Server = httptest.NewServer(h)
	}
	t.Cleanup(a.Close)
	return a
}

func (a *api) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.hits[r.URL.Path]++
	n := a.hits[r.URL.Path]
	a.inflight++
	a.peak = max(a.peak, a.inflight)
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inflight--
		a.mu.Unlock()
	}()
	time.Sleep(time.Millisecond) // long enough for requests to overlap
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	arg := 0
	if len(parts) == 2 {
		arg, _ = strconv.Atoi(parts[1])
	}
	switch parts[0] {
	case "items":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(item{ID: arg, Name: fmt.Sprintf("item %d", arg)})
	case "flaky":
		if n <= arg {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(item{ID: arg, Name: "recovered"})
	case "moved":
		http.Redirect(w, r, fmt.Sprintf("/items/%d", arg), http.StatusFound)
	default:
		http.NotFound(w, r)
	}
}

// maxConcurrent returns the most requests the server served at once.
func (a *api) maxConcurrent() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.peak
}

// count returns how many requests path had.
func (a *api) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits[path]
}

// trusting returns a transport that trusts a's certificate, as a user configures the transport
// under the AsyncTransport.
func (a *api) trusting() *http.Transport {
	pool := x509.NewCertPool()
	pool.AddCert(a.Certificate())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return tr
}

// newTransport returns an AsyncTransport over next, closed when the test ends, with what it
// leaked collected first so that no connection outlives the test.
func newTransport(t testing.TB, next http.RoundTripper, opts ...httpfutures.Option) *httpfutures.AsyncTransport {
	t.Helper()
	tr := httpfutures.NewTransport(next, opts...)
	t.Cleanup(func() {
		require.Eventually(t, func() bool {
			runtime.GC()
			return tr.Stats().Bodies == 0
		}, 5*time.Second, 10*time.Millisecond, "every body is closed or collected")
		require.NoError(t, tr.Close())
	})
	return tr
}
