// Command fanout sends N GETs through a Session of W workers and reports the rate: the same
// fan-out as requests-futures' FuturesSession with as_completed, for comparing the two.
//
//	go run ./examples/fanout -url http://127.0.0.1:8080/get -n 20000 -w 8
//
// By default every request is submitted at once and read as it completes. With -outstanding K,
// K requests are kept in flight instead: the oldest is read before the next is sent, as a
// program that makes its requests as it goes does.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/httpfutures/httpfutures"
)

func main() {
	url := flag.String("url", "", "target URL")
	n := flag.Int("n", 2000, "requests")
	w := flag.Int("w", 8, "workers")
	outstanding := flag.Int("outstanding", 0, "requests kept in flight; 0 submits them all at once")
	flag.Parse()
	if *url == "" || *n < 1 || *w < 1 || *outstanding < 0 {
		fmt.Fprintln(os.Stderr, "usage: fanout -url URL [-n requests] [-w workers] [-outstanding K]")
		os.Exit(2)
	}
	s := httpfutures.NewSession(httpfutures.WithWorkers(*w))
	defer s.Close()

	start := time.Now()
	failed := fanout(s, *url, *n, *outstanding)
	d := time.Since(start)
	fmt.Printf("httpfutures n=%d w=%d %.3fs %.0f req/s", *n, *w, d.Seconds(), float64(*n)/d.Seconds())
	if failed > 0 {
		fmt.Printf(" (%d failed)", failed)
	}
	fmt.Println()
	if failed == *n {
		os.Exit(1)
	}
}

// fanout sends n GETs to url through s, with outstanding of them in flight (all of them if 0),
// and returns how many failed.
func fanout(s *httpfutures.Session, url string, n, outstanding int) (failed int) {
	read := func(f *httpfutures.Future) {
		resp, err := f.Result()
		if err != nil {
			failed++
			return
		}
		io.Copy(io.Discard, resp.Body) // already in memory: read in the worker
		resp.Body.Close()
	}
	if outstanding == 0 || outstanding >= n {
		futures := make([]*httpfutures.Future, n)
		for i := range futures {
			futures[i] = s.Get(url)
		}
		for f := range httpfutures.AsCompleted(futures...) {
			read(f)
		}
		return failed
	}
	ring := make([]*httpfutures.Future, outstanding)
	for i := range n {
		if f := ring[i%outstanding]; f != nil {
			read(f)
		}
		ring[i%outstanding] = s.Get(url)
	}
	for i := range outstanding {
		read(ring[(n+i)%outstanding])
	}
	return failed
}
