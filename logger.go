package httpfutures

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// What a Scheduler logs: the events of its hosts that an operator wants to read, at sensible
// levels and without floods.

// WithLogger makes the Scheduler log to l what happens to its hosts, as an operator wants to read
// it:
//
//   - Info: a host paused by its server (Retry-After, an exhausted RateLimit quota), and resumed;
//     a pace its server asked for, when it changes; a host's adaptive limit falling, and why.
//   - Warn: a Limiter failing (its Reserve returned an error), at most a line per host every
//     10 seconds, with the count of the failures folded into it since the line before.
//   - Debug: a pause extended, an adaptive limit growing, and each request retried.
//
// Nothing is logged per request above Debug. Each line's message starts with "httpfutures:",
// and its attributes name the host as HostStats does. WithLogger is an Observer (see
// WithObserver): it configures a Scheduler, and may be given with other Observers. A nil l logs
// nothing.
func WithLogger(l *slog.Logger) Option {
	return schedOption("WithLogger", func(c *config) {
		if l != nil {
			c.observer = c.observer.and(newHostLog(l, time.Now).observer())
		}
	})
}

// logFold is how often a host's failing Limiter is logged at most.
const logFold = 10 * time.Second

// A hostLog logs the events of a Scheduler's hosts to a slog.Logger. It keeps, per host, what it
// last logged, so that a pause extended, a pace told again and a Limiter failing on every request
// make no more lines.
type hostLog struct {
	l   *slog.Logger
	now func() time.Time

	// mu guards hosts, and the hostLogState each holds.
	mu    sync.Mutex
	hosts map[string]*hostLogState
	sweep int // the size of hosts that makes the next insertion sweep it
}

// hostLogState is what a hostLog last logged of a host.
type hostLogState struct {
	pausedAt    time.Time  // when the pause logged began; zero if none
	pausedUntil time.Time  // when it is to end, as last told
	pace        rate.Limit // the pace last logged
	paceUntil   time.Time  // until when it holds, as last told
	failedAt    time.Time  // when a failing Limiter was last logged; zero if never
	folded      int        // the failures since, not logged
}

func newHostLog(l *slog.Logger, now func() time.Time) *hostLog {
	return &hostLog{l: l, now: now, hosts: make(map[string]*hostLogState), sweep: 64}
}

// observer returns the Observer that logs.
func (g *hostLog) observer() Observer {
	return Observer{
		HostPaused:    g.paused,
		HostResumed:   g.resumed,
		HostPaced:     g.paced,
		LimitChanged:  g.limitChanged,
		LimiterFailed: g.limiterFailed,
		Retried:       g.retried,
	}
}

// stateLocked returns the state of host, made if there is none. It requires g.mu held.
func (g *hostLog) stateLocked(host string, now time.Time) *hostLogState {
	st := g.hosts[host]
	if st == nil {
		if len(g.hosts) >= g.sweep {
			g.sweepLocked(now)
		}
		st = &hostLogState{}
		g.hosts[host] = st
	}
	return st
}

// sweepLocked forgets the hosts with nothing left to remember: no pause nor pace in force, no
// failure within logFold. Hosts are unbounded; what is kept of them is bounded by those that
// have something in force. It requires g.mu held.
func (g *hostLog) sweepLocked(now time.Time) {
	for host, st := range g.hosts {
		if !st.pausedUntil.After(now) && !st.paceUntil.After(now) && now.Sub(st.failedAt) >= logFold {
			delete(g.hosts, host)
		}
	}
	g.sweep = max(64, 2*len(g.hosts))
}

func (g *hostLog) paused(host string, until time.Time) {
	now := g.now()
	g.mu.Lock()
	st := g.stateLocked(host, now)
	extended := st.pausedUntil.After(now)
	if !extended {
		st.pausedAt = now
	}
	st.pausedUntil = until
	g.mu.Unlock()
	attrs := []slog.Attr{slog.String("host", host), slog.Time("until", until), slog.Duration("for", until.Sub(now))}
	if extended {
		g.log(slog.LevelDebug, "httpfutures: host pause extended", attrs...)
		return
	}
	g.log(slog.LevelInfo, "httpfutures: host paused", attrs...)
}

func (g *hostLog) resumed(host string) {
	now := g.now()
	g.mu.Lock()
	var paused time.Duration
	if st := g.hosts[host]; st != nil {
		if !st.pausedAt.IsZero() {
			paused = now.Sub(st.pausedAt)
		}
		st.pausedAt, st.pausedUntil = time.Time{}, time.Time{}
	}
	g.mu.Unlock()
	g.log(slog.LevelInfo, "httpfutures: host resumed", slog.String("host", host), slog.Duration("paused", paused))
}

func (g *hostLog) paced(host string, pace rate.Limit, until time.Time) {
	now := g.now()
	g.mu.Lock()
	st := g.stateLocked(host, now)
	changed := st.pace != pace || !st.paceUntil.After(now)
	st.pace, st.paceUntil = pace, until
	g.mu.Unlock()
	if changed {
		g.log(slog.LevelInfo, "httpfutures: host paced", slog.String("host", host),
			slog.Float64("per_second", float64(pace)), slog.Time("until", until))
	}
}

func (g *hostLog) limitChanged(c LimitChange) {
	level, msg := slog.LevelInfo, "httpfutures: host limit fell"
	if c.To > c.From {
		level, msg = slog.LevelDebug, "httpfutures: host limit grew"
	}
	g.log(level, msg, slog.String("host", c.Host), slog.Int("from", c.From), slog.Int("to", c.To),
		slog.String("reason", c.Reason.String()))
}

func (g *hostLog) limiterFailed(host string, err error) {
	now := g.now()
	g.mu.Lock()
	st := g.stateLocked(host, now)
	if !st.failedAt.IsZero() && now.Sub(st.failedAt) < logFold {
		st.folded++
		g.mu.Unlock()
		return
	}
	folded := st.folded
	st.failedAt, st.folded = now, 0
	g.mu.Unlock()
	g.log(slog.LevelWarn, "httpfutures: limiter failed", slog.String("host", host), slog.Any("error", err),
		slog.Int("folded", folded))
}

func (g *hostLog) retried(f *Future, r Retry) {
	if !g.l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{slog.String("method", f.req.Method), slog.String("host", hostKey(f.req.URL.Scheme, f.req.URL.Host)),
		slog.Int("attempt", r.Attempt), slog.Duration("wait", r.Wait)}
	if r.Err != nil {
		attrs = append(attrs, slog.Any("error", r.Err))
	} else {
		attrs = append(attrs, slog.Int("status", r.StatusCode))
	}
	g.log(slog.LevelDebug, "httpfutures: request retried", attrs...)
}

func (g *hostLog) log(level slog.Level, msg string, attrs ...slog.Attr) {
	g.l.LogAttrs(context.Background(), level, msg, attrs...)
}
