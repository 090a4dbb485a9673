package httpfutures_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/httpfutures/httpfutures"
)

// unavailableOnce answers 503 to the first request and 200 to the others.
func unavailableOnce() *httptest.Server {
	var n atomic.Int32
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
}

// A failed attempt goes back through the scheduler: paced, limited and counted like any request,
// with no worker held while it waits.
func ExampleWithRetry() {
	server := unavailableOnce()
	defer server.Close()

	t := httpfutures.NewTransport(nil, httpfutures.WithRetry(httpfutures.RetryPolicy{
		CheckRetry: retryablehttp.DefaultRetryPolicy,
		Backoff:    retryablehttp.DefaultBackoff,
		MinWait:    10 * time.Millisecond,
	}))
	defer t.Close()

	req, _ := http.NewRequest(http.MethodGet, server.URL, nil)
	f := t.StartRoundTrip(req)
	resp, err := f.Result()
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), "after", f.Attempts(), "attempts")
	fmt.Println("retries:", t.Stats().Retries)
	// Output:
	// 200 ok after 2 attempts
	// retries: 1
}

// go-retryablehttp's client above an AsyncTransport: every attempt it makes passes the
// scheduler's limits.
func ExampleNewTransport_retryablehttpAbove() {
	server := unavailableOnce()
	defer server.Close()

	t := httpfutures.NewTransport(nil, httpfutures.WithRateLimit(100, 1))
	defer t.Close()
	client := retryablehttp.NewClient()
	client.HTTPClient = &http.Client{Transport: t}
	client.RetryWaitMin = 10 * time.Millisecond
	client.Logger = nil

	resp, err := client.Get(server.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, "with", t.Stats().Completed, "round trips through the scheduler")
	// Output: 200 with 2 round trips through the scheduler
}

// An AsyncTransport over go-retryablehttp's RoundTripper: the Future resolves with the final
// attempt.
func ExampleNewTransport_retryablehttpBelow() {
	server := unavailableOnce()
	defer server.Close()

	client := retryablehttp.NewClient()
	client.RetryWaitMin = 10 * time.Millisecond
	client.Logger = nil
	t := httpfutures.NewTransport(&retryablehttp.RoundTripper{Client: client})
	defer t.Close()
	defer client.HTTPClient.CloseIdleConnections()

	req, _ := http.NewRequest(http.MethodGet, server.URL, nil)
	resp, err := t.StartRoundTrip(req).Result()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.StatusCode)
	// Output: 200
}
