package redislimit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// A client of go-redis bounds a call by its context's deadline only if it was made with
// ContextTimeoutEnabled; otherwise by its ReadTimeout, 5 s by default, far beyond what a request
// should wait for its token. So a Limiter makes each call in a goroutine of its own, and a
// Reserve waits for it no longer than the deadline: a call that has not answered by then is
// overdue, and goes on in the background until the client gives up, while the Limiter starts no
// other. A batch leased ahead is asked for in the same way, without waiting: Reserve hands out
// the tokens it holds meanwhile, so an answer slowed by a busy machine costs nothing as long as
// it comes before they are spent.

// adviseClient tells the logger, at New, if the client ends a call only at its ReadTimeout: the
// Limiter then finds Redis again after a network cut only that long after the call made at the
// cut, however early the network healed. It knows the clients of go-redis; of others it says
// nothing.
func (l *Limiter) adviseClient() {
	var bounded bool
	var read time.Duration
	switch c := l.rdb.(type) {
	case *redis.Client:
		o := c.Options()
		bounded, read = o.ContextTimeoutEnabled, o.ReadTimeout
	case *redis.ClusterClient:
		o := c.Options()
		bounded, read = o.ContextTimeoutEnabled, o.ReadTimeout
	default:
		return
	}
	if bounded {
		return
	}
	timeout := slog.Duration("read_timeout", read)
	if read <= 0 { // as the client keeps it: no timeout
		timeout = slog.String("read_timeout", "none: a call ends when its connection fails")
	}
	l.logf(slog.LevelInfo, "redislimit: the Redis client ends a call past the deadline only at its ReadTimeout; "+
		"make it with ContextTimeoutEnabled to find Redis again soon after a network cut", slog.String("key", l.key), timeout)
}

// errSlow is the failure of a call that did not answer within the deadline.
type errSlow time.Duration

func (e errSlow) Error() string { return fmt.Sprintf("no answer within %v", time.Duration(e)) }

// errBusy is the failure of a call not made because an overdue one is still running.
type errBusy struct{}

func (errBusy) Error() string { return "still waiting for an earlier call" }

// A leaseCall is a call to Redis for the next batch of a lease, running in a goroutine of its
// own. Its answer is applied to the lease, under the Limiter's mu, before done is closed.
type leaseCall struct {
	done chan struct{}

	overdue bool // a Reserve waited the deadline for it in vain; guarded by the Limiter's mu
}

// startLeaseLocked starts the call for ls's next batch, ls being the lease of host lk ("" for
// all hosts), under the backpressure n known at now. The call's context ends a deadline after
// the tokens ls holds are due, when a Reserve would wait for it. It fails without calling if an
// overdue call still runs. It requires l.mu held.
func (l *Limiter) startLeaseLocked(ls *lease, lk string, n notice, now time.Time) (*leaseCall, error) {
	switch {
	case l.closed:
		return nil, ErrClosed
	case l.overdue > 0:
		return nil, errBusy{}
	}
	interval := l.interval
	if n.paced(now) {
		interval = max(interval, n.interval)
	}
	a := ask{
		n: ls.nextSize(now, l.o.span, interval), back: ls.owed, noBurst: l.recover, perHost: l.o.perHost,
		id: l.id, span: l.o.span, window: max(4*l.o.span, 100*time.Millisecond), lapse: l.o.lapse(),
	}
	ls.owed = 0
	k := l.keysFor(lk)
	end := later(time.Now(), ls.needed()).Add(l.o.deadline)
	c := &leaseCall{done: make(chan struct{})}
	ls.call = c
	l.stats.Calls++
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(c.done)
		ctx, cancel := context.WithDeadline(l.ctx, end)
		g, err := callLease(ctx, l.rdb, k, lk, l.interval, l.burst, a)
		cancel()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.finishLeaseLocked(ls, lk, c, k, now, g, err)
	}()
	return c, nil
}

// finishLeaseLocked applies the answer of c, a call for the next batch of ls, the lease of host
// lk with keys k, asked by a reservation at now: the batch and what Redis holds of the hosts'
// backpressure, or the failure. No token of the batch lapses before the answer came, nor before
// now, so that the batch serves the reservation that waits for it. It requires l.mu held.
func (l *Limiter) finishLeaseLocked(ls *lease, lk string, c *leaseCall, k keys, now time.Time, g grant, err error) {
	if ls.call == c {
		ls.call = nil
	}
	if c.overdue {
		l.overdue--
	}
	if err != nil {
		if !c.overdue {
			l.stats.Failures++ // else counted when it fell overdue
		}
		l.downLocked(err, k.quota)
		return
	}
	l.upLocked()
	got := time.Now()
	for _, h := range g.hosts {
		l.applyLocked(h, got)
	}
	l.stats.Leased += uint64(g.n)
	l.stats.Returned += uint64(g.back)
	if l.closed || l.leases[lk] != ls {
		// Close has given back what it could, or the lease was let go as its host's pace
		// lapsed: the batch lapses, and in the latter case goes back with the next lease.
		l.stats.Lapsed += uint64(g.n)
		if all := l.leases[""]; all != nil && lk != "" && !l.o.perHost && !l.closed {
			all.owed += g.n
		}
		return
	}
	ls.add(newBatch(g, l.interval, l.o.lapse(), later(got, now)))
}

// wokeLate is how late a wait's timer may fire before the wait counts the process as not having
// run meanwhile, and waitGrace how much longer it then waits: the answer may have come while the
// process did not run, and the goroutine that reads it not have run yet.
const (
	wokeLate  = 5 * time.Millisecond
	waitGrace = 10 * time.Millisecond
)

// waitLocked waits for c to be applied, without l.mu, until the deadline at, or ctx ends; if the
// process did not run at the deadline, a little longer. It reports whether c was applied; if
// not, and ctx has not ended, c is overdue from then on. It requires l.mu held.
func (l *Limiter) waitLocked(ctx context.Context, c *leaseCall, at time.Time) bool {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	l.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
	case <-t.C:
		if time.Since(at) > wokeLate {
			t.Reset(waitGrace)
			select {
			case <-c.done:
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}
	l.mu.Lock()
	select {
	case <-c.done: // just in time
		return true
	default:
	}
	if ctx.Err() == nil && !c.overdue {
		c.overdue = true
		l.overdue++
		l.stats.Failures++
		l.reloadLocked()
	}
	return false
}
