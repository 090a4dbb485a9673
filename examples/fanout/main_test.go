package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

func TestFanout(t *testing.T) {
	var hits, inflight, most atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		now := inflight.Add(1)
		defer inflight.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		w.Write([]byte(`{"args":{}}`))
	}))
	defer ts.Close()

	for _, tc := range []struct {
		name        string
		outstanding int
		most        int64 // requests the server may see at once
	}{
		{"all at once", 0, 8},
		{"more outstanding than requests", 100, 8},
		{"window", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits.Store(0)
			most.Store(0)
			s := httpfutures.NewSession(httpfutures.WithWorkers(8))
			defer s.Close()
			assert.Zero(t, fanout(s, ts.URL, 40, tc.outstanding))
			assert.EqualValues(t, 40, hits.Load())
			assert.LessOrEqual(t, most.Load(), tc.most)
			if tc.outstanding == 3 {
				assert.EqualValues(t, 3, most.Load(), "the window keeps 3 in flight")
			}
		})
	}
}

func TestFanoutCountsFailures(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens there now: every request is refused

	for _, outstanding := range []int{0, 4} {
		s := httpfutures.NewSession()
		failed := fanout(s, url, 10, outstanding)
		require.NoError(t, s.Close())
		assert.Equal(t, 10, failed, "outstanding=%d", outstanding)
	}
}
