package redislimit_test

import "time"

// A machine busy enough may give a process no core at all for a while, or too seldom: no limiter
// sends then, so the tests that measure a rate on a busy machine leave that time out, and say
// how long it was. A ticker's goroutine that wakes a tick late or more sees it.

// stallTick is how often watchStalls looks at the clock.
const stallTick = 5 * time.Millisecond

// watchStalls notes, from start until the returned func is called, the spells in which the
// process did not run, as a ticker's goroutine that wakes a tick late or more sees them: a
// machine too busy to give it a core for a while, or often. The func returns them.
func watchStalls(start time.Time) func() [][2]int64 {
	stop := make(chan struct{})
	done := make(chan [][2]int64, 1)
	go func() {
		var stalls [][2]int64
		defer func() { done <- stalls }()
		select {
		case <-stop:
			return
		case <-time.After(time.Until(start)):
		}
		tick := time.NewTicker(stallTick)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if now.Sub(last) > 2*stallTick {
					stalls = append(stalls, [2]int64{last.Add(stallTick).UnixNano(), now.UnixNano()})
				}
				last = now
			}
		}
	}()
	return func() [][2]int64 {
		close(stop)
		return <-done
	}
}

// stalledTogether returns how long, in [from, to), every process of reports was stalled at once.
func stalledTogether(reports []fleetReport, from, to time.Time) time.Duration {
	all := [][2]int64{{from.UnixNano(), to.UnixNano()}}
	for _, r := range reports {
		all = intersect(all, r.Stalls)
	}
	var d time.Duration
	for _, a := range all {
		d += time.Duration(a[1] - a[0])
	}
	return d
}

// intersect returns the spells in both a and b, each sorted and without overlaps.
func intersect(a, b [][2]int64) [][2]int64 {
	var both [][2]int64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		if lo, hi := max(a[i][0], b[j][0]), min(a[i][1], b[j][1]); lo < hi {
			both = append(both, [2]int64{lo, hi})
		}
		if a[i][1] < b[j][1] {
			i++
		} else {
			j++
		}
	}
	return both
}
