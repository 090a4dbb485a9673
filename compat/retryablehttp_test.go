package compat_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

// go-retryablehttp, above an AsyncTransport (its client's transport) and below one (its
// RoundTripper as the transport the AsyncTransport sends with).

// newRetryClient returns a retryablehttp.Client over tr that retries fast and logs nothing.
func newRetryClient(tr http.RoundTripper) *retryablehttp.Client {
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: tr}
	rc.Logger = nil
	rc.RetryWaitMin, rc.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	return rc
}

// decode reads an item from resp and closes its body.
func decode(t testing.TB, resp *http.Response) item {
	t.Helper()
	defer resp.Body.Close()
	var v item
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v
}

func TestRetryableHTTPJSON(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil)
	resp, err := newRetryClient(tr).Get(a.URL + "/items/3")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, item{ID: 3, Name: "item 3"}, decode(t, resp))
}

// A caller of go-retryablehttp that drops its responses unclosed: the slots come back as the
// bodies are collected.
func TestRetryableHTTPBodyLeftUnclosed(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil, httpfutures.WithWorkers(2))
	rc := newRetryClient(tr)
	done := make(chan error, 1)
	go func() {
		for i := range 8 {
			if _, err := rc.Get(fmt.Sprintf("%s/items/%d", a.URL, i)); err != nil { // dropped unclosed
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("8 requests whose responses were dropped, on 2 workers, still wait after 30 s: %+v", tr.Stats())
	}
	assert.GreaterOrEqual(t, tr.Stats().LeakedBodies, uint64(6))
}

// Its retries above the AsyncTransport: each attempt is a round trip the transport paces.
func TestRetryableHTTPRetriesAbove(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil, httpfutures.WithRateLimit(rate.Limit(50), 1))
	start := time.Now()
	resp, err := newRetryClient(tr).Get(a.URL + "/flaky/2")
	require.NoError(t, err)
	assert.Equal(t, item{ID: 2, Name: "recovered"}, decode(t, resp))
	assert.Equal(t, 3, a.count("/flaky/2"))
	assert.Equal(t, uint64(3), tr.Stats().Completed, "each attempt a round trip of the transport")
	assert.GreaterOrEqual(t, time.Since(start), 35*time.Millisecond, "three attempts take three tokens of 50/s")
}

// Its RoundTripper below the AsyncTransport: the retries happen within one scheduled request.
func TestRetryableHTTPRetriesBelow(t *testing.T) {
	a := newAPI(t, false)
	rt := &retryablehttp.RoundTripper{Client: newRetryClient(nil)}
	tr := newTransport(t, rt)
	f := tr.StartRoundTrip(mustGet(t, a.URL+"/flaky/2"))
	resp, err := f.Result()
	require.NoError(t, err)
	assert.Equal(t, item{ID: 2, Name: "recovered"}, decode(t, resp))
	assert.Equal(t, 3, a.count("/flaky/2"))
	assert.Equal(t, 1, f.Attempts(), "one round trip of the transport")
}

func TestRetryableHTTPRedirects(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil)
	resp, err := newRetryClient(tr).Get(a.URL + "/moved/4")
	require.NoError(t, err)
	assert.Equal(t, item{ID: 4, Name: "item 4"}, decode(t, resp))
	assert.Equal(t, 1, a.count("/moved/4"))
	assert.Equal(t, 1, a.count("/items/4"))
}

func TestRetryableHTTPTLS(t *testing.T) {
	a := newAPI(t, true)
	tr := newTransport(t, a.trusting())
	resp, err := newRetryClient(tr).Get(a.URL + "/items/8")
	require.NoError(t, err)
	assert.NotNil(t, resp.TLS)
	assert.Equal(t, item{ID: 8, Name: "item 8"}, decode(t, resp))
}

func mustGet(t testing.TB, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return req
}
