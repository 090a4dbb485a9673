package httpfutures_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/httpfutures/httpfutures"
)

// newHTTPBin starts a loopback stand-in for httpbin.org with the endpoints the examples use:
//
//	/get               {"args": {...the query...}, "url": "..."}
//	/delay/N           the same, after N×10ms (httpbin waits N seconds)
//	/status/N          an empty response with status N
//	/bytes/N           N bytes
//	/cookies           {"cookies": {...the request's cookies...}}
//	/cookies/set?k=v   sets the cookies of the query, and redirects to /cookies
//
// Its "url" is the path and query only: httpbin gives the whole URL, whose random port would
// make the output of the examples change from run to run.
func newHTTPBin() *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		writeBinJSON(w, binRequest(r))
	})
	mux.HandleFunc("GET /delay/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 {
			http.Error(w, "bad delay", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(time.Duration(n) * 10 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		writeBinJSON(w, binRequest(r))
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 100 || code > 999 {
			http.Error(w, "bad status", http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyN(w, binZeros{}, n)
	})
	mux.HandleFunc("GET /cookies", func(w http.ResponseWriter, r *http.Request) {
		cookies := make(map[string]string)
		for _, c := range r.Cookies() {
			cookies[c.Name] = c.Value
		}
		writeBinJSON(w, map[string]any{"cookies": cookies})
	})
	mux.HandleFunc("GET /cookies/set", func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.URL.Query() {
			http.SetCookie(w, &http.Cookie{Name: k, Value: v[0], Path: "/"})
		}
		http.Redirect(w, r, "/cookies", http.StatusFound)
	})
	return httptest.NewServer(mux)
}

// binRequest is httpbin's description of a request: its query ("args"), with a string for a
// key given once and a list for a key given more than once, and its URL.
func binRequest(r *http.Request) map[string]any {
	args := make(map[string]any)
	for k, v := range r.URL.Query() {
		if len(v) == 1 {
			args[k] = v[0]
		} else {
			args[k] = v
		}
	}
	return map[string]any{"args": args, "url": r.URL.RequestURI()}
}

func writeBinJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// binZeros reads as an endless run of zero bytes.
type binZeros struct{}

func (binZeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A Session's methods return a Future at once, and the request runs in the background. This is
// requests-futures' first example: two requests that run one after the other with http.Client,
// and at the same time with a Session.
func Example() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	// The first request is started in the background...
	futureOne := session.Get(ts.URL + "/get")
	// ...and the second is started at once, without waiting for the first.
	futureTwo := session.Get(ts.URL + "/get?foo=bar")

	// Wait for the first request to complete, if it hasn't already. An error, such as a
	// refused connection, is returned here rather than by Get.
	responseOne, err := futureOne.Result()
	if err != nil {
		log.Fatal(err)
	}
	// The body was read into memory in the background: reading it does no I/O, and closing
	// it is optional.
	bodyOne, _ := io.ReadAll(responseOne.Body)
	fmt.Println("response one status:", responseOne.StatusCode)
	fmt.Println(string(bodyOne))

	// Wait for the second request to complete, if it hasn't already.
	responseTwo, err := futureTwo.Result()
	if err != nil {
		log.Fatal(err)
	}
	bodyTwo, _ := io.ReadAll(responseTwo.Body)
	fmt.Println("response two status:", responseTwo.StatusCode)
	fmt.Println(string(bodyTwo))

	// Output:
	// response one status: 200
	// {"args":{},"url":"/get"}
	// response two status: 200
	// {"args":{"foo":"bar"},"url":"/get?foo=bar"}
}

// A Session runs 8 requests at a time by default. WithWorkers changes that: this is
// FuturesSession(max_workers=10).
func ExampleWithWorkers() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession(httpfutures.WithWorkers(10))
	defer session.Close()

	futures := make([]*httpfutures.Future, 20)
	for i := range futures {
		futures[i] = session.Get(ts.URL + "/delay/1") // ten at a time
	}
	if err := httpfutures.WaitAll(context.Background(), futures...); err != nil {
		log.Fatal(err)
	}
	fmt.Println("completed:", session.Transport().Stats().Completed)

	// Output:
	// completed: 20
}

// A Scheduler is the pool of workers, with its limits. Sessions that share one share its workers
// and its limits: this is passing the same executor to several FuturesSessions.
func ExampleWithScheduler() {
	ts := newHTTPBin()
	defer ts.Close()

	sched := httpfutures.NewScheduler(httpfutures.WithWorkers(10))
	defer sched.Close() // after the sessions: closing a session leaves its Scheduler running

	search := httpfutures.NewSession(httpfutures.WithScheduler(sched))
	defer search.Close()
	crawl := httpfutures.NewSession(httpfutures.WithScheduler(sched))
	defer crawl.Close()

	f1 := search.Get(ts.URL + "/get?q=gopher")
	f2 := crawl.Get(ts.URL + "/get?page=1")
	for _, f := range []*httpfutures.Future{f1, f2} {
		resp, err := f.Result()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(resp.StatusCode, resp.Request.URL.RequestURI())
	}

	// Output:
	// 200 /get?q=gopher
	// 200 /get?page=1
}

// A Session can wrap an existing http.Client, as FuturesSession(session=my_session) does: its
// cookie jar, redirect policy and timeout keep working, and the client itself is not modified.
func ExampleWithClient() {
	ts := newHTTPBin()
	defer ts.Close()

	jar, err := cookiejar.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}

	session := httpfutures.NewSession(httpfutures.WithClient(client))
	defer session.Close()

	// The server sets a cookie and redirects to a page that shows the cookies it was sent.
	resp, err := session.Get(ts.URL + "/cookies/set?flavor=oatmeal").Result()
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Request.URL.Path, string(body))

	// The cookie is in the client's jar.
	u, _ := url.Parse(ts.URL)
	for _, c := range jar.Cookies(u) {
		fmt.Println(c.Name, c.Value)
	}

	// Output:
	// /cookies {"cookies":{"flavor":"oatmeal"}}
	// flavor oatmeal
}

// AsCompleted yields futures as they resolve. The response names its request, so the URL that was
// asked for needs no extra bookkeeping.
func ExampleAsCompleted() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	var futures []*httpfutures.Future
	for i := range 3 {
		futures = append(futures, session.Get(fmt.Sprintf("%s/get?i=%d", ts.URL, i)))
	}

	var lines []string
	for future := range httpfutures.AsCompleted(futures...) {
		resp, err := future.Result()
		if err != nil {
			log.Fatal(err)
		}
		var content map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&content); err != nil {
			log.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("url: %s content: %v", resp.Request.URL.RequestURI(), content))
	}
	slices.Sort(lines) // the completion order changes from run to run: sorted, to be shown here
	for _, line := range lines {
		fmt.Println(line)
	}

	// Output:
	// url: /get?i=0 content: map[args:map[i:0] url:/get?i=0]
	// url: /get?i=1 content: map[args:map[i:1] url:/get?i=1]
	// url: /get?i=2 content: map[args:map[i:2] url:/get?i=2]
}

// To tie extra information to a request, key it by its Future: Python sets an attribute on the
// future; in Go a *Future is a map key.
func Example_tieInformation() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	index := make(map[*httpfutures.Future]int)
	var futures []*httpfutures.Future
	for i := range 3 {
		future := session.Get(ts.URL + "/get")
		index[future] = i
		futures = append(futures, future)
	}

	results := make([]string, len(futures))
	for future := range httpfutures.AsCompleted(futures...) {
		resp, err := future.Result()
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		i := index[future]
		results[i] = fmt.Sprintf("i: %d content: %s", i, body)
	}
	for _, r := range results { // in the order of i, whatever the order of completion
		fmt.Println(r)
	}

	// Output:
	// i: 0 content: {"args":{},"url":"/get"}
	// i: 1 content: {"args":{},"url":"/get"}
	// i: 2 content: {"args":{},"url":"/get"}
}

// Close cancels the requests still queued when their responses are no longer needed: they fail
// with ErrClosed without being sent. Requests already running are canceled (Shutdown would let
// them finish). Python's with statement is a deferred Close in Go.
func ExampleSession_Close() {
	ts := newHTTPBin()
	defer ts.Close()

	// One worker, and one request a second to the host: the first request goes at once, and
	// the two slow ones wait their turn in the queue.
	session := httpfutures.NewSession(httpfutures.WithWorkers(1), httpfutures.WithHostRateLimit(1, 1))
	future := session.Get(ts.URL + "/get")
	future2 := session.Get(ts.URL + "/delay/10")
	future3 := session.Get(ts.URL + "/delay/10")

	resp, err := future.Result()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status:", resp.StatusCode)

	session.Close() // all that was needed is here: skip the rest
	for _, f := range []*httpfutures.Future{future2, future3} {
		_, err := f.Result()
		fmt.Println(f.Request().URL.Path, "skipped:", errors.Is(err, httpfutures.ErrClosed))
	}

	// Output:
	// status: 200
	// /delay/10 skipped: true
	// /delay/10 skipped: true
}

// AsCompleted iterates over the responses as they come, without preserving the order of the
// requests.
func Example_iterate() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	var futures []*httpfutures.Future
	for i := range 10 {
		futures = append(futures, session.Get(fmt.Sprintf("%s/delay/%d", ts.URL, i%3)))
	}

	var urls []string
	for future := range httpfutures.AsCompleted(futures...) {
		resp, err := future.Result()
		if err != nil {
			log.Fatal(err)
		}
		var content struct{ URL string }
		if err := json.NewDecoder(resp.Body).Decode(&content); err != nil {
			log.Fatal(err)
		}
		urls = append(urls, content.URL)
	}
	slices.Sort(urls) // the completion order changes from run to run: sorted, to be shown here
	fmt.Println(strings.Join(urls, "\n"))

	// Output:
	// /delay/0
	// /delay/0
	// /delay/0
	// /delay/0
	// /delay/1
	// /delay/1
	// /delay/1
	// /delay/2
	// /delay/2
	// /delay/2
}

// Hooks given to a Session run for each of its requests, in the worker, before the Future
// resolves: here the JSON of every response is parsed in the background. (GetJSON does the same
// for one request, into a type of your own.)
func ExampleWithHooks() {
	ts := newHTTPBin()
	defer ts.Close()

	var data sync.Map // *http.Response → its JSON, parsed
	session := httpfutures.NewSession(httpfutures.WithHooks(httpfutures.Hooks{
		Response: func(resp *http.Response) error {
			var v map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				return err // the Future's error
			}
			data.Store(resp, v)
			return nil
		},
	}))
	defer session.Close()

	future := session.Get(ts.URL + "/get?hook=session")
	// Do some other stuff, send some more requests while this one works.
	resp, err := future.Result()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("response status", resp.StatusCode)
	// The data was parsed in the background.
	v, _ := data.LoadAndDelete(resp)
	fmt.Println(v)

	// Output:
	// response status 200
	// map[args:map[hook:session] url:/get?hook=session]
}

// Hooks for one request go in its context. They run after the Session's hooks.
func ExampleContextWithHooks() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	var data map[string]any // written by the hook before the Future resolves
	ctx := httpfutures.ContextWithHooks(context.Background(), httpfutures.Hooks{
		Response: func(resp *http.Response) error {
			return json.NewDecoder(resp.Body).Decode(&data)
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/get", nil)
	if err != nil {
		log.Fatal(err)
	}
	future := session.Do(req)
	// Do some other stuff, send some more requests while this one works.
	resp, err := future.Result()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("response status", resp.StatusCode)
	fmt.Println(data)

	// Output:
	// response status 200
	// map[args:map[] url:/get]
}

// Every Future keeps its timings, so the ElapsedFuturesSession of requests-futures needs no
// counterpart: Timing tells how long the request waited in the queue and how long it ran.
func ExampleFuture_Timing() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	future := session.Get(ts.URL + "/delay/1")
	// Do some other stuff, send some more requests while this one works.
	resp, err := future.Result()
	if err != nil {
		log.Fatal(err)
	}
	elapsed := future.Timing().Total() // QueueWait() + RoundTrip()
	fmt.Println("response status", resp.StatusCode)
	fmt.Println("response elapsed at least 10ms:", elapsed >= 10*time.Millisecond)

	// Output:
	// response status 200
	// response elapsed at least 10ms: true
}

// requests-futures offers a ProcessPoolExecutor for responses so large that the interpreter must
// be cycled to give their memory back. Go needs no process pool: goroutines share one heap, and
// memory that is no longer referenced is reclaimed. What keeps memory low is not buffering the
// large bodies: WithStreaming resolves each Future at the response headers, and the body is read
// as it arrives. A streamed body holds its worker until it is closed.
func ExampleWithStreaming() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession(httpfutures.WithStreaming(true))
	defer session.Close()

	resp, err := session.Get(ts.URL + "/bytes/10485760").Result()
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body) // 32 KiB at a time, never 10 MiB
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("read", n, "bytes")

	// Output:
	// read 10485760 bytes
}

// GetJSON decodes a JSON response into a value of your type, in the background. This is the
// requests-futures quickstart: a few requests at once, each with its error handled on its own.
func ExampleGetJSON() {
	ts := newHTTPBin()
	defer ts.Close()

	session := httpfutures.NewSession()
	defer session.Close()

	type response struct {
		Args map[string]any `json:"args"` // httpbin gives a string, or a list for a repeated key
	}
	urls := []string{
		ts.URL + "/get?id=1",
		ts.URL + "/get?id=2",
		ts.URL + "/get?id=3",
	}
	var futures []*httpfutures.Typed[response]
	for _, u := range urls {
		futures = append(futures, httpfutures.GetJSON[response](session, u))
	}
	for i, future := range futures {
		v, err := future.Value() // waits until the request completes
		if err != nil {
			fmt.Printf("Request %d failed: %v\n", i+1, err)
			continue
		}
		resp, _ := future.Result()
		fmt.Printf("Request %d Status: %d\n", i+1, resp.StatusCode)
		fmt.Printf("Request %d Content: %v\n", i+1, v.Args)
	}

	// Output:
	// Request 1 Status: 200
	// Request 1 Content: map[id:1]
	// Request 2 Status: 200
	// Request 2 Content: map[id:2]
	// Request 3 Status: 200
	// Request 3 Content: map[id:3]
}
