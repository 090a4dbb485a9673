package redislimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/redislimit"
)

// outcome is one request of a driver: when it was submitted and done, and its error.
type outcome struct {
	submitted, done time.Time
	err             error
}

// driver keeps outstanding requests to url in flight on tr until stopped; a request that fails
// holds its place for pause before the next is sent, as a client backing off would.
type driver struct {
	stopc chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex
	outcomes []outcome
}

func drive(t *testing.T, tr *httpfutures.AsyncTransport, url string, outstanding int, pause time.Duration) *driver {
	d := &driver{stopc: make(chan struct{})}
	sem := make(chan struct{}, outstanding)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			select {
			case <-d.stopc:
				return
			case sem <- struct{}{}:
			}
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if !assert.NoError(t, err) {
				return
			}
			o := outcome{submitted: time.Now()}
			f := tr.StartRoundTrip(req)
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				resp, err := f.Result()
				if err == nil {
					resp.Body.Close()
				}
				o.done, o.err = time.Now(), err
				d.mu.Lock()
				d.outcomes = append(d.outcomes, o)
				d.mu.Unlock()
				if err != nil && pause > 0 {
					select {
					case <-d.stopc:
					case <-time.After(pause):
					}
				}
				<-sem
			}()
		}
	}()
	return d
}

// stop stops submitting; the requests in flight finish, or fail when their transport closes.
func (d *driver) stop() { close(d.stopc) }

// between returns the outcomes done in [from, to).
func (d *driver) between(from, to time.Time) []outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []outcome
	for _, o := range d.outcomes {
		if !o.done.Before(from) && o.done.Before(to) {
			out = append(out, o)
		}
	}
	return out
}

// earlier returns the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// sleepUntil waits for real time to reach t: the load runs meanwhile.
func sleepUntil(t time.Time) { <-time.After(time.Until(t)) }

func TestRedisKilledMidRun(t *testing.T) {
	const (
		quota = processQuota
		burst = 10
		down  = 700 * time.Millisecond
		// outstanding is how many requests the test keeps in flight.
		outstanding = 32
		// slack is what a machine busy with other work may add to the deadline; far less than
		// the 5 s a go-redis client waits by default for a server that does not answer.
		slack = 250 * time.Millisecond
	)
	lease := redislimit.DefaultLeaseSpan
	rateIn := func(times []time.Time, from, to time.Time) float64 {
		return float64(countIn(times, from, to)) / to.Sub(from).Seconds()
	}
	tests := []struct {
		name  string
		stall bool // stop the server (SIGSTOP) instead of killing it: it is slower than any deadline
		opts  []redislimit.Option
		// whileDown checks the requests done while Redis was down, from when the lease held at
		// the kill had run out, ran being the share of that time the machine ran the process and
		// deadline the Limiter's.
		whileDown func(t *testing.T, outcomes []outcome, sent, ran float64, deadline time.Duration)
	}{
		{"fail closed", false, nil, func(t *testing.T, outcomes []outcome, sent, ran float64, deadline time.Duration) {
			assert.Zero(t, sent, "requests sent per second")
			require.NotEmpty(t, outcomes)
			for _, o := range outcomes {
				var le *httpfutures.LimiterError
				require.ErrorAs(t, o.err, &le)
				require.ErrorIs(t, o.err, redislimit.ErrUnavailable)
				// Queued behind the others, each failed within the deadline of its own.
				assert.Less(t, o.done.Sub(o.submitted), deadline+slack)
			}
		}},
		{"fail closed, server stalled", true, nil, func(t *testing.T, outcomes []outcome, sent, ran float64, deadline time.Duration) {
			assert.Zero(t, sent, "requests sent per second")
			require.NotEmpty(t, outcomes)
			for _, o := range outcomes {
				require.ErrorIs(t, o.err, redislimit.ErrUnavailable)
				assert.Less(t, o.done.Sub(o.submitted), deadline+slack)
			}
		}},
		{"fail open", false, []redislimit.Option{redislimit.WithFailOpen()}, func(t *testing.T, outcomes []outcome, sent, ran float64, deadline time.Duration) {
			require.NotEmpty(t, outcomes)
			for _, o := range outcomes {
				require.NoError(t, o.err)
			}
			assert.Greater(t, sent, quota*ran, "requests flow, unlimited")
		}},
		{"fall back to half the quota", false, []redislimit.Option{redislimit.WithFallback(0.5)}, func(t *testing.T, outcomes []outcome, sent, ran float64, deadline time.Duration) {
			require.NotEmpty(t, outcomes)
			for _, o := range outcomes {
				require.NoError(t, o.err)
			}
			assert.LessOrEqual(t, sent, quota/2*1.1, "requests sent per second")
			assert.GreaterOrEqual(t, sent, quota/2*0.9*ran, "requests sent per second")
		}},
	}
	var rows []string
	for _, busy := range []bool{false, true} {
		// With every core busy, a deadline such a machine keeps: a core may be away longer than
		// the default's 50 ms, and a Limiter failing closed would refuse meanwhile.
		load, deadline := "quiet", redislimit.DefaultDeadline
		if busy {
			load, deadline = "busy cores", 200*time.Millisecond
		}
		for _, tt := range tests {
			t.Run(load+"/"+tt.name, func(t *testing.T) {
				ignore := goleak.IgnoreCurrent()
				red := startRedis(t)
				// No retries: the Limiter's deadline bounds each call, and a retry within it
				// would only add dials while the server is down. A call ends at its deadline, as
				// the package advises: a call made around the restart that ran on to the client's
				// ReadTimeout would keep the Limiter from Redis that long (see TestNetworkCut).
				rdb := redis.NewClient(&redis.Options{Addr: red.addr, MaxRetries: -1, ContextTimeoutEnabled: true})
				srv := newCountingServer(t, nil)
				lim := redislimit.New(rdb, uniqueKey(t), quota, burst, append(tt.opts, redislimit.WithDeadline(deadline))...)
				sends := &sendClock{rt: http.DefaultTransport.(*http.Transport).Clone()}
				// A worker for each request in flight: a server slowed by a busy machine (it
				// shares the process) does not hold back what the Limiter lets go.
				tr := httpfutures.NewTransport(sends, httpfutures.WithLimiter(lim), httpfutures.WithWorkers(outstanding))

				t0 := time.Now()
				killed := t0.Add(time.Second)
				up := killed.Add(down)
				end := up.Add(2 * time.Second)
				if busy {
					busyCores(t, t0, end)
				}
				stalls := watchStalls(t0)
				d := drive(t, tr, srv.URL, outstanding, 0)
				sleepUntil(killed)
				if tt.stall {
					red.signal(syscall.SIGSTOP)
				} else {
					red.kill()
				}
				sleepUntil(up)
				if tt.stall {
					red.signal(syscall.SIGCONT)
				} else {
					red.start()
				}
				sleepUntil(end)
				d.stop()
				require.NoError(t, tr.Close())
				d.wg.Wait()
				closed := make(chan error, 1)
				go func() { closed <- lim.Close() }()
				select {
				case err := <-closed:
					require.NoError(t, err)
				case <-time.After(time.Second):
					require.FailNow(t, "Close did not return")
				}
				require.NoError(t, rdb.Close())
				srv.Close()

				// What the process sent, as it sent it.
				report := []fleetReport{{Sends: sends.at, Stalls: stalls()}}
				times := sendTimes(report)
				// holds checks that the requests sent in [from, to) keep the quota, and come
				// within 5% of it for the time the machine ran the process (one process, which
				// serves its own requests too).
				holds := func(from, to time.Time, when string) float64 {
					t.Helper()
					n := float64(countIn(times, from, to))
					least, most := sendBounds(quota, burst, 0.05, report, from, to)
					assert.LessOrEqual(t, n, most, when)
					assert.GreaterOrEqual(t, n, least, "%s, stalled for %v", when, stalledTogether(report, from, to))
					return rateIn(times, from, to)
				}
				before := holds(t0.Add(100*time.Millisecond), killed, "before the kill")
				// Tokens leased before the kill are spent a lease and the deadline after it, or
				// later by the time the process did not run.
				from := killed.Add(lease + deadline + 20*time.Millisecond)
				from = from.Add(stalledTogether(report, killed, from))
				during := rateIn(times, from, up)
				ran := 1 - stalledTogether(report, from, up).Seconds()/up.Sub(from).Seconds()
				tt.whileDown(t, d.between(from, up), during, ran, deadline)
				// Redis is back: within a second, the quota holds again, and with no burst. A
				// second the process ran: one it spent stalled does not count.
				again := up.Add(time.Second)
				again = earlier(again.Add(stalledTogether(report, up, again)), end.Add(-300*time.Millisecond))
				after := holds(again, end, "a second after the restart")
				for _, o := range d.between(again, end) {
					require.NoError(t, o.err)
				}
				var afterUp []time.Time
				for _, at := range times {
					if !at.Before(again) {
						afterUp = append(afterUp, at)
					}
				}
				// The guarantee's bound, and half a lease more after a stall of the process.
				bound := quota/10 + 2*burst + int(quota*lease.Seconds())
				if stalledTogether(report, again.Add(-lease/2), end) > 0 {
					bound += int(quota * lease.Seconds() / 2)
				}
				most := maxInWindow(afterUp, 100*time.Millisecond)
				assert.LessOrEqual(t, most, bound, "requests in any 100 ms, a second after the restart")
				st := lim.Stats()
				assert.Positive(t, st.Failures)
				assert.Positive(t, st.Unhandled)
				row := fmt.Sprintf("%s, %s: before %.0f/s; down %.0f/s; a second after the restart %.0f/s, most in 100 ms %d",
					load, tt.name, before, during, after, most)
				if stalled := stalledTogether(report, t0, end); stalled > 0 {
					row += fmt.Sprintf(" (the process stalled for %v)", stalled.Round(time.Millisecond))
				}
				t.Logf("%s; %+v", row, st)
				rows = append(rows, row)
				goleak.VerifyNone(t, ignore)
			})
		}
	}
	t.Logf("a quota of %d/s, Redis away for %v:\n%s", quota, down, strings.Join(rows, "\n"))
}

func TestClosedLimiterRefuses(t *testing.T) {
	rdb, _ := connect(t, false)
	lim := redislimit.New(rdb, uniqueKey(t), 100, 1)
	require.NoError(t, lim.Close())
	require.NoError(t, lim.Close(), "a second Close")
	_, err := lim.Reserve(context.Background(), "a.test", time.Now())
	assert.True(t, errors.Is(err, redislimit.ErrClosed), "got %v", err)
}
