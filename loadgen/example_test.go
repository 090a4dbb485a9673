package loadgen_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/httpfutures/httpfutures/loadgen"
)

// An attack of 100 requests from 4 users against a test server, and what its report says.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("id") == "13" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()

	target, err := loadgen.NewTarget(srv.URL + "/items?id={{seq}}")
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := loadgen.New(loadgen.Config{
		Targets:  []*loadgen.Target{target},
		Requests: 100,
		Workers:  4,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := a.Run(context.Background())

	fmt.Println("requests:", r.Requests)
	fmt.Println("status codes:", r.CodesText())
	fmt.Printf("success: %.2f\n", r.Success)
	fmt.Println("errors:", r.Errors)
	fmt.Println("latencies in order:", r.Latencies.Min <= r.Latencies.P50 && r.Latencies.P50 <= r.Latencies.P99 && r.Latencies.P99 <= r.Latencies.Max)
	// Output:
	// requests: 100
	// status codes: 200:99  503:1
	// success: 0.99
	// errors: [503 Service Unavailable]
	// latencies in order: true
}
