package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/httpfutures/httpfutures/loadgen"
)

// benchServer answers with a small JSON body, as the peer server's /get does.
func benchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"args":{},"url":"/get"}`+"\n")
	}))
	b.Cleanup(srv.Close)
	return srv
}

// attackN runs the attack args describe, which sends b.N requests, timed from its start, and
// returns its report; it fails b unless every request succeeded.
func attackN(b *testing.B, args ...string) *loadgen.Report {
	cfg, err := parseArgs(args, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	a, err := loadgen.New(cfg.Config)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	r := a.Run(b.Context())
	if r.Successes != uint64(b.N) {
		b.Fatalf("%d successes of %d", r.Successes, b.N)
	}
	return r
}

// BenchmarkClosedModel is the closed model of -c 8 users, b.N requests, beside hey's loop: 8
// goroutines each sending with an http.Client and reading the body to the end.
func BenchmarkClosedModel(b *testing.B) {
	srv := benchServer(b)
	b.Run("httpfutures", func(b *testing.B) {
		attackN(b, "-n", strconv.Itoa(b.N), "-c", "8", srv.URL+"/get")
	})
	b.Run("hey-loop", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ReportAllocs()
		b.ResetTimer()
		for range 8 {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					req, _ := http.NewRequest(http.MethodGet, srv.URL+"/get", nil)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
	})
}

// BenchmarkOpenModel runs the open model at 5,000 requests per second for b.N requests, for
// its profile: the pacer's waits, the hand-over to the workers and the recording.
func BenchmarkOpenModel(b *testing.B) {
	srv := benchServer(b)
	r := attackN(b, "-n", strconv.Itoa(b.N), "-rate", "5000", srv.URL+"/get")
	b.ReportMetric(float64(r.Sent.LagP50), "lag-p50-ns")
}
