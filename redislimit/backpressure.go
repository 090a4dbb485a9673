package redislimit

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpfutures/httpfutures"
)

// notice is the backpressure a Limiter knows of for a host, in local time. Its zero value asks
// nothing.
type notice struct {
	pauseEnd time.Time     // no request before then
	interval time.Duration // at most one request per interval until paceEnd; zero if no pace
	paceEnd  time.Time
}

func (n notice) paced(now time.Time) bool { return n.interval > 0 && now.Before(n.paceEnd) }

// noticeLocked returns what is known of host's backpressure at now, forgetting what has
// lapsed. It requires l.mu held.
func (l *Limiter) noticeLocked(host string, now time.Time) notice {
	n, ok := l.notices[host]
	if !ok || now.Before(n.pauseEnd) || n.paced(now) {
		return n
	}
	delete(l.notices, host)
	if ls := l.leases[host]; ls != nil && !l.o.perHost {
		// The host's pace has lapsed: its requests take the tokens of all hosts again, and the
		// tokens it held go back to the quota with the next lease of all hosts.
		l.stats.Lapsed += uint64(ls.unused())
		if all := l.leases[""]; all != nil {
			all.owed += ls.unused() + ls.owed
		}
		delete(l.leases, host)
	}
	return notice{}
}

// applyLocked records h, heard at, in l.notices. A pause only lengthens; a pace replaces the
// one before. With a quota per host, the host's leased tokens due within a new pause lapse, so
// that they do not all go at its end. It requires l.mu held.
func (l *Limiter) applyLocked(h hostNotice, at time.Time) {
	n := l.notices[h.host]
	if h.pause > 0 {
		if end := at.Add(h.pause); end.After(n.pauseEnd) {
			n.pauseEnd = end
			if ls := l.leases[h.host]; ls != nil && l.o.perHost {
				l.stats.Lapsed += uint64(ls.drop(end))
			}
		}
	}
	if h.interval > 0 {
		n.interval, n.paceEnd = h.interval, at.Add(h.pace)
	}
	l.notices[h.host] = n
}

// knownLocked reports whether h adds nothing to what l knows of its host at now: a pause ending
// no later (give or take 10 ms), a pace the same (within 1%) known to last for half of what h
// asks at least, so that a pace asked again and again is shared again before it lapses. It
// requires l.mu held.
func (l *Limiter) knownLocked(h hostNotice, now time.Time) bool {
	n := l.notices[h.host]
	if h.pause > 0 && now.Add(h.pause).After(n.pauseEnd.Add(10*time.Millisecond)) {
		return false
	}
	if h.interval > 0 {
		if math.Abs(float64(h.interval-n.interval)) > 0.01*float64(h.interval) || n.paceEnd.Sub(now) < h.pace/2 {
			return false
		}
	}
	return true
}

// ObserveBackpressure implements httpfutures.BackpressureObserver: it shares what a response
// from host asked (a pause, a pace) with every Limiter on the same Redis and key. It records it
// in Redis, within the deadline, and publishes it, unless it adds nothing to what this Limiter
// knows already. It does not wait: the call runs in a goroutine of the Limiter. An error is
// counted in Stats.Failures.
func (l *Limiter) ObserveBackpressure(host string, bp httpfutures.Backpressure) {
	now := time.Now()
	h := hostNotice{host: host}
	if bp.PauseUntil.After(now) {
		h.pause = bp.PauseUntil.Sub(now)
	}
	if bp.Pace > 0 && !math.IsInf(float64(bp.Pace), 0) && bp.PaceUntil.After(now) {
		h.interval = time.Duration(float64(time.Second) / float64(bp.Pace))
		h.pace = bp.PaceUntil.Sub(now)
	}
	if h.pause <= 0 && h.interval <= 0 || host == "" || strings.ContainsAny(host, " {}") {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.knownLocked(h, now) {
		return
	}
	l.applyLocked(h, now)
	if l.observing >= maxObserving {
		l.stats.Failures++ // Redis is slow; the next leases carry what it holds
		return
	}
	l.observing++
	l.stats.Calls++
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, l.o.deadline)
		defer cancel()
		err := observeScript.Run(ctx, l.rdb, []string{l.keysFor(host).bp}, host,
			micros(h.pause), micros(h.interval), micros(h.pace), l.channel).Err()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.observing--
		if err != nil {
			l.stats.Failures++
		}
	}()
}

// maxObserving bounds the calls that share backpressure at once.
const maxObserving = 4

// listenRetry is how often listen tries Redis again while it is unavailable: seldom, since what
// it misses meanwhile comes with the next lease, and each try is a dial.
const listenRetry = 500 * time.Millisecond

// listen applies the backpressure other Limiters publish, until Close. While Redis is
// unavailable it tries again every 500 ms.
func (l *Limiter) listen() {
	defer l.wg.Done()
	_ = l.ps.Subscribe(l.ctx, l.channel) // on failure, Receive connects and subscribes again
	pause := time.NewTimer(0)
	defer pause.Stop()
	<-pause.C
	for {
		msg, err := l.ps.Receive(l.ctx)
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			pause.Reset(listenRetry)
			select {
			case <-l.ctx.Done():
				return
			case <-pause.C:
			}
			continue
		}
		if m, ok := msg.(*redis.Message); ok {
			if h, ok := parseNotice(m.Payload); ok {
				l.mu.Lock()
				l.applyLocked(h, time.Now())
				l.mu.Unlock()
			}
		}
	}
}
