package httpfutures_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// A body read into memory is whole whatever its size, with its length known or not: around the
// sizes of the buffers kept beside their reader, and past them. A response hook reads it, and
// the caller reads it again from the start.
func TestBodySizes(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		} else {
			w.(http.Flusher).Flush() // no length: the body is chunked
		}
		w.Write(payload(n))
	}))
	t.Cleanup(ts.Close)
	var hooked []byte
	tr := newTransport(t, nil, httpfutures.WithHooks(httpfutures.Hooks{Response: func(resp *http.Response) error {
		var err error
		hooked, err = io.ReadAll(resp.Body)
		return err
	}}), httpfutures.WithWorkers(1))
	for _, n := range []int{0, 1, 23, 24, 25, 39, 40, 41, 87, 88, 89, 471, 472, 473, 983, 984, 985, 5000} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d bytes, chunked %v", n, chunked), func(t *testing.T) {
				url := fmt.Sprintf("%s/?n=%d", ts.URL, n)
				if chunked {
					url += "&chunked=1"
				}
				resp, err := tr.StartRoundTrip(get(t, url)).Result()
				require.NoError(t, err)
				assert.Equal(t, payload(n), hooked, "the hook reads the body")
				got, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				assert.Equal(t, payload(n), got, "the caller reads it from the start")
				assert.NoError(t, resp.Body.Close())
			})
		}
	}
}

// payload is n bytes that differ from one position to the next.
func payload(n int) []byte {
	b := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), n/36+1)[:n]
	if n == 0 {
		return []byte{}
	}
	return b
}

// A small body costs one allocation beside its response, its reader and buffer together.
func TestSmallBodyAllocations(t *testing.T) {
	body := payload(40)
	rt := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, ContentLength: int64(len(body)), Body: io.NopCloser(bytes.NewReader(body)), Request: req}, nil
	})
	tr := newTransport(t, rt, httpfutures.WithWorkers(1))
	req := get(t, "http://noop.invalid/")
	tr.StartRoundTrip(req).Result() // start the workers
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := tr.StartRoundTrip(req).Result(); err != nil {
			t.Fatal(err)
		}
	})
	// The Future, the request under its context, the response, its reader and NopCloser: what
	// remains is the body in memory.
	assert.LessOrEqual(t, allocs, 6.0)
}
