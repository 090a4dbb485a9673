package httpfutures

import (
	"cmp"
	"fmt"
	"slices"
)

// Priority shedding: a full queue (WithQueueLimit) admits a request of higher priority than the
// lowest queued, and sheds that one, the newest of the lowest priority first.

// errShed is the error of a queued request shed to admit one of higher priority.
var errShed = fmt.Errorf("%w: shed for a request of higher priority", ErrQueueFull)

// A shedQueue is the requests queued for their first attempt, by priority, so that a full queue
// finds the newest of the lowest priority without looking at the others. Each level keeps its
// requests in the order they were queued; one that leaves is cleared in place (Future.shedPos
// tells where), the cleared tail is cut at once, and a level is compacted once it is mostly
// cleared, so that each request costs a constant time. Retries and hedges' copies are not in it:
// they are never shed. Its zero value is empty. It is kept only with WithQueueLimit, and is
// guarded by Scheduler.mu.
type shedQueue struct {
	levels []shedLevel // by priority, lowest first
}

// A shedLevel is the requests of one priority in a shedQueue. The zero shedLevel is empty, of
// priority 0.
type shedLevel struct {
	priority int
	fs       []*Future // in the order queued; nil where one left; the last is not nil
	live     int       // how many are not nil
}

// maxKeptShed is the largest slice a level keeps once it is empty, and maxShedLevels how many
// levels are kept while empty: those of the priorities in use, with their slices.
const (
	maxKeptShed   = 1024
	maxShedLevels = 8
)

// level returns the index of the level of priority p, made if there is none.
func (q *shedQueue) level(p int) int {
	i, found := slices.BinarySearchFunc(q.levels, p, func(l shedLevel, p int) int { return cmp.Compare(l.priority, p) })
	if !found {
		q.levels = slices.Insert(q.levels, i, shedLevel{priority: p})
	}
	return i
}

// push adds f, just queued.
func (q *shedQueue) push(f *Future) {
	l := &q.levels[q.level(f.priority())]
	l.fs = append(l.fs, f)
	l.live++
	f.shedPos = int32(len(l.fs))
}

// remove takes out f, which leaves the queue.
func (q *shedQueue) remove(f *Future) {
	i := q.level(f.priority())
	l := &q.levels[i]
	l.fs[f.shedPos-1] = nil
	f.shedPos = 0
	l.live--
	n := len(l.fs)
	for n > 0 && l.fs[n-1] == nil {
		n--
	}
	l.fs = l.fs[:n]
	switch {
	case l.live == 0 && len(q.levels) > maxShedLevels:
		q.levels = slices.Delete(q.levels, i, i+1)
	case l.live == 0 && cap(l.fs) > maxKeptShed:
		l.fs = nil
	case n > 64 && l.live < n/2:
		l.compact()
	}
}

// compact closes the gaps of l.
func (l *shedLevel) compact() {
	kept := l.fs[:0]
	for _, f := range l.fs {
		if f != nil {
			kept = append(kept, f)
			f.shedPos = int32(len(kept))
		}
	}
	clear(l.fs[len(kept):])
	l.fs = kept
}

// lowest returns the newest request of the lowest priority; nil if none is queued.
func (q *shedQueue) lowest() *Future {
	for i := range q.levels {
		if l := &q.levels[i]; l.live > 0 {
			return l.fs[len(l.fs)-1]
		}
	}
	return nil
}
