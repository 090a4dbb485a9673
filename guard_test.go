package httpfutures_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/httpfutures/httpfutures"
)

// A host's guard has counted an attempt by the time its Future resolves: what a caller reads of
// the host once it has the result, or an Observer once told Resolved, includes that attempt.
func TestGuardCountsAnAttemptBeforeItsFutureResolves(t *testing.T) {
	// requests sends n requests to srv in turn, with a worker and opt, calling each(i) before the
	// i-th, and returns what was read of the host for each: in Observer.Resolved, and after Result.
	requests := func(t *testing.T, srv *faultServer, n int, opt httpfutures.Option, each func(i int)) (told, after []httpfutures.HostStats) {
		var tr *httpfutures.AsyncTransport
		read := make(chan httpfutures.HostStats, 1)
		obs := httpfutures.Observer{Resolved: func(*httpfutures.Future, httpfutures.Outcome) {
			read <- tr.HostStats(srv.URL)
		}}
		tr = newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithObserver(obs), opt)
		for i := range n {
			each(i)
			if resp, err := tr.StartRoundTrip(get(t, srv.URL)).Result(); err == nil {
				resp.Body.Close()
			}
			after = append(after, tr.HostStats(srv.URL))
			told = append(told, <-read)
		}
		return told, after
	}

	t.Run("circuit breaker", func(t *testing.T) {
		srv := newFaultServer(t, answer503)
		told, after := requests(t, srv, 6,
			httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{MinRequests: 5, Cooldown: time.Minute}), func(int) {})
		for i := range told {
			want := httpfutures.CircuitClosed
			if i >= 4 {
				want = httpfutures.CircuitOpen // opened by the fifth request's 503
			}
			assert.Equal(t, want, told[i].Circuit, "told request %d resolved", i+1)
			assert.Equal(t, want, after[i].Circuit, "after request %d's result", i+1)
		}
		assert.Equal(t, int64(5), srv.hits.Load(), "the sixth refused, unsent")
	})

	t.Run("adaptive throttle", func(t *testing.T) {
		// K 1.5: 10 accepts let 15 requests go unthrottled; the sixteenth, refused as the five
		// before it, makes the probability (16 − 15) / 17.
		srv := newFaultServer(t, answerOK)
		told, after := requests(t, srv, 16,
			httpfutures.WithAdaptiveThrottle(httpfutures.AdaptiveThrottle{K: 1.5}), func(i int) {
				if i == 10 {
					srv.set(answer503)
				}
			})
		want := make([]float64, 16)
		want[15] = 1.0 / 17
		for i := range want {
			assert.InDelta(t, want[i], told[i].Throttle, 1e-12, "told request %d resolved", i+1)
			assert.InDelta(t, want[i], after[i].Throttle, 1e-12, "after request %d's result", i+1)
		}
		assert.Equal(t, int64(16), srv.hits.Load(), "none rejected while the probability was zero")
	})
}
