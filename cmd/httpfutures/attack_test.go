package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScheduleKeepsItsGrid(t *testing.T) {
	s := newSchedule(1000) // a token every millisecond
	_, ok := s.due(0)
	assert.False(t, ok, "t0 is unknown until the first token is asked for")

	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	// The first token is due when it is asked for; the next ones are asked for late, at
	// irregular times, and early: each is due on the grid from t0 all the same.
	for k, at := range []time.Duration{0, 4 * ms, 4*ms + 10, 4*ms + 20, 4 * ms, 250 * ms, 250 * ms} {
		due, err := s.Reserve(context.Background(), "example.com", t0.Add(at))
		require.NoError(t, err)
		assert.Equal(t, t0.Add(time.Duration(k)*ms), due, "token %d", k)
	}
	for _, i := range []int{0, 1, 6, 7, 5000} {
		due, ok := s.due(i)
		assert.True(t, ok)
		assert.Equal(t, t0.Add(time.Duration(i)*ms), due, "request %d", i)
	}
	assert.Equal(t, t0.Add(time.Second/3), newScheduleAt(3, t0).at(t0, 1), "a fractional interval")
}

// newScheduleAt is a schedule of r tokens per second whose first token was asked for at t0.
func newScheduleAt(r float64, t0 time.Time) *schedule {
	s := newSchedule(r)
	_, _ = s.Reserve(context.Background(), "", t0)
	return s
}

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

// In the open model, a request is measured from its place in the schedule that starts with the
// first request, and it is sent then too: a slow start or a stall delays only the requests that
// fell due meanwhile, which leave as soon as a worker is free, and the ones after are sent on
// that same schedule, with latencies of their round trip alone.
//
// It runs in a synctest bubble: time is the fake clock's, exact, so that a request sent on time
// has a latency of exactly its round trip.
func TestOpenModelScheduleSurvivesDisruptions(t *testing.T) {
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
		// The first response takes a few milliseconds, less than the scheduler counts as the
		// workers being busy: the requests due meanwhile were no reason to restart the schedule.
		{"slow first response", 1, []int{0}, 5 * time.Millisecond, 6},
		// All the workers are held at the start, long enough for the scheduler to count it.
		{"all workers slow at the start", 2, []int{0, 1}, 30 * time.Millisecond, 32},
		{"all workers stalled mid-run", 2, []int{50, 51}, 30 * time.Millisecond, 82},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg, err := parseArgs([]string{"-rate", "1000", "-n", strconv.Itoa(n), "-c", strconv.Itoa(tt.workers), "http://example.test/"}, io.Discard)
				require.NoError(t, err)
				stub := &stubTransport{rtt: rtt, slowRTT: tt.slowRTT, slow: map[int]bool{}}
				for _, i := range tt.slow {
					stub.slow[i] = true
				}
				a, err := newAttackerOn(cfg, []string{cfg.target}, stub)
				require.NoError(t, err)

				r := a.run(t.Context(), io.Discard)

				require.Equal(t, uint64(n), r.Requests)
				require.Len(t, stub.calls, n)
				t0 := stub.calls[0]
				for i := tt.recovers; i < n; i++ {
					require.Equal(t, t0.Add(time.Duration(i)*interval), stub.calls[i],
						"request %d is sent on the schedule from the first request", i)
				}
				// Most requests came after the disruption: their latency is their round trip.
				assert.Equal(t, rtt, r.Latencies.Min)
				assert.InDelta(t, rtt, r.Latencies.P50, float64(rtt)/100)
				assert.Equal(t, tt.slowRTT, r.Latencies.Max, "the slowest is the slow round trip itself")
			})
		})
	}
}
