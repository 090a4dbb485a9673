package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

const liveEvery = time.Second

// isTerminal reports whether w is a terminal. Pipes, files, buffers and /dev/null are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// liveStats is what one line of the live view shows.
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
		line += "  p50 " + fmtDuration(s.p50) + "  p99 " + fmtDuration(s.p99)
	}
	return line + fmt.Sprintf("  %d errors", s.errors)
}

// startLive refreshes a one-line status on w every second, if w is a terminal, until the
// returned function is called; that function erases the line. On anything else it does
// nothing.
func startLive(w io.Writer, a *attacker) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	a.m.takeRecent() // from now on, latencies are kept for the view too
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(liveEvery)
		defer t.Stop()
		start := time.Now()
		last, lastAt := uint64(0), start
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case now := <-t.C:
				fmt.Fprint(w, "\r\x1b[K"+a.liveStats(start, now, &last, &lastAt).String())
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

// liveStats measures the period since *lastAt, and moves it on.
func (a *attacker) liveStats(start, now time.Time, last *uint64, lastAt *time.Time) liveStats {
	n := a.m.done.Load()
	s := liveStats{
		elapsed:  now.Sub(start),
		done:     n,
		rate:     float64(n-*last) / now.Sub(*lastAt).Seconds(),
		inFlight: a.submitted.Load() - a.finished.Load(),
		errors:   a.m.failed.Load(),
	}
	*last, *lastAt = n, now
	if a.cfg.rate != nil {
		i := a.cfg.rate.due(s.elapsed)
		if off, ok := a.cfg.rate.offset(i); ok {
			if next, ok := a.cfg.rate.offset(i + 1); ok && next > off {
				s.target = float64(time.Second) / float64(next-off)
			}
		}
	}
	if h := a.m.takeRecent(); h != nil && h.TotalCount() > 0 {
		s.hasLatency = true
		s.p50, s.p99 = time.Duration(h.ValueAtQuantile(50)), time.Duration(h.ValueAtQuantile(99))
	}
	return s
}
