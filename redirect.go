package httpfutures

import (
	"context"
	"net/http"
	"time"
)

// Redirects: a Session's client runs in a worker, and each redirect it follows moves the
// request's host slot to the host it leads to, with that host's rate tokens, so that the workers
// bound the round trips however many requests redirect.

// futureKey carries the running Session Future in its request's context, for hopTransport: the
// Future itself, or a *futureRef.
type futureKey struct{}

// futureOf returns the Session Future that ctx carries; nil if none.
func futureOf(ctx context.Context) *Future {
	switch v := ctx.Value(futureKey{}).(type) {
	case *Future:
		return v
	case *futureRef:
		return v.f
	}
	return nil
}

// hopTransport is the Transport of the client a Session runs in a worker. The first round trip
// of a request uses the slots the worker took for it. A redirect moves the request's host slot to
// the host it leads to: the worker keeps its place in the pool and waits, with it, for that
// host's rate tokens and slot, so that a redirect never waits behind the queue and requests that
// redirect never take more than the workers.
type hopTransport struct{ t *AsyncTransport }

// RoundTrip sends the first round trip of a Session request in the worker's slots, and a redirect
// once it has its host's. A first round trip that clientDo sent already is not sent again: its
// response is handed to the client.
func (h hopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f := futureOf(req.Context())
	if f == nil || f.t != h.t {
		return h.t.RoundTrip(req)
	}
	if m := f.more; m != nil && m.first != nil {
		resp := m.first
		m.first, m.last = nil, resp
		return resp, nil
	}
	if !f.sent {
		f.sent = true
		return h.send(f, req)
	}
	if err := h.t.sched.redirect(req.Context(), f, hostKey(req.URL.Scheme, req.URL.Host)); err != nil {
		closeBody(req)
		return nil, err
	}
	h.t.countRedirect()
	if fn := h.t.sched.obs.Redirected; fn != nil {
		tell2(fn, f, req)
	}
	return h.send(f, req)
}

// send sends a round trip of f in the slots it holds. With a cookie jar, whose SetCookies the
// client calls holding the response, it notes the response as the last one handed to the client,
// to be closed if the jar panics (a panicking redirect policy is an error to the client, which
// closes the response itself).
func (h hopTransport) send(f *Future, req *http.Request) (*http.Response, error) {
	resp, err := h.t.send(f, f.slotHost(), req)
	if resp != nil && h.t.client.Jar != nil {
		f.moreState().last = resp
	}
	return resp, err
}

// CloseIdleConnections closes the idle connections of the Session's transport.
func (h hopTransport) CloseIdleConnections() { h.t.CloseIdleConnections() }

// redirect moves the host slot of the running Session request f to the host named key, for a
// redirect there. The worker keeps its place in the pool, and waits with it for the new host's
// rate tokens and a slot of it: a redirect never waits behind the queue, and requests that
// redirect never take more goroutines than the workers. Meanwhile f keeps its own host, on which
// a retry would queue. It returns ctx.Err() if ctx ends first, f then holding no host slot.
func (s *Scheduler) redirect(ctx context.Context, f *Future, key string) error {
	m := f.moreState()
	s.mu.Lock()
	to := s.hostLocked(key, time.Now())
	to.kept++ // while the redirect is on its way
	if from := f.slotHost(); from != nil {
		if from == f.host && !m.away {
			m.away = true
			f.host.kept++
		}
		s.releaseHostLocked(from)
	}
	m.moved, m.slot = true, nil
	s.mu.Unlock()
	err := s.redirectTokens(ctx, to)
	if err == nil {
		err = s.redirectSlot(ctx, to)
	}
	s.mu.Lock()
	to.kept--
	if err == nil {
		m.slot = to
	}
	s.maybeIdleLocked(to)
	s.mu.Unlock()
	return err
}

// comeBackLocked ends what redirect kept for f, whose attempt has ended. It requires s.mu held.
func (s *Scheduler) comeBackLocked(f *Future) {
	if m := f.more; m != nil && m.away {
		m.away = false
		f.host.kept--
		s.maybeIdleLocked(f.host)
	}
}

// redirectSlot takes a slot of h for a redirect, waiting for one if every slot is taken: a slot
// freed passes to the waiting redirects first, in the order they came.
func (s *Scheduler) redirectSlot(ctx context.Context, h *host) error {
	s.mu.Lock()
	if s.hostSlotFreeLocked(h) {
		s.takeHostSlotLocked(h)
		s.mu.Unlock()
		return nil
	}
	ready := h.pushWaiterLocked()
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !h.dropWaiterLocked(ready) {
		s.releaseHostLocked(h) // handed a slot as ctx ended: give it on
	}
	return ctx.Err()
}

// redirectTokens waits, with no slot of h taken, for the rate tokens of a redirect to h: its pause
// to end, its own limiters and the shared ones. It returns ctx.Err() if ctx ends first.
func (s *Scheduler) redirectTokens(ctx context.Context, h *host) error {
	for {
		s.mu.Lock()
		now := time.Now()
		if until := h.pausedTo; until.After(now) {
			s.mu.Unlock()
			if err := sleepUntil(ctx, until); err != nil {
				return err
			}
			continue
		}
		due := s.reserveHostLocked(h, now, now, 0)
		s.mu.Unlock()
		if len(s.shared.limiters) > 0 {
			shared, err := s.reserveShared(h.key, now, 0)
			if err != nil {
				if fn := s.obs.LimiterFailed; fn != nil {
					tell2(fn, h.key, err)
				}
				return &LimiterError{Host: h.key, Err: err}
			}
			due = later(due, shared)
		}
		return sleepUntil(ctx, due)
	}
}

// sleepUntil waits until t, or returns ctx.Err() if ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A slotQueue is the redirects waiting for a host's slot, first first: a channel each, closed
// when it is handed one. It is made for a host only while some wait, to keep the host small.
type slotQueue struct{ waiting []chan struct{} }

// pushWaiterLocked queues a redirect for a slot of h, and returns the channel closed when it has
// one. It requires s.mu held.
func (h *host) pushWaiterLocked() chan struct{} {
	if h.waiters == nil {
		h.waiters = &slotQueue{}
	}
	ready := make(chan struct{})
	h.waiters.waiting = append(h.waiters.waiting, ready)
	return ready
}

// handSlotLocked passes a slot of h to the first waiting redirect, if any, and reports whether it
// did. It requires s.mu held.
func (h *host) handSlotLocked() bool {
	if h.waiters == nil {
		return false
	}
	q := h.waiters
	close(q.waiting[0])
	q.waiting[0] = nil
	q.waiting = q.waiting[1:]
	if len(q.waiting) == 0 {
		h.waiters = nil
	}
	return true
}

// dropWaiterLocked takes ready out of h's waiting redirects, and reports whether it was still
// there (not yet handed a slot). It requires s.mu held.
func (h *host) dropWaiterLocked(ready chan struct{}) bool {
	if h.waiters == nil {
		return false
	}
	q := h.waiters
	for i, w := range q.waiting {
		if w == ready {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			if len(q.waiting) == 0 {
				h.waiters = nil
			}
			return true
		}
	}
	return false
}
