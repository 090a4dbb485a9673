package redislimit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/redislimit"
)

// childEnv, when set, makes the test binary a load generator of the fleet tests instead: the
// variable holds its fleetConfig as JSON, and it prints its fleetReport as JSON.
const childEnv = "REDISLIMIT_TEST_CHILD"

// fleetWorkers is how many requests each process of the fleet has in flight at most.
const fleetWorkers = 16

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(runChild(v))
	}
	goleak.VerifyTestMain(m)
}

// fleetConfig is what each process of a fleet does: drive a transport as fast as it can, through
// a Limiter on Redis at Addrs, against URL, from Start for For.
type fleetConfig struct {
	ID    int
	Addrs []string
	Key   string
	Rate  float64
	Burst int
	URL   string
	Start time.Time
	For   time.Duration
	// Deadline is the Limiter's: longer than the default, so that a machine busy with the whole
	// fleet (and with other work) does not fail requests for a slow answer.
	Deadline time.Duration
}

// fleetReport is what a process of a fleet did.
type fleetReport struct {
	Sent, Failed int
	Stopped      int // running when the transport closed: it may have reached the server
	Stats        redislimit.Stats
}

// runChild runs one process of a fleet and returns its exit code.
func runChild(config string) int {
	var c fleetConfig
	if err := json.Unmarshal([]byte(config), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bad child config:", err)
		return 2
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: c.Addrs})
	defer rdb.Close()
	lim := redislimit.New(rdb, c.Key, rate.Limit(c.Rate), c.Burst, redislimit.WithDeadline(c.Deadline))
	tr := httpfutures.NewTransport(&http.Transport{MaxIdleConnsPerHost: 64}, httpfutures.WithLimiter(lim),
		httpfutures.WithWorkers(fleetWorkers))
	time.Sleep(time.Until(c.Start))

	var mu sync.Mutex
	var rep fleetReport
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for end := c.Start.Add(c.For); time.Now().Before(end); {
		sem <- struct{}{}
		req, err := http.NewRequest(http.MethodGet, c.URL, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		req.Header.Set("X-Child", strconv.Itoa(c.ID))
		f := tr.StartRoundTrip(req)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := f.Result()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				rep.Sent++
			case errors.Is(err, httpfutures.ErrClosed) && errors.Is(err, context.Canceled):
				rep.Stopped++
			case !errors.Is(err, httpfutures.ErrClosed):
				if rep.Failed == 0 {
					fmt.Fprintln(os.Stderr, "the first failure:", err)
				}
				rep.Failed++
			}
		}()
	}
	tr.Close()
	wg.Wait()
	if err := lim.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close:", err)
	}
	rep.Stats = lim.Stats()
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// arrival is a request as the counting server saw it.
type arrival struct {
	at    time.Time
	child int
}

// countingServer records when each request arrives and from which process; respond, if not
// nil, may answer instead of the empty 200.
type countingServer struct {
	*httptest.Server
	respond func(w http.ResponseWriter, child int, at time.Time) bool

	mu       sync.Mutex
	arrivals []arrival
}

func newCountingServer(t testing.TB, respond func(w http.ResponseWriter, child int, at time.Time) bool) *countingServer {
	s := &countingServer{respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		child, _ := strconv.Atoi(r.Header.Get("X-Child"))
		s.mu.Lock()
		s.arrivals = append(s.arrivals, arrival{at, child})
		s.mu.Unlock()
		if s.respond != nil && s.respond(w, child, at) {
			return
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// times returns the arrivals' times, sorted, of the processes keep selects (all if nil).
func (s *countingServer) times(keep func(child int) bool) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, a := range s.arrivals {
		if keep == nil || keep(a.child) {
			out = append(out, a.at)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// runFleet runs n processes of the test binary as c describes (ID and Start set here), waits
// for them, and returns when they started and their reports.
func runFleet(t *testing.T, n int, c fleetConfig) (time.Time, []fleetReport) {
	t.Helper()
	c.Start = time.Now().Add(1500 * time.Millisecond) // every process started, its client connected
	ctx, cancel := context.WithTimeout(context.Background(), c.For+30*time.Second)
	defer cancel()
	type result struct {
		out []byte
		err error
	}
	results := make([]chan result, n)
	for i := range n {
		c.ID = i
		config, err := json.Marshal(c)
		require.NoError(t, err)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(config))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		results[i] = make(chan result, 1)
		go func() {
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, stderr.String())
			} else if stderr.Len() > 0 {
				t.Logf("process %d said: %s", i, stderr.String())
			}
			results[i] <- result{out, err}
		}()
	}
	reports := make([]fleetReport, n)
	for i := range n {
		r := <-results[i]
		require.NoError(t, r.err, "process %d", i)
		require.NoError(t, json.Unmarshal(r.out, &reports[i]), "process %d printed %q", i, r.out)
	}
	return c.Start, reports
}

// countIn returns how many sorted times fall in [from, to).
func countIn(times []time.Time, from, to time.Time) int {
	i, _ := slices.BinarySearchFunc(times, from, time.Time.Compare)
	j, _ := slices.BinarySearchFunc(times, to, time.Time.Compare)
	return j - i
}

// maxInWindow returns the largest number of sorted times in any window of length w.
func maxInWindow(times []time.Time, w time.Duration) int {
	most, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < w {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

func TestFleetKeepsTheQuota(t *testing.T) {
	const (
		processes = 4
		quota     = 2000
		burst     = 20
		run       = 3 * time.Second
		window    = 100 * time.Millisecond
	)
	for _, tt := range []struct {
		name    string
		cluster bool
	}{{"standalone", false}, {"cluster", true}} {
		t.Run(tt.name, func(t *testing.T) {
			_, addrs := connect(t, tt.cluster)
			srv := newCountingServer(t, nil)
			c := fleetConfig{Addrs: addrs, Key: uniqueKey(t), Rate: quota, Burst: burst, URL: srv.URL, For: run,
				Deadline: time.Second}
			start, reports := runFleet(t, processes, c)

			times := srv.times(nil)
			// The steady state: past the first burst, before the processes stop.
			from, to := start.Add(200*time.Millisecond), start.Add(run-200*time.Millisecond)
			got := float64(countIn(times, from, to)) / to.Sub(from).Seconds()

			lease := int(quota * redislimit.DefaultLeaseSpan.Seconds())
			assert.LessOrEqual(t, maxInWindow(times, window), int(quota*window.Seconds())+burst+lease,
				"requests in any %v", window)

			var sent, stopped int
			var stats redislimit.Stats
			var each []int
			for i, r := range reports {
				each = append(each, r.Sent)
				assert.Zero(t, r.Failed, "process %d", i)
				assert.Positive(t, r.Sent, "process %d sent nothing", i)
				sent += r.Sent
				stopped += r.Stopped
				stats.Admitted += r.Stats.Admitted
				stats.Calls += r.Stats.Calls
				stats.Lapsed += r.Stats.Lapsed
			}
			// The quota, at most, and all of it but the leased tokens that lapsed unspent: processes
			// slowed by a busy machine (or the race detector) lease tokens they cannot spend in time.
			assert.LessOrEqual(t, got, quota*1.02, "combined rate")
			unspent := float64(stats.Lapsed) / run.Seconds()
			assert.GreaterOrEqual(t, got, (quota-unspent)*0.98, "combined rate, %.0f/s of leases lapsed", unspent)
			// Close cancels the requests still running: those may or may not have reached the server.
			assert.GreaterOrEqual(t, len(times), sent)
			assert.LessOrEqual(t, len(times), sent+stopped)
			for i, n := range each {
				assert.InEpsilon(t, sent/processes, n, 0.25, "the share of process %d", i)
			}
			assert.Less(t, stats.CallsPerRequest(), 0.1, "Redis calls per request")
			t.Logf("%d processes: %.0f/s in the steady state (quota %d/s), most in %v: %d; %d requests, "+
				"%.3f Redis calls per request, %d leased tokens lapsed; each process: %v",
				processes, got, quota, window, maxInWindow(times, window), sent, stats.CallsPerRequest(), stats.Lapsed, each)
		})
	}
}

func TestFleetSharesRetryAfter(t *testing.T) {
	const (
		processes = 4
		quota     = 2000
		pause     = 2 * time.Second
	)
	_, addrs := connect(t, false)
	var once sync.Once
	told := make(chan time.Time, 1)
	var first atomic.Int64 // requests of process 0
	srv := newCountingServer(t, func(w http.ResponseWriter, child int, at time.Time) bool {
		if child != 0 || first.Add(1) < 1000 {
			return false
		}
		answered := false
		once.Do(func() {
			w.Header().Set("Retry-After", strconv.Itoa(int(pause/time.Second)))
			w.WriteHeader(http.StatusTooManyRequests)
			told <- at
			answered = true
		})
		return answered
	})
	c := fleetConfig{Addrs: addrs, Key: uniqueKey(t), Rate: quota, Burst: 20, URL: srv.URL, For: 4 * time.Second,
		Deadline: time.Second}
	_, reports := runFleet(t, processes, c)
	for i, r := range reports {
		assert.Zero(t, r.Failed, "process %d", i)
	}
	var t429 time.Time
	select {
	case t429 = <-told:
	default:
		require.FailNow(t, "no process reached its 1,000th request", "%d", first.Load())
	}
	end := t429.Add(pause)
	self := srv.times(func(child int) bool { return child == 0 })
	// Its requests already on their way when the 429 was written (at most one a worker) may
	// arrive after it on a busy machine, within the first lease of the pause; none is sent in it.
	assert.Less(t, countIn(self, t429.Add(time.Millisecond), end.Add(-10*time.Millisecond)), fleetWorkers,
		"requests of the process told to wait")
	assert.Zero(t, countIn(self, t429.Add(redislimit.DefaultLeaseSpan), end.Add(-10*time.Millisecond)),
		"requests of the process told to wait, past the first lease of the pause")
	for child := 1; child < processes; child++ {
		times := srv.times(func(c int) bool { return c == child })
		// What was already on its way when the 429 was written still arrives, and tokens handed
		// out before the pause was heard may still go: on a quiet machine one or two per process,
		// at most a process's share of one lease, and only within the first lease of the pause.
		late := countIn(times, t429.Add(time.Millisecond), end.Add(-10*time.Millisecond))
		share := int(quota*redislimit.DefaultLeaseSpan.Seconds()) / processes
		assert.LessOrEqual(t, late, share+2, "requests of process %d during the pause", child)
		assert.Zero(t, countIn(times, t429.Add(redislimit.DefaultLeaseSpan), end.Add(-10*time.Millisecond)),
			"requests of process %d past the first lease of the pause", child)
		assert.Positive(t, countIn(times, end, end.Add(500*time.Millisecond)), "process %d after the pause", child)
	}
	var late []time.Duration
	for _, at := range srv.times(nil) {
		if at.After(t429) && at.Before(end.Add(-10*time.Millisecond)) {
			late = append(late, at.Sub(t429))
		}
	}
	t.Logf("requests in the pause, after the 429: %v", late)
}
