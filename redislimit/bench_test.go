package redislimit_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures/redislimit"
)

// The benchmarks compare, at a quota of 100, 5,000 and 20,000 requests per second shared by four
// clients (as four processes would), the calls to Redis per admitted request and the time a
// caller is held in them (the latency the limiter adds, beyond waiting for the token's time):
//
//   - lease: a Limiter, leasing tokens in batches and reserving ahead;
//   - onecall: one call per request of a GCRA "allow" script, as go-redis/redis_rate's Allow
//     makes: a refused request waits the time the answer gives and asks again.
//
// The baseline is written here rather than taken from redis_rate: its Allow is one EVALSHA of a
// GCRA script per call, which is what allowScript is, and a module that only a benchmark would
// use has no place in go.mod. Run each contender by name, alternating, for instance:
//
//	for i in 1 2 3 4 5; do for c in lease onecall; do
//	  go test -run '^$' -bench "Shared/rate=5000/$c" -benchtime 2s ./redislimit; done; done

// allowScript admits one request under GCRA if it conforms now, or says in how many
// microseconds it would: {1, 0} or {0, wait}. ARGV: the emission interval (µs) and the burst.
var allowScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local iv, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = tat + iv - burst * iv - now
if wait > 0 then return {0, math.ceil(wait)} end
redis.call('SET', KEYS[1], string.format('%.0f', tat + iv), 'PX', math.ceil((tat + iv - now) / 1000) + 1000)
return {1, 0}
`)

// admitter admits one request and reports its calls to Redis and the time spent in them.
type admitter func(ctx context.Context) (calls int, held time.Duration, err error)

// leaseAdmitter admits through a Limiter, waiting for the token's time as a Scheduler would.
func leaseAdmitter(lim *redislimit.Limiter) admitter {
	return func(ctx context.Context) (int, time.Duration, error) {
		before := lim.Stats().Calls
		start := time.Now()
		due, err := lim.Reserve(ctx, "bench.test", start)
		held := time.Since(start)
		if err != nil {
			return 0, held, err
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		return int(lim.Stats().Calls - before), held, nil
	}
}

// oneCallAdmitter admits with one allowScript call per try.
func oneCallAdmitter(rdb redis.UniversalClient, key string, r rate.Limit, burst int) admitter {
	iv := strconv.FormatFloat(1e6/float64(r), 'f', 3, 64)
	return func(ctx context.Context) (int, time.Duration, error) {
		calls, held := 0, time.Duration(0)
		for {
			start := time.Now()
			res, err := allowScript.Run(ctx, rdb, []string{key}, iv, burst).Int64Slice()
			held += time.Since(start)
			calls++
			if err != nil {
				return calls, held, err
			}
			if res[0] == 1 {
				return calls, held, nil
			}
			time.Sleep(time.Duration(res[1]) * time.Microsecond)
		}
	}
}

func BenchmarkShared(b *testing.B) {
	const clients, burst = 4, 10
	_, addrs := connect(b, false)
	for _, r := range []rate.Limit{100, 5000, 20000} {
		b.Run(fmt.Sprintf("rate=%v", r), func(b *testing.B) {
			for _, contender := range []string{"lease", "onecall"} {
				b.Run(contender, func(b *testing.B) {
					key := uniqueKey(b)
					admit := make([]admitter, clients)
					for i := range admit {
						rdb := newClient(b, addrs)
						if contender == "lease" {
							lim := redislimit.New(rdb, key, r, burst, redislimit.WithDeadline(time.Second))
							b.Cleanup(func() { lim.Close() })
							admit[i] = leaseAdmitter(lim)
						} else {
							admit[i] = oneCallAdmitter(rdb, "httpfutures:bench:{"+key+"}", r, burst)
						}
					}
					runShared(b, admit)
				})
			}
		})
	}
}

// runShared admits b.N requests with the admitters together, each as fast as it may, and
// reports the calls to Redis per request and the time held in them.
func runShared(b *testing.B, admit []admitter) {
	var left atomic.Int64
	left.Store(int64(b.N))
	var mu sync.Mutex
	var calls int
	var held []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for _, a := range admit {
		wg.Go(func() {
			var c int
			var h []time.Duration
			for left.Add(-1) >= 0 {
				n, d, err := a(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				c += n
				h = append(h, d)
			}
			mu.Lock()
			calls += c
			held = append(held, h...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(held)
	var total time.Duration
	for _, d := range held {
		total += d
	}
	n := float64(len(held))
	b.ReportMetric(float64(calls)/n, "calls/req")
	b.ReportMetric(float64(total.Microseconds())/n, "µs-held/req")
	b.ReportMetric(float64(held[int(0.99*n)].Microseconds()), "p99-µs-held")
	b.ReportMetric(n/elapsed.Seconds(), "req/s")
}
