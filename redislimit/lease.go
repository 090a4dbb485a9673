package redislimit

import (
	"math"
	"time"
)

// A batch is tokens leased from Redis in one call, due on a schedule. Its zero value holds none.
type batch struct {
	first     time.Time     // when token 0 is due on the quota's timeline
	interval  time.Duration // between the quota's tokens
	pfirst    time.Time     // when token 0 is due on the host's pace; zero if no pace
	pinterval time.Duration // between the pace's tokens; zero if no pace
	granted   time.Time     // when Redis granted it: no token lapses before then
	lapse     time.Duration // how late a token may be used
	end       string        // the quota's TAT after the batch, as Redis stores it
	n, used   int           // tokens leased and handed out (or lapsed)
}

// dueOf returns when token i is due.
func (b *batch) dueOf(i int) time.Time {
	due := b.first.Add(time.Duration(i) * b.interval)
	if b.pinterval > 0 {
		due = later(due, b.pfirst.Add(time.Duration(i)*b.pinterval))
	}
	return due
}

// take hands out the next token that has not lapsed at now, and returns when it is due and how
// many lapsed; ok is false if the batch is spent.
func (b *batch) take(now time.Time) (due time.Time, ok bool, lapsed int) {
	for b.used < b.n {
		due = b.dueOf(b.used)
		b.used++
		if now.Sub(later(due, b.granted)) <= b.lapse {
			return due, true, lapsed
		}
		lapsed++
	}
	return time.Time{}, false, lapsed
}

// drop lapses the tokens due before t and returns how many.
func (b *batch) drop(t time.Time) int {
	k := 0
	for b.used < b.n && b.dueOf(b.used).Before(t) {
		b.used++
		k++
	}
	return k
}

// A lease is the tokens a Limiter holds for one quota (or one paced host): the batch it hands
// out, and the next, leased ahead once the first is half spent, so that the process is never
// without a token while it asks Redis for more, nor the quota's timeline idle meanwhile. It
// keeps what sizes the next batch (the demand since the last was asked) and what goes back with
// it (the tokens that lapsed unused, which the processes that can spend them lease again). Its
// zero value holds no token. It is guarded by the Limiter's mu.
type lease struct {
	cur, next batch

	asked time.Time  // when the last batch was asked for; zero before the first
	calls int        // reservations since then
	owed  int        // tokens that lapsed unused since then: given back with the next batch
	call  *leaseCall // the call for the next batch, while it runs; nil if none
}

// take hands out the next token that has not lapsed at now, as batch.take does, and owes back
// the tokens that lapsed.
func (ls *lease) take(now time.Time) (due time.Time, ok bool, lapsed int) {
	defer func() { ls.owed += lapsed }()
	for {
		due, ok, k := ls.cur.take(now)
		lapsed += k
		if ok || ls.next.n == 0 {
			return due, ok, lapsed
		}
		ls.cur, ls.next = ls.next, batch{}
	}
}

// low reports whether the next batch should be leased now: none is leased ahead, and the
// current one is half spent.
func (ls *lease) low() bool {
	return ls.next.n == 0 && ls.cur.n-ls.cur.used <= ls.cur.n/2
}

// needed returns when the tokens not handed out are due to be spent: by then the next batch is
// needed.
func (ls *lease) needed() time.Time {
	b := &ls.cur
	if ls.next.n > 0 {
		b = &ls.next
	}
	if b.used >= b.n {
		return time.Time{}
	}
	return b.dueOf(b.n - 1)
}

// add takes b in, as the current batch if that is spent, else as the next.
func (ls *lease) add(b batch) {
	if ls.cur.used >= ls.cur.n {
		ls.cur = b
	} else {
		ls.next = b
	}
}

// drop lapses the tokens due before t and returns how many.
func (ls *lease) drop(t time.Time) int {
	return ls.cur.drop(t) + ls.next.drop(t)
}

// unused returns how many tokens are not handed out.
func (ls *lease) unused() int {
	return ls.cur.n - ls.cur.used + ls.next.n - ls.next.used
}

// last returns the tokens of the last batch not handed out, and the quota's TAT after it: what
// may be given back, if no one has leased since.
func (ls *lease) last() (int, string) {
	b := &ls.cur
	if ls.next.n > 0 {
		b = &ls.next
	}
	return b.n - b.used, b.end
}

// nextSize returns how many tokens the next batch, asked at now, should hold: what span of the
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

// newBatch returns the batch of g, its tokens at interval, granted at got, each to be used at
// most lapse after its time.
func newBatch(g grant, interval, lapse time.Duration, got time.Time) batch {
	return batch{
		first: g.first, interval: interval, pfirst: g.pfirst, pinterval: g.pinterval,
		granted: got, lapse: lapse, end: g.end, n: g.n,
	}
}
