package loadgen

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stubTransport answers every request with 200 after rtt, or after slowRTT for the calls whose
// number (from 0) is in slow, and notes when each call came.
type stubTransport struct {
	rtt, slowRTT time.Duration
	slow         map[int]bool

	mu    sync.Mutex
	calls []time.Time
}

func (s *stubTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, time.Now())
	s.mu.Unlock()
	d := s.rtt
	if s.slow[n] {
		d = s.slowRTT
	}
	time.Sleep(d)
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{},
		Body:          io.NopCloser(strings.NewReader("ok")),
		ContentLength: 2,
		Request:       req,
	}, nil
}

// In the open model a request is sent at its due time when a worker is free, and measured from
// that time: a stall delays the requests that fell due meanwhile, which leave as soon as a
// worker is free (their latency and send lag show it), and the ones after are sent on the same
// timetable, with latencies of their round trip alone.
//
// It runs in a synctest bubble: time is the fake clock's, exact, so that a request sent on time
// has a latency of exactly its round trip and no send lag.
func TestOpenModelKeepsItsTimetable(t *testing.T) {
	const (
		rtt      = 100 * time.Microsecond
		interval = time.Millisecond // -rate 1000
		n        = 200
	)
	tests := []struct {
		name     string
		workers  int
		slow     []int
		slowRTT  time.Duration
		recovers int // the requests from this one on are sent on time
	}{
		{"on time", 1, nil, 0, 0},
		{"slow first response", 1, []int{0}, 5500 * time.Microsecond, 6},
		{"all workers stalled mid-run", 2, []int{50, 51}, 30 * time.Millisecond, 82},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				stub := &stubTransport{rtt: rtt, slowRTT: tt.slowRTT, slow: map[int]bool{}}
				for _, i := range tt.slow {
					stub.slow[i] = true
				}
				a, err := New(Config{Targets: exampleTargets(t), Rate: ConstantRate(1000), Requests: n, MaxWorkers: tt.workers, Transport: stub, Client: ClientConfig{Redirects: 10}})
				require.NoError(t, err)
				start := time.Now()

				r := a.Run(t.Context())

				require.Equal(t, uint64(n), r.Requests)
				require.Len(t, stub.calls, n)
				for i := tt.recovers; i < n; i++ {
					require.Equal(t, start.Add(time.Duration(i)*interval), stub.calls[i],
						"request %d is sent on the timetable", i)
				}
				assert.Equal(t, rtt, r.Latencies.Min)
				assert.InEpsilon(t, rtt, r.Latencies.P50, 0.001)
				var late uint64
				var lagMax time.Duration
				for i, c := range stub.calls {
					lag := c.Sub(start.Add(time.Duration(i) * interval))
					lagMax = max(lagMax, lag)
					if lag >= lateAfter {
						late++
					}
				}
				assert.Equal(t, late, r.Sent.Late, "the requests due during the stall were sent late")
				assert.Equal(t, lagMax, r.Sent.LagMax)
				assert.Equal(t, uint64(0), r.Sent.Dropped)
				if tt.slow != nil {
					assert.Equal(t, tt.slowRTT, r.Latencies.Max, "the slowest is the slow round trip itself")
					assert.Positive(t, late)
				} else {
					assert.Equal(t, time.Duration(0), r.Sent.LagMax)
				}
			})
		})
	}
}

// The run ends at its duration: what fell due and found no worker by then is dropped, not sent
// afterwards, and the requests in flight are let finish.
func TestOpenModelDurationBoundsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The first request holds the only worker for 1s: the 99 due after it cannot be sent.
		stub := &stubTransport{rtt: rtt(), slowRTT: time.Second, slow: map[int]bool{0: true}}
		a, err := New(Config{Targets: exampleTargets(t), Rate: ConstantRate(1000), Duration: 100 * time.Millisecond, MaxWorkers: 1, Transport: stub})
		require.NoError(t, err)
		start := time.Now()

		r := a.Run(t.Context())

		assert.Equal(t, time.Second, time.Since(start), "the run ends when the one in flight does")
		assert.Len(t, stub.calls, 1)
		assert.Equal(t, uint64(1), r.Requests)
		assert.Equal(t, uint64(99), r.Sent.Dropped)
		assert.Equal(t, uint64(100), r.Asked)
		assert.Equal(t, "the workers: at the server's mean latency of 1s, 1 workers send at most 1 req/s, below the 1000 req/s asked; 1200 workers (-max-workers) would keep up", r.Bottleneck)
	})
}

func rtt() time.Duration { return 100 * time.Microsecond }

func TestTargeterWeights(t *testing.T) {
	var ts []*Target
	for _, u := range []string{"http://a.test/", "http://b.test/", "http://c.test/"} {
		tgt, err := NewTarget(u)
		require.NoError(t, err)
		ts = append(ts, tgt)
	}
	ts[0].Weight = 3
	tg, err := newTargeter(ts)
	require.NoError(t, err)
	var got []string
	for i := range uint64(10) {
		req, tgt, u := tg.request(i, t.Context())
		assert.Equal(t, tgt.URL, req.URL.String())
		assert.Equal(t, tgt.URL, u)
		got = append(got, req.URL.Host[:1])
	}
	// Spread out, in a cycle of 5: a three times, b and c once each.
	assert.Equal(t, []string{"a", "b", "a", "c", "a", "a", "b", "a", "c", "a"}, got)
}

// The closed model starts no more users than it has requests to send: each is a worker of the
// transport, started with the run.
func TestClosedModelUsersAtMostN(t *testing.T) {
	a, err := New(Config{Targets: exampleTargets(t), Requests: 10, Workers: 1000, Transport: http.DefaultTransport})
	require.NoError(t, err)
	defer a.tr.Close()
	assert.Equal(t, 10, a.workers)
}

// exampleTargets is a GET of http://example.test/.
func exampleTargets(t *testing.T) []*Target {
	tgt, err := NewTarget("http://example.test/")
	require.NoError(t, err)
	return []*Target{tgt}
}
