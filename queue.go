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
	heap futureHeap
}

func (q *hostQueue) len() int { return q.fifo.live + len(q.heap) }

func (q *hostQueue) push(f *Future) {
	if f.prio == 0 {
		q.fifo.push(f)
	} else {
		q.heap.push(f)
	}
}

func (q *hostQueue) peek() *Future {
	top, first := q.heap.peek(), q.fifo.peek()
	if top != nil && (first == nil || top.prio > 0) {
		return top
	}
	return first
}

func (q *hostQueue) pop() *Future {
	f := q.peek()
	q.remove(f)
	return f
}

func (q *hostQueue) remove(f *Future) {
	if f.prio == 0 {
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
	return append(out, q.heap...)
}

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
		if len(r.buf) > 64 {
			r.buf = nil // give back the memory of a drained burst
		}
	}
}

// futureHeap is a binary heap of futures, highest priority first, then in the
// order submitted. Each future knows its index, so a canceled one leaves in O(log n).
type futureHeap []*Future

func (q futureHeap) less(i, j int) bool {
	if q[i].prio != q[j].prio {
		return q[i].prio > q[j].prio
	}
	return q[i].seq < q[j].seq
}

func (q futureHeap) swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *futureHeap) push(f *Future) {
	f.index = len(*q)
	*q = append(*q, f)
	q.up(f.index)
}

func (q futureHeap) peek() *Future {
	if len(q) == 0 {
		return nil
	}
	return q[0]
}

func (q *futureHeap) pop() *Future {
	f := (*q)[0]
	q.remove(f)
	return f
}

func (q *futureHeap) remove(f *Future) {
	old := *q
	i, last := f.index, len(old)-1
	if i != last {
		old.swap(i, last)
	}
	old[last] = nil
	*q = old[:last]
	if i != last {
		if !q.down(i) {
			q.up(i)
		}
	}
	f.index = -1
	if cap(*q) > 64 && len(*q) < cap(*q)/4 {
		*q = append(futureHeap(nil), (*q)...) // give back the memory of a drained burst
	}
}

func (q futureHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q futureHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(q) {
			break
		}
		c := l
		if r := l + 1; r < len(q) && q.less(r, l) {
			c = r
		}
		if !q.less(c, i) {
			break
		}
		q.swap(i, c)
		i = c
	}
	return i > start
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

// hostTimers is a min-heap of hosts by the time they wait for: the end of a pause, or a rate
// token coming due.
type hostTimers []*host

func (t hostTimers) swap(i, j int) {
	t[i], t[j] = t[j], t[i]
	t[i].timerIdx = i
	t[j].timerIdx = j
}

func (t *hostTimers) push(h *host) {
	h.timerIdx = len(*t)
	*t = append(*t, h)
	t.up(h.timerIdx)
}

// set makes h wait until at, or keeps the later time if h waits already.
func (t *hostTimers) set(h *host, at time.Time) {
	if h.timerIdx < 0 {
		h.wakeAt = at
		t.push(h)
		return
	}
	if at.After(h.wakeAt) {
		h.wakeAt = at
		t.down(h.timerIdx)
	}
}

func (t *hostTimers) pop() *host {
	old := *t
	h, last := old[0], len(old)-1
	old.swap(0, last)
	old[last] = nil
	*t = old[:last]
	t.down(0)
	h.timerIdx = -1
	return h
}

func (t hostTimers) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t[i].wakeAt.Before(t[p].wakeAt) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t hostTimers) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(t) {
			return
		}
		c := l
		if r := l + 1; r < len(t) && t[r].wakeAt.Before(t[l].wakeAt) {
			c = r
		}
		if !t[c].wakeAt.Before(t[i].wakeAt) {
			return
		}
		t.swap(i, c)
		i = c
	}
}

// hostList is an intrusive doubly linked list of idle hosts, oldest first.
type hostList struct{ front, back *host }

func (l *hostList) pushBack(h *host) {
	h.idlePrev, h.idleNext, h.inIdle = l.back, nil, true
	if l.back != nil {
		l.back.idleNext = h
	} else {
		l.front = h
	}
	l.back = h
}

func (l *hostList) remove(h *host) {
	if h.idlePrev != nil {
		h.idlePrev.idleNext = h.idleNext
	} else {
		l.front = h.idleNext
	}
	if h.idleNext != nil {
		h.idleNext.idlePrev = h.idlePrev
	} else {
		l.back = h.idlePrev
	}
	h.idlePrev, h.idleNext, h.inIdle = nil, nil, false
}

// futureList is an intrusive doubly linked list of a transport's running futures, so that a
// Shutdown whose context ends can cancel them.
type futureList struct{ front *Future }

func (l *futureList) push(f *Future) {
	f.prev, f.next = nil, l.front
	if l.front != nil {
		l.front.prev = f
	}
	l.front = f
}

func (l *futureList) remove(f *Future) {
	if f.prev != nil {
		f.prev.next = f.next
	} else if l.front == f {
		l.front = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	}
	f.prev, f.next = nil, nil
}

// futureTimers is a min-heap of futures waiting to be tried again, by when they are due.
type futureTimers []*Future

func (t futureTimers) swap(i, j int) {
	t[i], t[j] = t[j], t[i]
	t[i].delayIdx = i
	t[j].delayIdx = j
}

func (t *futureTimers) push(f *Future) {
	f.delayIdx = len(*t)
	*t = append(*t, f)
	for i := f.delayIdx; i > 0; {
		p := (i - 1) / 2
		if !(*t)[i].retryAt.Before((*t)[p].retryAt) {
			break
		}
		t.swap(i, p)
		i = p
	}
}

func (t *futureTimers) remove(f *Future) {
	old := *t
	i, last := f.delayIdx, len(old)-1
	old.swap(i, last)
	old[last] = nil
	*t = old[:last]
	f.delayIdx = -1
	if i == last {
		return
	}
	// Restore the heap at i: up, or else down.
	for i > 0 {
		p := (i - 1) / 2
		if !(*t)[i].retryAt.Before((*t)[p].retryAt) {
			break
		}
		t.swap(i, p)
		i = p
	}
	for {
		l := 2*i + 1
		if l >= len(*t) {
			return
		}
		c := l
		if r := l + 1; r < len(*t) && (*t)[r].retryAt.Before((*t)[l].retryAt) {
			c = r
		}
		if !(*t)[c].retryAt.Before((*t)[i].retryAt) {
			return
		}
		t.swap(i, c)
		i = c
	}
}
