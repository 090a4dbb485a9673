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
//     a pace its server asked for (the RateLimit fields); a host's adaptive limit falling, and why.
//   - Warn: a Limiter failing (its Reserve returned an error); a host's circuit breaker opening
//     (WithCircuitBreaker), and Info when it closes again.
//   - Debug: every event of those not logged above Debug, a pause extended, an adaptive limit
//     growing, and each request retried.
//
// A line of each kind is logged above Debug at most once per host every 10 seconds: the next one
// tells, as folded, how many events of its kind it stood for since (a host paused every second
// logs a pause every 10 seconds, folded=9). A host resumed is logged at Info if its pause was.
// Nothing is logged per request above Debug. Each line's message starts with "httpfutures:",
// and its attributes name the host as HostStats does. WithLogger is an Observer (see
// WithObserver): it configures a Scheduler, and may be given with other Observers. A nil l logs
// nothing.
func WithLogger(l *slog.Logger) Option {
	return schedOption("WithLogger", func(c *config) {
		if l != nil {
			c.observer = c.observer.And(newHostLog(l, time.Now).observer())
		}
	})
}

// logFold is how often a host's event of each kind is logged above Debug at most.
const logFold = 10 * time.Second

// A hostLog logs the events of a Scheduler's hosts to a slog.Logger. It keeps, per host, when it
// last logged each kind of event, so that a host paused again and again, or a Limiter failing on
// every request, makes a line every logFold.
type hostLog struct {
	l   *slog.Logger
	now func() time.Time

	// mu guards hosts, and the hostLogState each holds.
	mu    sync.Mutex
	hosts map[string]*hostLogState
	sweep int // the size of hosts that makes the next insertion sweep it
}

// hostLogState is what a hostLog logged of a host.
type hostLogState struct {
	pausedAt    time.Time // when its pause began; zero if it is not paused
	pausedUntil time.Time // when it is to end, as last told
	pauseShown  bool      // the pause was logged at Info, and its end is to be
	paused      fold
	paced       fold
	fell        fold // the adaptive limit falling
	failed      fold // a Limiter failing
	opened      fold // its circuit breaker opening
}

// A fold is a kind of event of a host, logged above Debug at most once every logFold: those in
// between are folded into the next line, which tells their count.
type fold struct {
	at     time.Time // when an event was last logged above Debug; zero if never
	folded int       // the events since, not logged above Debug
}

// next reports whether the event at now is to be logged above Debug, and if so how many were
// folded since the line before; if not, it counts it.
func (f *fold) next(now time.Time) (shown bool, folded int) {
	if f.recent(now) {
		f.folded++
		return false, 0
	}
	folded = f.folded
	f.at, f.folded = now, 0
	return true, folded
}

// recent reports whether an event was logged above Debug within logFold of now.
func (f *fold) recent(now time.Time) bool { return !f.at.IsZero() && now.Sub(f.at) < logFold }

func newHostLog(l *slog.Logger, now func() time.Time) *hostLog {
	return &hostLog{l: l, now: now, hosts: make(map[string]*hostLogState), sweep: 64}
}

// observer returns the Observer that logs.
func (g *hostLog) observer() Observer {
	return Observer{
		HostPaused:     g.hostPaused,
		HostResumed:    g.hostResumed,
		HostPaced:      g.hostPaced,
		LimitChanged:   g.limitChanged,
		LimiterFailed:  g.limiterFailed,
		CircuitChanged: g.circuitChanged,
		Retried:        g.retried,
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

// sweepLocked forgets the hosts with nothing to remember: not paused, no line within logFold.
// Hosts are unbounded; what is kept of them is bounded by those active in the last logFold. It
// requires g.mu held.
func (g *hostLog) sweepLocked(now time.Time) {
	for host, st := range g.hosts {
		if !st.pausedUntil.After(now) && !st.paused.recent(now) && !st.paced.recent(now) &&
			!st.fell.recent(now) && !st.failed.recent(now) && !st.opened.recent(now) {
			delete(g.hosts, host)
		}
	}
	g.sweep = max(64, 2*len(g.hosts))
}

// event notes an event of host in the fold that kind picks, and logs it: at level if it is not
// folded, with the count of those folded before it, at Debug if it is.
func (g *hostLog) event(host string, kind func(*hostLogState) *fold, level slog.Level, msg string, attrs ...slog.Attr) {
	now := g.now()
	g.mu.Lock()
	shown, folded := kind(g.stateLocked(host, now)).next(now)
	g.mu.Unlock()
	if !shown {
		g.log(slog.LevelDebug, msg, attrs...)
		return
	}
	g.log(level, msg, append(attrs, slog.Int("folded", folded))...)
}

func (g *hostLog) hostPaused(host string, until time.Time) {
	now := g.now()
	g.mu.Lock()
	st := g.stateLocked(host, now)
	extended := st.pausedUntil.After(now)
	st.pausedUntil = until
	shown, folded := false, 0
	if !extended {
		st.pausedAt = now
		shown, folded = st.paused.next(now)
		st.pauseShown = shown
	}
	g.mu.Unlock()
	attrs := []slog.Attr{slog.String("host", host), slog.Time("until", until), slog.Duration("for", until.Sub(now))}
	switch {
	case extended:
		g.log(slog.LevelDebug, "httpfutures: host pause extended", attrs...)
	case shown:
		g.log(slog.LevelInfo, "httpfutures: host paused", append(attrs, slog.Int("folded", folded))...)
	default:
		g.log(slog.LevelDebug, "httpfutures: host paused", attrs...)
	}
}

func (g *hostLog) hostResumed(host string) {
	now := g.now()
	g.mu.Lock()
	var paused time.Duration
	shown := false
	if st := g.hosts[host]; st != nil {
		if !st.pausedAt.IsZero() {
			paused = now.Sub(st.pausedAt)
		}
		shown = st.pauseShown
		st.pausedAt, st.pausedUntil, st.pauseShown = time.Time{}, time.Time{}, false
	}
	g.mu.Unlock()
	level := slog.LevelDebug
	if shown {
		level = slog.LevelInfo
	}
	g.log(level, "httpfutures: host resumed", slog.String("host", host), slog.Duration("paused", paused))
}

func (g *hostLog) hostPaced(host string, pace rate.Limit, until time.Time) {
	g.event(host, func(st *hostLogState) *fold { return &st.paced }, slog.LevelInfo, "httpfutures: host paced",
		slog.String("host", host), slog.Float64("per_second", float64(pace)), slog.Time("until", until))
}

func (g *hostLog) limitChanged(c LimitChange) {
	attrs := []slog.Attr{slog.String("host", c.Host), slog.Int("from", c.From), slog.Int("to", c.To),
		slog.String("reason", c.Reason.String())}
	if c.To > c.From {
		g.log(slog.LevelDebug, "httpfutures: host limit grew", attrs...)
		return
	}
	g.event(c.Host, func(st *hostLogState) *fold { return &st.fell }, slog.LevelInfo, "httpfutures: host limit fell", attrs...)
}

func (g *hostLog) limiterFailed(host string, err error) {
	g.event(host, func(st *hostLogState) *fold { return &st.failed }, slog.LevelWarn, "httpfutures: limiter failed",
		slog.String("host", host), slog.Any("error", err))
}

func (g *hostLog) circuitChanged(c CircuitChange) {
	attrs := []slog.Attr{slog.String("host", c.Host), slog.String("from", c.From.String())}
	switch c.To {
	case CircuitOpen:
		if c.Attempts > 0 {
			attrs = append(attrs, slog.Int("failures", c.Failures), slog.Int("attempts", c.Attempts))
		}
		g.event(c.Host, func(st *hostLogState) *fold { return &st.opened }, slog.LevelWarn, "httpfutures: host circuit opened", attrs...)
	case CircuitClosed:
		g.log(slog.LevelInfo, "httpfutures: host circuit closed", attrs...)
	default:
		g.log(slog.LevelDebug, "httpfutures: host circuit half-open", attrs...)
	}
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

// log logs a line, unless l does not log its level.
func (g *hostLog) log(level slog.Level, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if g.l.Enabled(ctx, level) {
		g.l.LogAttrs(ctx, level, msg, attrs...)
	}
}
