package httpfutures

import "unsafe"

// A FieldSpan is where a field lies in its struct: its name, offset and size.
type FieldSpan struct {
	Name         string
	Offset, Size uintptr
}

// SchedulerWrittenPerRequest are the fields of a Scheduler that every request writes with its
// lock held, as it is queued and as a worker takes it and ends it.
func SchedulerWrittenPerRequest() []FieldSpan {
	var s Scheduler
	return []FieldSpan{
		{"mu", unsafe.Offsetof(s.mu), unsafe.Sizeof(s.mu)},
		{"queued", unsafe.Offsetof(s.queued), unsafe.Sizeof(s.queued)},
		{"seq", unsafe.Offsetof(s.seq), unsafe.Sizeof(s.seq)},
		{"ring", unsafe.Offsetof(s.ring), unsafe.Sizeof(s.ring)},
		{"inflight", unsafe.Offsetof(s.inflight), unsafe.Sizeof(s.inflight)},
		{"lastActive", unsafe.Offsetof(s.lastActive), unsafe.Sizeof(s.lastActive)},
	}
}

// SchedulerWrittenOnWaits are the fields of a Scheduler that a request writes only when a worker
// waits for work or is woken for it.
func SchedulerWrittenOnWaits() []FieldSpan {
	var s Scheduler
	return []FieldSpan{
		{"waiting", unsafe.Offsetof(s.waiting), unsafe.Sizeof(s.waiting)},
		{"waking", unsafe.Offsetof(s.waking), unsafe.Sizeof(s.waking)},
	}
}

// HostWrittenPerRequest are the fields of a host that every request to it writes, as it is
// queued and as a worker takes it.
func HostWrittenPerRequest() []FieldSpan {
	var h host
	return []FieldSpan{
		{"queue", unsafe.Offsetof(h.queue), unsafe.Sizeof(h.queue)},
		{"inflight", unsafe.Offsetof(h.inflight), unsafe.Sizeof(h.inflight)},
		{"inRing", unsafe.Offsetof(h.inRing), unsafe.Sizeof(h.inRing)},
	}
}

// HostReadPerRequest are the fields of a host that a worker reads, besides those it writes, to
// decide whether it may take the host's next request now.
func HostReadPerRequest() []FieldSpan {
	var h host
	return []FieldSpan{
		{"timerIdx", unsafe.Offsetof(h.timerIdx), unsafe.Sizeof(h.timerIdx)},
		{"waiters", unsafe.Offsetof(h.waiters), unsafe.Sizeof(h.waiters)},
		{"adapt", unsafe.Offsetof(h.adapt), unsafe.Sizeof(h.adapt)},
		{"guard", unsafe.Offsetof(h.guard), unsafe.Sizeof(h.guard)},
		{"limiter", unsafe.Offsetof(h.limiter), unsafe.Sizeof(h.limiter)},
		{"reserving", unsafe.Offsetof(h.reserving), unsafe.Sizeof(h.reserving)},
		{"pace", unsafe.Offsetof(h.pace), unsafe.Sizeof(h.pace)},
	}
}

// LineOffsets returns where Schedulers and hosts start within a cache line, as the allocator
// places them on the heap (a Scheduler, over 512 bytes, follows the allocator's 8-byte header);
// -1 if n of them do not all start at the same place.
func LineOffsets(n int) (sched, hst int) {
	scheds, hosts := make([]*Scheduler, n), make([]*host, n)
	for i := range n {
		scheds[i], hosts[i] = new(Scheduler), new(host)
	}
	return sameLineOffset(scheds), sameLineOffset(hosts)
}

// sameLineOffset returns where each of ps starts within a cache line; -1 if not all at the same
// place.
func sameLineOffset[T any](ps []*T) int {
	at := int(uintptr(unsafe.Pointer(ps[0])) % 64)
	for _, p := range ps {
		if int(uintptr(unsafe.Pointer(p))%64) != at {
			return -1
		}
	}
	return at
}
