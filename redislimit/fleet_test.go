package redislimit_test

import (
	"bufio"
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
	"strings"
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
// variable holds its fleetConfig as JSON. Once connected it prints "ready", reads the instant to
// start at (Unix nanoseconds) from its input, and at the end prints its fleetReport as JSON.
const childEnv = "REDISLIMIT_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(spinEnv); v != "" {
		os.Exit(spin(v))
	}
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(runChild(v))
	}
	goleak.VerifyTestMain(m)
}

// fleetConfig is what each process of a fleet does: drive a transport as fast as it can, through
// a Limiter on Redis at Addrs, against URL, for For from the instant it is given.
type fleetConfig struct {
	ID    int
	Addrs []string
	Key   string
	Rate  float64
	Burst int
	URL   string
	For   time.Duration
	// Workers is how many requests the process has in flight at most: enough that a server slowed
	// by a busy machine does not hold back what the Limiter lets go.
	Workers int
	// Deadline is the Limiter's: longer than the default, so that a machine busy with the whole
	// fleet (and with other work) does not fail requests for a slow answer.
	Deadline time.Duration
}

// fleetReport is what a process of a fleet did.
type fleetReport struct {
	Sent, Failed int
	Stopped      int // running when the transport closed: it may have reached the server
	Stats        redislimit.Stats
	// Sends are the instants (Unix nanoseconds) the transport handed each request to the
	// network: what the process sent, before the jitter of the machine on the way to the server.
	Sends []int64
	// Stalls are the spells in which the process did not run, [from, to) in Unix nanoseconds: a
	// machine too busy to give it a core. No limiter sends then.
	Stalls [][2]int64
}

// sendClock is an http.RoundTripper that notes when each request is sent.
type sendClock struct {
	rt http.RoundTripper

	mu sync.Mutex
	at []int64 // guarded by mu
}

func (s *sendClock) RoundTrip(req *http.Request) (*http.Response, error) {
	now := time.Now().UnixNano()
	s.mu.Lock()
	s.at = append(s.at, now)
	s.mu.Unlock()
	return s.rt.RoundTrip(req)
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
	base := &http.Transport{MaxIdleConnsPerHost: c.Workers}
	sends := &sendClock{rt: base}
	tr := httpfutures.NewTransport(sends, httpfutures.WithLimiter(lim), httpfutures.WithWorkers(c.Workers))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := rdb.Ping(ctx).Err()
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "no Redis:", err)
		return 2
	}
	if err := warmUp(base, c.URL, c.Workers); err != nil {
		fmt.Fprintln(os.Stderr, "no server:", err)
		return 2
	}
	fmt.Println("ready")
	var ns int64
	if _, err := fmt.Fscan(os.Stdin, &ns); err != nil {
		fmt.Fprintln(os.Stderr, "no start:", err)
		return 2
	}
	start := time.Unix(0, ns)
	stalls := watchStalls(start)
	time.Sleep(time.Until(start))

	var mu sync.Mutex
	var rep fleetReport
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2*c.Workers)
	for end := start.Add(c.For); time.Now().Before(end); {
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
	rep.Sends = sends.at
	rep.Stalls = stalls()
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// warmUp opens n connections of rt to the server at url, with requests it does not count, so
// that the fleet's first requests do not wait for them.
func warmUp(rt http.RoundTripper, url string, n int) error {
	client := &http.Client{Transport: rt}
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := client.Get(url + warmPath)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; first == nil {
			first = err
		}
	}
	return first
}

// warmPath is where requests that the counting server does not count go.
const warmPath = "/warm"

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
		if r.URL.Path == warmPath {
			return
		}
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

// runFleet runs n processes of the test binary as c describes (ID set here). Once every one
// has connected it fixes the start, tells atStart (if not nil) and them; then it waits for them
// and returns the start and their reports.
func runFleet(t *testing.T, n int, c fleetConfig, atStart func(start time.Time)) (time.Time, []fleetReport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.For+time.Minute)
	defer cancel()
	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
		stderr bytes.Buffer
	}
	children := make([]*child, n)
	for i := range n {
		c.ID = i
		config, err := json.Marshal(c)
		require.NoError(t, err)
		ch := &child{cmd: exec.CommandContext(ctx, os.Args[0], "-test.run=^$")}
		ch.cmd.Env = append(os.Environ(), childEnv+"="+string(config))
		ch.cmd.Stderr = &ch.stderr
		ch.stdin, err = ch.cmd.StdinPipe()
		require.NoError(t, err)
		out, err := ch.cmd.StdoutPipe()
		require.NoError(t, err)
		ch.stdout = bufio.NewReader(out)
		require.NoError(t, ch.cmd.Start())
		children[i] = ch
	}
	for i, ch := range children {
		line, err := ch.stdout.ReadString('\n')
		require.NoError(t, err, "process %d did not start: %s", i, &ch.stderr)
		require.Equal(t, "ready\n", line, "process %d", i)
	}
	start := time.Now().Add(100 * time.Millisecond)
	if atStart != nil {
		atStart(start)
	}
	for _, ch := range children {
		fmt.Fprintln(ch.stdin, start.UnixNano())
		ch.stdin.Close()
	}
	reports := make([]fleetReport, n)
	for i, ch := range children {
		out, err := io.ReadAll(ch.stdout)
		require.NoError(t, err)
		require.NoError(t, ch.cmd.Wait(), "process %d: %s", i, &ch.stderr)
		if ch.stderr.Len() > 0 {
			t.Logf("process %d said: %s", i, &ch.stderr)
		}
		require.NoError(t, json.Unmarshal(out, &reports[i]), "process %d printed %q", i, out)
	}
	return start, reports
}

// sendTimes returns the instants the processes sent their requests, sorted.
func sendTimes(reports []fleetReport) []time.Time {
	var times []time.Time
	for _, r := range reports {
		for _, ns := range r.Sends {
			times = append(times, time.Unix(0, ns))
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	return times
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

// TestFleetKeepsTheQuota runs four processes sharing one quota for 6 s, on a server and on a
// cluster; for the middle 2 s a busy loop runs on every core beside them, so that each process
// gets the CPU late and leases more than it spends in time. The quota holds within 2% before,
// during and after: the tokens a process lets lapse go back for the others to lease.
func TestFleetKeepsTheQuota(t *testing.T) {
	const (
		processes = 4
		quota     = fleetQuota
		burst     = 20
		phase     = 2 * time.Second // quiet, busy, quiet
		run       = 3 * phase
		window    = 100 * time.Millisecond
	)
	var rows []string
	for _, tt := range []struct {
		name    string
		cluster bool
	}{{"standalone", false}, {"cluster", true}} {
		t.Run(tt.name, func(t *testing.T) {
			rdb, addrs := connect(t, tt.cluster)
			srv := newCountingServer(t, nil)
			c := fleetConfig{Addrs: addrs, Key: uniqueKey(t), Rate: quota, Burst: burst, URL: srv.URL, For: run,
				Workers: 64, Deadline: time.Second}
			var redisStalls func() [][2]int64
			start, reports := runFleet(t, processes, c, func(start time.Time) {
				busyCores(t, start.Add(phase), start.Add(2*phase))
				redisStalls = watchRedis(rdb, redislimit.DefaultPrefix+"{"+c.Key+"}", start)
			})
			away := redisStalls()

			// What the processes sent, as they sent it; the server's arrivals add the jitter of a
			// machine on the way (and the server's own stalls), which no limiter controls.
			times := sendTimes(reports)
			phases := []struct {
				name     string
				from, to time.Time
			}{
				// Past the first burst, before the processes stop.
				{"before", start.Add(200 * time.Millisecond), start.Add(phase)},
				{"busy cores", start.Add(phase), start.Add(2 * phase)},
				{"after", start.Add(2 * phase), start.Add(run - 200*time.Millisecond)},
			}
			var rates []string
			for _, p := range phases {
				// A machine that gives none of the processes a core for a while takes that time
				// from the fleet, whatever the Limiter does: the quota is due for the rest.
				n := float64(countIn(times, p.from, p.to))
				least, most := sendBounds(quota, burst, 0.02, reports, p.from, p.to, away...)
				stalled := stalledTogether(reports, p.from, p.to, away...)
				assert.LessOrEqual(t, n, most, "requests, %s", p.name)
				assert.GreaterOrEqual(t, n, least, "requests, %s, every process stalled for %v", p.name, stalled)
				rate := fmt.Sprintf("%s %.0f/s", p.name, n/p.to.Sub(p.from).Seconds())
				if stalled > 0 {
					rate += fmt.Sprintf(" (all stalled, or Redis, %v)", stalled.Round(time.Millisecond))
				}
				rates = append(rates, rate)
			}
			lease := int(quota * redislimit.DefaultLeaseSpan.Seconds())
			most := maxInWindow(times, window)
			assert.LessOrEqual(t, most, int(quota*window.Seconds())+2*burst+lease, "requests in any %v", window)

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
				stats.Returned += r.Stats.Returned
			}
			// Close cancels the requests still running: those may or may not have reached the server.
			arrived := len(srv.times(nil))
			assert.GreaterOrEqual(t, arrived, sent)
			assert.LessOrEqual(t, arrived, sent+stopped)
			// Each process has its share, give or take: one the busy machine slows leaves tokens
			// to the others, so none is held to a quarter, but none is starved either.
			for i, n := range each {
				assert.GreaterOrEqual(t, n, sent/processes/2, "the share of process %d", i)
			}
			assert.LessOrEqual(t, stats.CallsPerRequest(), fleetCallsPerRequest, "Redis calls per request")
			if t.Failed() {
				var per []int
				for at := start; at.Before(start.Add(run)); at = at.Add(window) {
					per = append(per, countIn(times, at, at.Add(window)))
				}
				t.Logf("sent in each %v: %v", window, per)
			}
			row := fmt.Sprintf("%s: %s; most in %v: %d; %.3f Redis calls per request; %d leased tokens lapsed, "+
				"%d given back; each process: %v", tt.name, strings.Join(rates, ", "), window, most,
				stats.CallsPerRequest(), stats.Lapsed, stats.Returned, each)
			t.Log(row)
			rows = append(rows, row)
		})
	}
	t.Logf("%d processes sharing %d/s:\n%s", processes, quota, strings.Join(rows, "\n"))
}

// TestFleetSharesRetryAfter tells one process of four `429 Retry-After: 2` and checks that the
// others send nothing to the host for the 2 s, past what they had let go before the news came, on
// a quiet machine and with a busy loop on every core beside them.
func TestFleetSharesRetryAfter(t *testing.T) {
	const (
		processes = 4
		quota     = fleetQuota
		pause     = 2 * time.Second
		workers   = 16
		lease     = redislimit.DefaultLeaseSpan
	)
	for _, busy := range []bool{false, true} {
		name := "quiet"
		if busy {
			name = "busy cores"
		}
		t.Run(name, func(t *testing.T) {
			_, addrs := connect(t, false)
			var once sync.Once
			told := make(chan time.Time, 1)
			var first atomic.Int64 // requests of process 0
			srv := newCountingServer(t, func(w http.ResponseWriter, child int, at time.Time) bool {
				if child != 0 || first.Add(1) < quota/2 {
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
				Workers: workers, Deadline: time.Second}
			_, reports := runFleet(t, processes, c, func(start time.Time) {
				if busy {
					busyCores(t, start, start.Add(c.For))
				}
			})
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
			// What each process sent, as it sent it, from just after the 429 to just before the
			// pause ends.
			sent := func(child int, from time.Time) int {
				return countIn(sendTimes(reports[child:child+1]), from, end.Add(-10*time.Millisecond))
			}
			// The process told to wait may have requests on their way as the 429 is written, at
			// most one a worker; none is sent past the first lease of the pause.
			assert.Less(t, sent(0, t429.Add(time.Millisecond)), workers, "requests of the process told to wait")
			assert.Zero(t, sent(0, t429.Add(lease)), "requests of the process told to wait, past the first lease of the pause")
			// Tokens handed out before the pause was heard may still go: on a quiet machine within
			// the first lease of the pause, at most a process's share of it and a request on its
			// way. Where the machine is busy, or the race detector slows every process, the news
			// takes longer to reach the others, at most four leases here.
			news := lease
			if busy || raceDetector {
				news = 4 * lease
			}
			share := int(quota*news.Seconds()) / processes
			var late []int
			for child := 1; child < processes; child++ {
				n := sent(child, t429.Add(time.Millisecond))
				late = append(late, n)
				assert.LessOrEqual(t, n, share+2, "requests of process %d during the pause", child)
				assert.Zero(t, sent(child, t429.Add(news)), "requests of process %d past %v of the pause", child, news)
				times := sendTimes(reports[child : child+1])
				assert.Positive(t, countIn(times, end, end.Add(500*time.Millisecond)), "process %d after the pause", child)
			}
			var when []time.Duration
			for _, at := range sendTimes(reports) {
				if at.After(t429) && at.Before(end.Add(-10*time.Millisecond)) {
					when = append(when, at.Sub(t429).Round(100*time.Microsecond))
				}
			}
			t.Logf("%s: sent in the pause, after the 429, by the process told: %d, by the others: %v (at most %d each); when: %v",
				name, sent(0, t429.Add(time.Millisecond)), late, share+2, when)
		})
	}
}
