// Command fanout sends N GETs through a Session of W workers and reports the rate: the same
// fan-out as requests-futures' FuturesSession with as_completed, for comparing the two.
//
//	go run ./examples/fanout -url http://127.0.0.1:8080/get -n 20000 -w 8
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
	flag.Parse()
	if *url == "" || *n < 1 || *w < 1 {
		fmt.Fprintln(os.Stderr, "usage: fanout -url URL [-n requests] [-w workers]")
		os.Exit(2)
	}
	s := httpfutures.NewSession(httpfutures.WithWorkers(*w))
	defer s.Close()

	start := time.Now()
	futures := make([]*httpfutures.Future, *n)
	for i := range futures {
		futures[i] = s.Get(*url)
	}
	failed := 0
	for f := range httpfutures.AsCompleted(futures...) {
		resp, err := f.Result()
		if err != nil {
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body) // already in memory: read in the worker
		resp.Body.Close()
	}
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
