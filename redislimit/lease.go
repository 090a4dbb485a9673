package redislimit

import (
	"math"
	"time"
)

// A lease is a batch of tokens leased from Redis, handed out one by one on their schedule, and
// what sizes the next one: the demand since the last was asked. Its zero value holds no token.
// It is guarded by the Limiter's mu.
type lease struct {
	first     time.Time     // when token 0 is due on the quota's timeline
	interval  time.Duration // between the quota's tokens
	pfirst    time.Time     // when token 0 is due on the host's pace; zero if no pace
	pinterval time.Duration // between the pace's tokens; zero if no pace
	granted   time.Time     // when Redis granted it: no token lapses before then
	end       string        // the quota's TAT after the lease, as Redis stores it
	n, used   int           // tokens leased and handed out (or lapsed)

	asked time.Time // when the lease was asked for; zero before the first
	calls int       // reservations since then
}

// dueOf returns when token i is due.
func (ls *lease) dueOf(i int) time.Time {
	due := ls.first.Add(time.Duration(i) * ls.interval)
	if ls.pinterval > 0 {
		due = later(due, ls.pfirst.Add(time.Duration(i)*ls.pinterval))
	}
	return due
}

// take hands out the next token that has not lapsed at now, and returns when it is due and how
// many lapsed; ok is false if the lease is spent.
func (ls *lease) take(now time.Time) (due time.Time, ok bool, lapsed int) {
	for ls.used < ls.n {
		due = ls.dueOf(ls.used)
		ls.used++
		if now.Sub(later(due, ls.granted)) <= lapseAfter {
			return due, true, lapsed
		}
		lapsed++
	}
	return time.Time{}, false, lapsed
}

// drop lapses the tokens due before t and returns how many.
func (ls *lease) drop(t time.Time) int {
	k := 0
	for ls.used < ls.n && ls.dueOf(ls.used).Before(t) {
		ls.used++
		k++
	}
	return k
}

// nextSize returns how many tokens the next lease, asked at now, should hold: what span of the
// demand since the last one needs, at most span's worth at interval, at least 1.
func (ls *lease) nextSize(now time.Time, span, interval time.Duration) int {
	asked, calls := ls.asked, ls.calls
	ls.asked, ls.calls = now, 0
	if span <= 0 {
		return 1
	}
	most := max(1, int(math.Ceil(float64(span)/float64(interval))))
	if asked.IsZero() {
		return 1
	}
	elapsed := now.Sub(asked)
	if elapsed <= 0 {
		return most
	}
	n := int(math.Ceil(float64(calls) * float64(span) / float64(elapsed)))
	return min(max(n, 1), most)
}

// install makes ls hold the tokens of g, n of them at interval, granted at got.
func (ls *lease) install(g grant, n int, interval time.Duration, got time.Time) {
	ls.first, ls.interval = g.first, interval
	ls.pfirst, ls.pinterval = g.pfirst, g.pinterval
	ls.granted, ls.end = got, g.end
	ls.n, ls.used = n, 0
}

// unused returns the tokens not handed out, and the quota's TAT after the lease.
func (ls *lease) unused() (int, string) {
	return ls.n - ls.used, ls.end
}
