package httpfutures

import "time"

// The containers of the Scheduler. None of them allocates per element beyond slice growth, and
// none is safe for concurrent use: the Scheduler guards them with its mutex.

// hostQueue is a host's queue: the requests of priority 0, the common case, in a FIFO ring, and
// those of other priorities in a heap. The highest priority leaves first, then the oldest. Each
// future knows its place (index), so a canceled one leaves at once: from the heap in O(log n),
// from the ring in O(1), its slot left empty until the head passes it.
type hostQueue struct {
	fifo futureRing
	heap indexedHeap[*Future, byPriority]
}

func (q *hostQueue) len() int { return q.fifo.live + q.heap.len() }

func (q *hostQueue) push(f *Future) {
	if f.priority() == 0 {
		q.fifo.push(f)
	} else {
		q.heap.push(f)
	}
}

func (q *hostQueue) peek() *Future {
	first := q.fifo.peek()
	if q.heap.len() > 0 {
		if top := q.heap.peek(); first == nil || top.priority() > 0 {
			return top
		}
	}
	return first
}

func (q *hostQueue) pop() *Future {
	f := q.peek()
	q.remove(f)
	return f
}

func (q *hostQueue) remove(f *Future) {
	if f.priority() == 0 {
		q.fifo.remove(f)
	} else {
		q.heap.remove(f)
	}
}

// appendAll appends the queued futures to out, in no particular order.
func (q *hostQueue) appendAll(out []*Future) []*Future {
	for p := q.fifo.head; p < q.fifo.tail; p++ {
		if f := q.fifo.buf[p%len(q.fifo.buf)]; f != nil {
			out = append(out, f)
		}
	}
	return append(out, q.heap.items...)
}

// maxKeptRing is the largest ring buffer a host keeps once its queue drains (8 KiB): a fan-out
// that keeps up to this many requests queued does not grow it again for every batch.
const maxKeptRing = 1024

// futureRing is a FIFO of futures in a ring buffer. Positions are absolute (they only grow), and
// a future's index is its position, so that it can be removed in place.
type futureRing struct {
	buf  []*Future
	head int // position of the first slot, maybe empty
	tail int // position after the last slot
	live int // slots not empty
}

func (r *futureRing) push(f *Future) {
	if r.tail-r.head == len(r.buf) {
		grown := make([]*Future, max(8, 2*len(r.buf)))
		for p := r.head; p < r.tail; p++ {
			grown[p%len(grown)] = r.buf[p%len(r.buf)]
		}
		r.buf = grown
	}
	r.buf[r.tail%len(r.buf)] = f
	f.index = r.tail
	r.tail++
	r.live++
}

func (r *futureRing) peek() *Future {
	for r.head < r.tail {
		if f := r.buf[r.head%len(r.buf)]; f != nil {
			return f
		}
		r.head++
	}
	return nil
}

func (r *futureRing) remove(f *Future) {
	r.buf[f.index%len(r.buf)] = nil
	f.index = -1
	r.live--
	if r.live == 0 {
		r.head, r.tail = 0, 0
		if len(r.buf) > maxKeptRing {
			r.buf = nil // give back the memory of a drained burst
		}
	}
}

// hostRing is the round-robin of hosts that a worker may take a request from: a FIFO of hosts,
// each at most once (host.inRing).
type hostRing struct {
	buf  []*host
	head int
	n    int
}

func (r *hostRing) len() int { return r.n }

func (r *hostRing) push(h *host) {
	if r.n == len(r.buf) {
		grown := make([]*host, max(8, 2*len(r.buf)))
		for i := range r.n {
			grown[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = h
	r.n++
}

func (r *hostRing) pop() *host {
	h := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return h
}

// An indexedHeap is a binary heap whose elements know their position in it (kept by O), so that
// any of them leaves, or moves when its key changes, in O(log n). O orders the elements; its zero
// value is ready to use.
type indexedHeap[T any, O heapOrder[T]] struct {
	items []T
	order O
}

// heapOrder orders the elements of an indexedHeap and keeps their positions.
type heapOrder[T any] interface {
	less(a, b T) bool // a leaves before b
	pos(T) *int       // where the element keeps its position; -1 when out of the heap
}

func (h *indexedHeap[T, O]) len() int { return len(h.items) }

// peek returns the first element; the heap must not be empty.
func (h *indexedHeap[T, O]) peek() T { return h.items[0] }

func (h *indexedHeap[T, O]) push(x T) {
	*h.order.pos(x) = len(h.items)
	h.items = append(h.items, x)
	h.up(len(h.items) - 1)
}

func (h *indexedHeap[T, O]) pop() T {
	x := h.items[0]
	h.remove(x)
	return x
}

func (h *indexedHeap[T, O]) remove(x T) {
	i, last := *h.order.pos(x), len(h.items)-1
	if i != last {
		h.swap(i, last)
	}
	var zero T
	h.items[last] = zero
	h.items = h.items[:last]
	*h.order.pos(x) = -1
	if i != last {
		h.fix(i)
	}
	if cap(h.items) > 64 && len(h.items) < cap(h.items)/4 {
		h.items = append([]T(nil), h.items...) // give back the memory of a drained burst
	}
}

// fix restores the heap after the key of the element at i changed.
func (h *indexedHeap[T, O]) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h *indexedHeap[T, O]) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	*h.order.pos(h.items[i]) = i
	*h.order.pos(h.items[j]) = j
}

func (h *indexedHeap[T, O]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.order.less(h.items[i], h.items[p]) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *indexedHeap[T, O]) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h.items) {
			break
		}
		c := l
		if r := l + 1; r < len(h.items) && h.order.less(h.items[r], h.items[l]) {
			c = r
		}
		if !h.order.less(h.items[c], h.items[i]) {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}

// byPriority orders a host's prioritized requests: highest priority first, then the oldest.
type byPriority struct{}

func (byPriority) less(a, b *Future) bool {
	if pa, pb := a.priority(), b.priority(); pa != pb {
		return pa > pb
	}
	return int32(a.seq-b.seq) < 0 // in submission order, across the counter wrapping
}
func (byPriority) pos(f *Future) *int { return &f.index }

// byWake orders the hosts waiting for a time: a pause to end, or a rate token to come due.
type byWake struct{}

func (byWake) less(a, b *host) bool { return a.wakeAt.Before(b.wakeAt) }
func (byWake) pos(h *host) *int     { return &h.timerIdx }

// byEviction orders the idle hosts by when they may be forgotten.
type byEviction struct{}

func (byEviction) less(a, b *host) bool { return a.evictAt.Before(b.evictAt) }
func (byEviction) pos(h *host) *int     { return &h.idleIdx }

// byRetry orders the requests waiting to be tried again.
type byRetry struct{}

func (byRetry) less(a, b *Future) bool { return a.more.due < b.more.due }
func (byRetry) pos(f *Future) *int     { return &f.more.index }

// setWake makes h wait until at, or keeps the later time if it waits already.
func setWake(t *indexedHeap[*host, byWake], h *host, at time.Time) {
	if h.timerIdx < 0 {
		h.wakeAt = at
		t.push(h)
		return
	}
	if at.After(h.wakeAt) {
		h.wakeAt = at
		t.fix(h.timerIdx)
	}
}
