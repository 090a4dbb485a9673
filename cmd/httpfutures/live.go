package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/term"

	"github.com/httpfutures/httpfutures/loadgen"
)

const (
	liveEvery  = time.Second
	liveWindow = 60 // seconds of the charts
)

// isTerminal reports whether w is a terminal. Pipes, files, buffers and /dev/null are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// liveStats is what the status line of the live view shows.
type liveStats struct {
	elapsed    time.Duration
	rate       float64 // achieved over the last period, requests/s
	target     float64 // the timetable's rate now; 0 in the closed model
	inFlight   int64
	p50, p99   time.Duration // of the last period
	errors     uint64        // so far, not a success
	done       uint64
	hasLatency bool
}

func (s liveStats) String() string {
	line := fmt.Sprintf("%6.1fs  %d done  %.0f req/s", s.elapsed.Seconds(), s.done, s.rate)
	if s.target > 0 {
		line += fmt.Sprintf(" (target %.0f)", s.target)
	}
	line += fmt.Sprintf("  %d in flight", s.inFlight)
	if s.hasLatency {
		line += "  p50 " + loadgen.FormatDuration(s.p50) + "  p99 " + loadgen.FormatDuration(s.p99)
	}
	return line + fmt.Sprintf("  %d errors", s.errors)
}

// A liveView draws, on a terminal, a status line a second and under it two small charts of the
// last minute: the rate achieved and the p99 latency, a column a second, as oha's. Its zero
// value is not ready: use newLiveView, which returns nil where there is no terminal; a nil
// *liveView draws nothing.
type liveView struct {
	w io.Writer

	mu     sync.Mutex              // guards recent
	recent *hdrhistogram.Histogram // latencies since the last draw

	// Read and written by the drawing goroutine alone.
	rates, p99s []float64 // the charts' columns, the newest last, at most liveWindow
	drawn       int       // lines on screen, to draw over
}

// newLiveView returns a view on w, or nil if w is not a terminal.
func newLiveView(w io.Writer) *liveView {
	if !isTerminal(w) {
		return nil
	}
	return &liveView{w: w, recent: newLiveHist()}
}

func newLiveHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(24*time.Hour), 2)
}

// observe notes a result's latency, for the p99 of the second; it is the attack's OnResult.
func (v *liveView) observe(r *loadgen.Result) {
	v.mu.Lock()
	_ = v.recent.RecordValue(min(max(int64(r.Latency), 1), int64(24*time.Hour)))
	v.mu.Unlock()
}

// observer is the view's OnResult, or nil for a nil view.
func (v *liveView) observer() func(*loadgen.Result) {
	if v == nil {
		return nil
	}
	return v.observe
}

// start draws the view every second from a's progress until the returned function is called;
// that function erases it. On a nil view it does nothing.
func (v *liveView) start(a *loadgen.Attacker) (stop func()) {
	if v == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(liveEvery)
		defer t.Stop()
		last, lastAt := uint64(0), time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(v.w, v.erase())
				return
			case now := <-t.C:
				s := v.stats(a.Progress(), now, &last, &lastAt)
				fmt.Fprint(v.w, v.frame(s))
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// stats measures the period since *lastAt, and moves it on.
func (v *liveView) stats(p loadgen.Progress, now time.Time, last *uint64, lastAt *time.Time) liveStats {
	s := liveStats{
		elapsed:  p.Elapsed,
		done:     p.Done,
		rate:     float64(p.Done-*last) / now.Sub(*lastAt).Seconds(),
		inFlight: p.InFlight,
		errors:   p.Failed,
		target:   p.TargetRate,
	}
	*last, *lastAt = p.Done, now
	v.mu.Lock()
	h := v.recent
	v.recent = newLiveHist()
	v.mu.Unlock()
	if h.TotalCount() > 0 {
		s.hasLatency = true
		s.p50, s.p99 = time.Duration(h.ValueAtQuantile(50)), time.Duration(h.ValueAtQuantile(99))
	}
	return s
}

// frame adds s to the charts and returns what draws the view over the last one: the status
// line, then the rate and the p99 of each second of the last minute.
func (v *liveView) frame(s liveStats) string {
	v.rates = appendWindow(v.rates, s.rate)
	p99 := math.NaN() // no request ended: a gap in the chart
	if s.hasLatency {
		p99 = float64(s.p99)
	}
	v.p99s = appendWindow(v.p99s, p99)
	rateMax, p99Max := maxOf(v.rates), maxOf(v.p99s)
	lines := []string{
		s.String(),
		fmt.Sprintf("req/s %-*s  max %.0f", liveWindow, sparkline(v.rates, rateMax), rateMax),
		fmt.Sprintf("p99   %-*s  max %s", liveWindow, sparkline(v.p99s, p99Max), loadgen.FormatDuration(time.Duration(p99Max))),
	}
	var b strings.Builder
	b.WriteString(v.erase())
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("\r\x1b[K" + l)
	}
	v.drawn = len(lines)
	return b.String()
}

// erase returns what moves the cursor back to the first line drawn and clears to the end of
// the screen.
func (v *liveView) erase() string {
	s := "\r"
	if v.drawn > 1 {
		s += fmt.Sprintf("\x1b[%dA", v.drawn-1)
	}
	v.drawn = 0
	return s + "\x1b[J"
}

func appendWindow(xs []float64, x float64) []float64 {
	xs = append(xs, x)
	if len(xs) > liveWindow {
		xs = xs[len(xs)-liveWindow:]
	}
	return xs
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		if !math.IsNaN(x) {
			m = max(m, x)
		}
	}
	return m
}

// sparkBlocks are the eight heights of a sparkline's column.
var sparkBlocks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws xs, scaled to hi, as a column of a block each; a NaN is a space.
func sparkline(xs []float64, hi float64) string {
	var b strings.Builder
	for _, x := range xs {
		switch {
		case math.IsNaN(x):
			b.WriteByte(' ')
		case hi <= 0:
			b.WriteRune(sparkBlocks[0])
		default:
			i := int(math.Round(x / hi * float64(len(sparkBlocks)-1)))
			b.WriteRune(sparkBlocks[min(max(i, 0), len(sparkBlocks)-1)])
		}
	}
	return b.String()
}
