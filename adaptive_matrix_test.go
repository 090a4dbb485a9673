package httpfutures_test

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"github.com/stretchr/testify/assert"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/internal/stallwatch"
)

// The adaptive limit across the servers it will meet rather than at one tuned point: capacities
// from 1 to 128, shedding at once and after a delay, latency growing with load, capacity
// stepping down and up, healthy servers with jitter, a real go-httpbin, and two hosts, one
// overloaded. Each cell runs against loopback servers of its own; the light cells run two at a
// time (the test's -parallel), the heavy ones and the 64-stream jitter alone, and the sweep is
// printed as a table.
//
// The machine is shared and busy, so goodput is held against a static limit at the capacity,
// run at the same moments against a server of its own (what a client that knew the capacity
// gets), and times are counted in the server's own mean service time where it sets them.

// The spans of a cell: the limit learns for learnSpan, then measureSpan is measured.
const (
	learnSpan   = time.Second
	measureSpan = time.Second
)

// A matrixRow is what a cell measured, for the table.
type matrixRow struct {
	cell     string
	shed     float64 // share of 503s among responses over the measured span
	goodput  float64 // successes per second over the measured span, as a share of the capacity's; 0 if none
	vsStatic float64 // the same, as a share of a static limit's at the capacity; 0 if none
	limitMin int     // the lowest and highest limit in force over the measured span
	limitMax int
	note     string
}

// matrixTable collects the rows of the cells, which run in parallel, in the order of the cells.
type matrixTable struct {
	mu    sync.Mutex
	rows  []matrixRow
	order []int // the cell of each row
}

func (m *matrixTable) add(cell int, rows ...matrixRow) {
	m.mu.Lock()
	for _, r := range rows {
		m.rows, m.order = append(m.rows, r), append(m.order, cell)
	}
	m.mu.Unlock()
}

func (m *matrixTable) Len() int           { return len(m.rows) }
func (m *matrixTable) Less(i, j int) bool { return m.order[i] < m.order[j] }
func (m *matrixTable) Swap(i, j int) {
	m.rows[i], m.rows[j] = m.rows[j], m.rows[i]
	m.order[i], m.order[j] = m.order[j], m.order[i]
}

func (m *matrixTable) log(t *testing.T) {
	sort.Stable(m)
	share := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-44s %6s %8s %9s %9s  %s\n", "cell", "503s", "goodput", "vs static", "limit", "")
	for _, r := range m.rows {
		fmt.Fprintf(&b, "%-44s %5.1f%% %8s %9s %4d-%-4d  %s\n", r.cell, 100*r.shed, share(r.goodput), share(r.vsStatic),
			r.limitMin, r.limitMax, r.note)
	}
	t.Log(b.String())
}

// maxShed is the share of 503s a cell allows, goal: the goal itself, and under the race detector
// half as much again. The race detector slows the client several times over, and on a busy
// machine a stall of the client's process bunches its requests: at a capacity of 2 a second
// measures about 100 responses, and one stall's 503s are a point or two. The run without it,
// which CI makes too, holds the goal.
func maxShed(goal float64) float64 {
	if raceDetector {
		return 1.5 * goal
	}
	return goal
}

// serviceFor is the service time of a server of capacity c: 20 ms, and longer for large
// capacities, so that no cell asks more than about 1,600 requests a second of the machine.
func serviceFor(c int) time.Duration {
	return max(serviceTime, time.Duration(c)*time.Second/1600)
}

// A loadRun counts the responses to requests kept in flight, in spans of tickSpan from its start.
type loadRun struct {
	start time.Time
	ticks []loadTick
}

// tickSpan is how long a span of a loadRun lasts.
const tickSpan = 50 * time.Millisecond

// A loadTick counts the responses that came back in one span of a loadRun.
type loadTick struct {
	ok, shed, other atomic.Int64
	rtt             atomic.Int64 // nanoseconds from the start of the round trip to the response, summed over the successes
}

// load keeps outstanding requests to url in flight on tr for d, from as many goroutines, and
// counts what comes back.
func load(t testing.TB, tr *httpfutures.AsyncTransport, url string, outstanding int, d time.Duration) *loadRun {
	t.Helper()
	r := &loadRun{start: time.Now(), ticks: make([]loadTick, d/tickSpan+1)}
	end := r.start.Add(d)
	var wg sync.WaitGroup
	for range outstanding {
		wg.Go(func() {
			for time.Now().Before(end) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				f := tr.StartRoundTrip(req)
				resp, err := f.Result()
				i := int(time.Since(r.start) / tickSpan)
				if i >= len(r.ticks) {
					return
				}
				tk := &r.ticks[i]
				switch {
				case err != nil:
					tk.other.Add(1)
				case resp.StatusCode == http.StatusOK:
					tk.ok.Add(1)
					tk.rtt.Add(int64(f.Timing().RoundTrip()))
				case resp.StatusCode == http.StatusServiceUnavailable:
					tk.shed.Add(1)
				default:
					tk.other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return r
}

// both runs f and g at once, and returns when both have.
func both(f, g func()) {
	var wg sync.WaitGroup
	wg.Go(f)
	wg.Go(g)
	wg.Wait()
}

// A loadCount is what came back over a span of a loadRun.
type loadCount struct {
	ok, shed, other int64
	rtt             time.Duration // the mean round trip of a success
	span            time.Duration
}

// window sums the responses that came back between from and to after the run's start.
func (r *loadRun) window(from, to time.Duration) loadCount {
	c := loadCount{span: to - from}
	var rtt int64
	for i := int(from / tickSpan); i < int(to/tickSpan) && i < len(r.ticks); i++ {
		tk := &r.ticks[i]
		c.ok += tk.ok.Load()
		c.shed += tk.shed.Load()
		c.other += tk.other.Load()
		rtt += tk.rtt.Load()
	}
	if c.ok > 0 {
		c.rtt = time.Duration(rtt / c.ok)
	}
	return c
}

// shedShare returns the share of 503s among the responses.
func (c loadCount) shedShare() float64 {
	if n := c.ok + c.shed + c.other; n > 0 {
		return float64(c.shed) / float64(n)
	}
	return 0
}

// goodput returns the successes per second.
func (c loadCount) goodput() float64 { return float64(c.ok) / c.span.Seconds() }

// limitsBetween returns the lowest and highest limit of host in force between from and to,
// given that it was initial before any change.
func (w *limitWatch) limitsBetween(host string, initial int, from, to time.Time) (lo, hi int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := initial
	lo, hi = math.MaxInt, 0
	for _, c := range w.changes[host] {
		if c.At.After(to) {
			break
		}
		if c.At.After(from) {
			lo, hi = min(lo, cur), max(hi, cur)
		}
		cur = c.To
	}
	return min(lo, cur), max(hi, cur)
}

// firstAt returns the time of the first change of host's limit after from to a limit that
// satisfies ok; false if none did.
func (w *limitWatch) firstAt(host string, from time.Time, ok func(int) bool) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.changes[host] {
		if c.At.After(from) && ok(c.To) {
			return c.At, true
		}
	}
	return time.Time{}, false
}

// adaptiveTransport returns a transport with as many workers as its hosts' adaptive limits go
// up to, whose changes w records.
func adaptiveTransport(t testing.TB, max int, w *limitWatch) *httpfutures.AsyncTransport {
	return newTransport(t, nil, httpfutures.WithWorkers(max), httpfutures.WithAdaptiveHostLimit(max),
		httpfutures.WithLimitChanged(w.record))
}

// staticTransport returns a transport with workers workers and a static limit per host.
func staticTransport(t testing.TB, workers, limit int) *httpfutures.AsyncTransport {
	return newTransport(t, nil, httpfutures.WithWorkers(workers), httpfutures.WithHostLimit(limit))
}

// initialLimit is the limit a host starts at under WithAdaptiveHostLimit(max).
func initialLimit(max int) int { return min(max, 8) }

// measured returns the lowest and highest limit of url's host over the measured span of run.
func measured(t testing.TB, w *limitWatch, url string, max int, run *loadRun) (lo, hi int) {
	return w.limitsBetween(hostOf(t, url), initialLimit(max), run.start.Add(learnSpan), run.start.Add(learnSpan+measureSpan))
}

// A matrixCell is a cell of the sweep; heavy cells ask more of the machine than the race
// detector leaves it, and run without it only.
type matrixCell struct {
	name  string
	heavy bool
	run   func(t *testing.T) []matrixRow
}

// TestAdaptiveLimitMatrix runs the sweep: each cell asserts what it asks of the limit, and the
// table of what they measured is logged at the end.
func TestAdaptiveLimitMatrix(t *testing.T) {
	var light, heavy []matrixCell
	for _, c := range []int{1, 2, 4, 8, 16, 48, 128} {
		for _, mode := range []capacityMode{shedAtOnce, shedLate} {
			cell := matrixCell{fmt.Sprintf("%s/%d", mode, c), c > 16, func(t *testing.T) []matrixRow { return shedCell(t, c, mode) }}
			if cell.heavy {
				heavy = append(heavy, cell)
			} else {
				light = append(light, cell)
			}
		}
	}
	light = append(light,
		matrixCell{"steps/" + shedAtOnce.String(), false, func(t *testing.T) []matrixRow { return stepCell(t, shedAtOnce) }},
		matrixCell{"steps/" + shedLate.String(), false, func(t *testing.T) []matrixRow { return stepCell(t, shedLate) }},
		matrixCell{"healthy jitter/10ms σ=1", false, func(t *testing.T) []matrixRow {
			return jitterCell(t, 10*time.Millisecond, 1, 16)
		}},
		matrixCell{"two hosts", false, twoHostsCell},
		matrixCell{"static limit over capacity", false, staticCell},
	)
	heavy = append(heavy,
		matrixCell{"slower beyond capacity/48", true, func(t *testing.T) []matrixRow { return slowCell(t, 48) }},
		matrixCell{"healthy loopback", true, func(t *testing.T) []matrixRow {
			return healthyCell(t, "healthy loopback, 25 bytes of JSON", newJSONServer(t), 64)
		}},
		matrixCell{"healthy go-httpbin", true, func(t *testing.T) []matrixRow {
			return healthyCell(t, "healthy go-httpbin /get", newGoHTTPBin(t), 64)
		}},
	)
	// A cell whose 64 outstanding requests see log-normal latencies measures the server only with
	// the processors to itself: a neighbor's work, under the race detector, delays its goroutines
	// by as much as the jitter, which reads as the server slowing down. So do the cells of servers
	// that slow down beyond their capacity: a client starved of processors as it learns the round
	// trip learns a longer one, and holds a higher limit (2.50 times a static limit's round trip,
	// at capacity 4, beside the light cells in CI). They run alone, in both runs.
	alone := []matrixCell{
		{"healthy jitter/50ms σ=0.5", false, func(t *testing.T) []matrixRow {
			return jitterCell(t, 50*time.Millisecond, 0.5, 64)
		}},
		{"slower beyond capacity/4", false, func(t *testing.T) []matrixRow { return slowCell(t, 4) }},
		{"slower beyond capacity/16", false, func(t *testing.T) []matrixRow { return slowCell(t, 16) }},
	}
	table := &matrixTable{}
	// The light cells run four at a time, two under the race detector: each runs its servers and
	// two transports in this process, and twenty at once starved the clients of processors (on 2
	// cores, beside the other packages' tests), which a server with a small capacity read as less
	// served. Under the race detector four at a time still did, once in CI: capacity 4, 503s after
	// the service time, held at 3 for the measured second (goodput 75%).
	atOnce := 4
	if raceDetector {
		atOnce = 2
	}
	lightAtOnce := make(chan struct{}, atOnce)
	t.Run("light", func(t *testing.T) {
		for i, c := range light {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				lightAtOnce <- struct{}{}
				defer func() { <-lightAtOnce }()
				table.add(i, c.run(t)...)
			})
		}
	})
	for i, c := range alone {
		t.Run(c.name, func(t *testing.T) { table.add(len(light)+len(heavy)+i, c.run(t)...) })
	}
	if raceDetector {
		var names []string
		for _, c := range heavy {
			names = append(names, c.name)
		}
		t.Logf("left to the run without the race detector: %s", strings.Join(names, ", "))
	} else {
		// The heavy cells keep the processors busy: they run one at a time.
		for i, c := range heavy {
			t.Run(c.name, func(t *testing.T) { table.add(len(light)+i, c.run(t)...) })
		}
	}
	table.log(t)
}

// shedCell drives a server of capacity c that sheds beyond it with more requests outstanding than
// it takes, and, at the same moments, an identical server through a static limit at c. After
// learnSpan, at most 5% of the responses may be 503s, and the goodput must be at least 85% of
// the static limit's.
func shedCell(t *testing.T, c int, mode capacityMode) []matrixRow {
	service, outstanding := serviceFor(c), max(64, 2*c)
	srv, ref := newLoadServer(t, c, service, mode), newLoadServer(t, c, service, mode)
	w := newLimitWatch()
	tr, static := adaptiveTransport(t, outstanding, w), staticTransport(t, outstanding, c)
	var run, refRun *loadRun
	both(func() { run = load(t, tr, srv.URL, outstanding, learnSpan+measureSpan) },
		func() { refRun = load(t, static, ref.URL, outstanding, learnSpan+measureSpan) })
	got, want := run.window(learnSpan, learnSpan+measureSpan), refRun.window(learnSpan, learnSpan+measureSpan)
	lo, hi := measured(t, w, srv.URL, outstanding, run)
	row := matrixRow{cell: fmt.Sprintf("%s, capacity %d", mode, c), shed: got.shedShare(),
		goodput: got.goodput() / (float64(c) / srv.meanService().Seconds()), vsStatic: got.goodput() / want.goodput(),
		limitMin: lo, limitMax: hi, note: fmt.Sprintf("%d ok, %d 503", got.ok, got.shed)}
	assert.Zero(t, got.other+want.other+want.shed)
	assert.LessOrEqual(t, row.shed, maxShed(0.05), "share of 503s after learning")
	assert.GreaterOrEqual(t, row.vsStatic, 0.85, "goodput after learning, as a share of a static limit's at the capacity")
	return []matrixRow{row}
}

// slowCell drives a server that slows down beyond capacity c, never failing, and, at the same
// moments, an identical server through a static limit at c. After twice learnSpan (the latency
// signal judges rounds of a round trip or more, which the server makes long), the goodput must
// be at least 85% of the static limit's, and the round trip at most 2.5 times its.
func slowCell(t *testing.T, c int) []matrixRow {
	// Twice the service time of the shedding servers: the latency signal counts a slowdown of
	// 20 ms or more, and half the baseline or more.
	service, outstanding := 2*serviceFor(c), max(64, 2*c)
	srv, ref := newLoadServer(t, c, service, slowsDown), newLoadServer(t, c, service, slowsDown)
	w := newLimitWatch()
	tr, static := adaptiveTransport(t, outstanding, w), staticTransport(t, outstanding, c)
	learn := 2 * learnSpan
	var run, refRun *loadRun
	stalls := stallwatch.Process(time.Now())
	both(func() { run = load(t, tr, srv.URL, outstanding, learn+measureSpan) },
		func() { refRun = load(t, static, ref.URL, outstanding, learn+measureSpan) })
	spells := stalls()
	got, want := run.window(learn, learn+measureSpan), refRun.window(learn, learn+measureSpan)
	lo, hi := w.limitsBetween(hostOf(t, srv.URL), initialLimit(outstanding), run.start.Add(learn), run.start.Add(learn+measureSpan))
	row := matrixRow{cell: fmt.Sprintf("%s, capacity %d", slowsDown, c),
		goodput: got.goodput() / (float64(c) / srv.meanService().Seconds()), vsStatic: got.goodput() / want.goodput(),
		limitMin: lo, limitMax: hi,
		note: fmt.Sprintf("round trip %.2f× the static limit's", got.rtt.Seconds()/want.rtt.Seconds())}
	assert.Zero(t, got.shed+got.other)
	assert.GreaterOrEqual(t, row.vsStatic, 0.85, "goodput after learning, as a share of a static limit's at the capacity")
	// The latency signal holds round trips at about 1.5 times its baseline, which the first
	// connections raise: at most 2.5 times the static limit's. A client starved of processors
	// while it learns (the process stalled for 10 ms or more: other work, the race detector)
	// learns a higher baseline, and holds a higher limit: at most 3.5 times then. Measured alone
	// under the race detector, at capacity 4: 1.64-1.78 times quiet, 2.02-2.53 with a busy loop
	// on each core; beside other cells, 1.73-2.90, and once 4.51 with two busy loops a core.
	bound := 2.5
	if stall := stalledBefore(spells, run.start.Add(learn+measureSpan), learn+measureSpan); stall > 0 {
		bound = 3.5
		t.Logf("the process stalled for %v: a client starved of processors learns a higher baseline", stall.Round(time.Millisecond))
		row.note += fmt.Sprintf(" (the process stalled %v)", stall.Round(time.Millisecond))
	}
	assert.LessOrEqual(t, got.rtt.Seconds(), bound*want.rtt.Seconds(), "mean round trip after learning, against a static limit's")
	assert.True(t, w.saw(hostOf(t, srv.URL), httpfutures.LimitSlowed), "the latency signal lowered it")
	return []matrixRow{row}
}

// stepCell drives a server whose capacity drops from 16 to 4 and comes back. One second after the
// drop, at most 10% of the responses may be 503s; after the rise, the limit must be back at 14
// within 2 s (within 100 service times, if the machine makes them longer).
func stepCell(t *testing.T, mode capacityMode) []matrixRow {
	const outstanding = 64
	srv := newLoadServer(t, 16, serviceTime, mode)
	host := hostOf(t, srv.URL)
	w := newLimitWatch()
	tr := adaptiveTransport(t, outstanding, w)
	drop, rise, end := time.Second, 3*time.Second, 5*time.Second
	var run *loadRun
	both(func() { run = load(t, tr, srv.URL, outstanding, end) }, func() {
		time.Sleep(drop)
		srv.capacity.Store(4)
		time.Sleep(rise - drop)
		srv.capacity.Store(16)
	})
	after := run.window(drop+time.Second, rise)
	lo, hi := w.limitsBetween(host, initialLimit(outstanding), run.start.Add(drop+time.Second), run.start.Add(rise))
	down := matrixRow{cell: fmt.Sprintf("capacity 16 → 4, %s", mode), shed: after.shedShare(),
		goodput: after.goodput() / (4 / srv.meanService().Seconds()), limitMin: lo, limitMax: hi,
		note: "1-2 s after the drop"}
	assert.Zero(t, after.other)
	assert.LessOrEqual(t, down.shed, maxShed(0.10), "share of 503s one second after the drop")
	back, ok := w.firstAt(host, run.start.Add(rise), func(l int) bool { return l >= 14 })
	took := back.Sub(run.start.Add(rise))
	assert.True(t, ok && took <= max(2*time.Second, 100*srv.meanService()), "the limit is back at 14 within 2 s of the rise: %v", took)
	final := run.window(rise+time.Second, end)
	lo, hi = w.limitsBetween(host, initialLimit(outstanding), run.start.Add(rise+time.Second), run.start.Add(end))
	up := matrixRow{cell: fmt.Sprintf("capacity 4 → 16, %s", mode), shed: final.shedShare(),
		goodput: final.goodput() / (16 / srv.meanService().Seconds()), limitMin: lo, limitMax: hi,
		note: fmt.Sprintf("back at 14 %v after the rise; 1-2 s after it", took.Round(time.Millisecond))}
	return []matrixRow{down, up}
}

// jitterCell drives a server that never fails and answers in log-normal times, and checks that
// the limit never falls.
func jitterCell(t *testing.T, median time.Duration, sigma float64, outstanding int) []matrixRow {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(float64(median) * math.Exp(sigma*rand.NormFloat64())))
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return healthyCell(t, fmt.Sprintf("healthy, log-normal: median %v, σ %.1f", median, sigma), srv.URL, outstanding)
}

// healthyCell drives a server that never fails nor slows down, with outstanding requests and as
// many workers, and checks that the limit never falls: it stays at the concurrency in use.
//
// Unless the process stalled: a machine that gives it no processor for a while (other work, a
// virtual machine's neighbors) delays every round trip of that while alike, which is what a
// server slowing down looks like from here, and AdaptiveLimit documents that a client starved
// so lowers its limit. A decrease is accepted, and said, only within a second after the
// process stalled for 10 ms or more (stallwatch.Process: a ticker's goroutine two ticks late).
func healthyCell(t *testing.T, name, url string, outstanding int) []matrixRow {
	w := newLimitWatch()
	tr := adaptiveTransport(t, outstanding, w)
	stalls := stallwatch.Process(time.Now())
	run := load(t, tr, url, outstanding, learnSpan+measureSpan)
	spells := stalls()
	got := run.window(learnSpan, learnSpan+measureSpan)
	host := hostOf(t, url)
	lo, hi := measured(t, w, url, outstanding, run)
	decreases := w.decreases(host)
	row := matrixRow{cell: name, limitMin: lo, limitMax: hi,
		note: fmt.Sprintf("%d outstanding, %.0f/s, %d decreases", outstanding, got.goodput(), len(decreases))}
	assert.Zero(t, got.shed+got.other)
	var unexplained []httpfutures.LimitChange
	for _, d := range decreases {
		if stall := stalledBefore(spells, d.At, time.Second); stall > 0 {
			t.Logf("the limit fell %d to %d (%v) at %v, after the process stalled for %v: a client starved of processors",
				d.From, d.To, d.Reason, d.At.Sub(run.start).Round(time.Millisecond), stall.Round(time.Millisecond))
			row.note += fmt.Sprintf(" (after the process stalled %v)", stall.Round(time.Millisecond))
			continue
		}
		unexplained = append(unexplained, d)
	}
	assert.Empty(t, unexplained, "the limit of a healthy server never falls, but after the process stalled")
	if len(decreases) == 0 {
		assert.Equal(t, outstanding, lo, "the limit stays at the concurrency in use")
	}
	return []matrixRow{row}
}

// stalledBefore returns how long the longest of spells that ended within d before at lasted;
// zero if none did.
func stalledBefore(spells []stallwatch.Spell, at time.Time, d time.Duration) time.Duration {
	var longest time.Duration
	for _, s := range spells {
		end := time.Unix(0, s[1])
		if !end.After(at) && at.Sub(end) <= d {
			longest = max(longest, time.Duration(s[1]-s[0]))
		}
	}
	return longest
}

// twoHostsCell drives two hosts at once through one transport, one of capacity 2 that sheds
// beyond it, one healthy: the first sheds at most 5% after learning, the second's limit never
// falls.
func twoHostsCell(t *testing.T) []matrixRow {
	const outstanding = 16
	weak := newLoadServer(t, 2, serviceTime, shedAtOnce)
	strong := newLoadServer(t, 1<<20, serviceTime, shedAtOnce)
	w := newLimitWatch()
	tr := newTransport(t, nil, httpfutures.WithWorkers(2*outstanding), httpfutures.WithAdaptiveHostLimit(outstanding),
		httpfutures.WithLimitChanged(w.record))
	var weakRun, strongRun *loadRun
	both(func() { weakRun = load(t, tr, weak.URL, outstanding, learnSpan+measureSpan) },
		func() { strongRun = load(t, tr, strong.URL, outstanding, learnSpan+measureSpan) })
	var rows []matrixRow
	for _, h := range []struct {
		name string
		srv  *capacityServer
		run  *loadRun
		c    int
	}{{"two hosts: capacity 2, 503 at once", weak, weakRun, 2}, {"two hosts: the other, healthy", strong, strongRun, outstanding}} {
		got := h.run.window(learnSpan, learnSpan+measureSpan)
		lo, hi := measured(t, w, h.srv.URL, outstanding, h.run)
		rows = append(rows, matrixRow{cell: h.name, shed: got.shedShare(),
			goodput: got.goodput() / (float64(h.c) / h.srv.meanService().Seconds()), limitMin: lo, limitMax: hi,
			note: fmt.Sprintf("%d decreases", len(w.decreases(hostOf(t, h.srv.URL))))})
	}
	assert.LessOrEqual(t, rows[0].shed, maxShed(0.05), "share of 503s of the overloaded host after learning")
	assert.Zero(t, rows[1].shed)
	assert.Empty(t, w.decreases(hostOf(t, strong.URL)), "the healthy host's limit never falls")
	return rows
}

// staticCell drives a server of capacity 16 that sheds at once through a static limit of 32: for
// the table, what a guess over the capacity gets.
func staticCell(t *testing.T) []matrixRow {
	const outstanding = 64
	srv := newLoadServer(t, 16, serviceTime, shedAtOnce)
	run := load(t, staticTransport(t, outstanding, 32), srv.URL, outstanding, measureSpan)
	got := run.window(0, measureSpan)
	// Mostly 503s on an idle machine; fewer where the race detector slows the client that
	// sends them.
	assert.Greater(t, got.shedShare(), 0.25, "a static limit of 32 gets 503s")
	return []matrixRow{{cell: "static limit 32, capacity 16, 503 at once", shed: got.shedShare(),
		goodput: got.goodput() / (16 / srv.meanService().Seconds()), limitMin: 32, limitMax: 32,
		note: fmt.Sprintf("%.0f 503s a second", float64(got.shed)/measureSpan.Seconds())}}
}

// newJSONServer starts a server that answers 25 bytes of JSON at once, and returns its URL.
func newJSONServer(t testing.TB) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":1234567,"ok":true}`+"\n")
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// newGoHTTPBin starts go-httpbin, and returns the URL of its /get.
func newGoHTTPBin(t testing.TB) string {
	ts := httptest.NewServer(httpbin.New())
	t.Cleanup(ts.Close)
	return ts.URL + "/get"
}
