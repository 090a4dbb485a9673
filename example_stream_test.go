package httpfutures_test

import (
	"context"
	"fmt"
	"iter"
	"slices"

	"github.com/httpfutures/httpfutures"
)

// pages yields the URLs of n pages of an API, each made only when it is pulled: n could be a
// million, and would cost no more memory than ten.
func pages(base string, n int) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range n {
			if !yield(fmt.Sprintf("%s/get?page=%d", base, i)) {
				return
			}
		}
	}
}

// Stream is the way to fan out many requests: it keeps a window of them outstanding, pulling the
// next only as one is yielded, and yields each Future as it resolves. A URL that does not parse
// is yielded too, as a Future failed with ErrInvalidRequest.
func ExampleSession_Stream() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	urls := func(yield func(string) bool) {
		for u := range pages(ts.URL, 10) {
			if !yield(u) {
				return
			}
		}
		yield("http://[::1]:namedport/")
	}
	var done []string
	for future := range session.Stream(context.Background(), httpfutures.GetRequests(urls), 4) {
		resp, err := future.Result()
		if err != nil {
			fmt.Println("failed:", err)
			continue
		}
		resp.Body.Close()
		done = append(done, future.Request().URL.Query().Get("page"))
	}
	slices.Sort(done) // they came in the order they completed
	fmt.Println("pages:", done)

	// Output:
	// failed: httpfutures: invalid request: parse "http://[::1]:namedport/": invalid port ":namedport" after host
	// pages: [0 1 2 3 4 5 6 7 8 9]
}

// StreamOrdered yields the Futures in the order the requests were pulled, as a pool's map does.
func ExampleSession_StreamOrdered() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	for future := range session.StreamOrdered(context.Background(), httpfutures.GetRequests(pages(ts.URL, 5)), 0) {
		resp, err := future.Result()
		if err != nil {
			fmt.Println("failed:", err)
			continue
		}
		resp.Body.Close()
		fmt.Println("page", future.Request().URL.Query().Get("page"), resp.Status)
	}

	// Output:
	// page 0 200 OK
	// page 1 200 OK
	// page 2 200 OK
	// page 3 200 OK
	// page 4 200 OK
}

// StreamJSON decodes each response into a value of your type, in the workers, and yields them
// as they complete; breaking out of the loop cancels the requests still outstanding.
func ExampleStreamJSON() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	type page struct {
		Args struct {
			Page string `json:"page"`
		} `json:"args"`
	}
	var got []string
	for future := range httpfutures.StreamJSON[page](context.Background(), session, httpfutures.GetRequests(pages(ts.URL, 100)), 0) {
		v, err := future.Value()
		if err != nil {
			fmt.Println("failed:", err)
			continue
		}
		got = append(got, v.Args.Page)
		if len(got) == 3 {
			break // enough: what is outstanding is canceled, and nothing more is pulled
		}
	}
	fmt.Println(len(got), "pages")

	// Output:
	// 3 pages
}
