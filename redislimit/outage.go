package redislimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// While Redis cannot be reached the failure policy decides every reservation that needs a call,
// at once, and a probe asks Redis again every 100 ms. The probe asks the node that holds the
// quota whose call failed, not any node: a Redis Cluster client sends a PING anywhere, and would
// find the cluster answering while the quota's slot still points at a master that is gone. And
// each failure asks a cluster client to reload its map of slots, which go-redis does by itself
// only once a minute, so that once a replica has taken the place of a lost master the next probe
// reaches it.

// retryEvery is how often a Limiter tries Redis again while it is unavailable, in a goroutine of
// its own. Meanwhile the failure policy decides at once, without waiting for the deadline.
const retryEvery = 100 * time.Millisecond

// minProbeWait is how long a probe waits for its answer at least. Nothing waits for a probe,
// and a busy machine may take longer than the deadline to open a connection to a server back
// from an outage: a probe given only the deadline would keep the failure policy deciding.
const minProbeWait = 250 * time.Millisecond

// downLocked records that a call for the quota at key failed with err: the failure policy
// decides until the probe, started here if it is not running, finds the quota's node answering.
// It requires l.mu held.
func (l *Limiter) downLocked(err error, key string) {
	if !l.down {
		l.downAt = time.Now()
		l.logf(slog.LevelWarn, "redislimit: Redis unavailable; the failure policy decides", slog.String("key", key),
			slog.Any("error", err), slog.String("policy", l.o.describe()))
	}
	l.down, l.recover, l.lastErr, l.probeKey = true, true, err, key
	l.reloadLocked()
	if !l.probing && !l.closed {
		l.probing = true
		l.wg.Add(1)
		go l.probe()
	}
}

// upLocked records that Redis answered a lease. It requires l.mu held.
func (l *Limiter) upLocked() {
	l.backLocked("a lease")
	l.down, l.recover, l.lastErr = false, false, nil
	clear(l.fallback)
}

// backLocked logs that Redis answers again, if it was unavailable, found by what. It requires
// l.mu held.
func (l *Limiter) backLocked(by string) {
	if l.down {
		l.logf(slog.LevelInfo, "redislimit: Redis answers again; leases resume", slog.String("found_by", by),
			slog.Duration("unavailable", time.Since(l.downAt)))
	}
}

// logf logs a line at level, if the Limiter has a logger that logs it.
func (l *Limiter) logf(level slog.Level, msg string, attrs ...slog.Attr) {
	if lg := l.o.log; lg != nil && lg.Enabled(context.Background(), level) {
		lg.LogAttrs(context.Background(), level, msg, attrs...)
	}
}

// slotReloader is a client that keeps a map of where its keys are, as *redis.ClusterClient does.
type slotReloader interface {
	ReloadState(ctx context.Context)
}

// reloadLocked asks a cluster client to reload its map of slots; it returns at once, and the
// client coalesces reloads asked for together. It requires l.mu held.
func (l *Limiter) reloadLocked() {
	if r, ok := l.rdb.(slotReloader); ok {
		r.ReloadState(l.ctx)
	}
}

// probe asks the quota's node every 100 ms, until it answers, then lets leases be taken again,
// or until Close, or until a lease has found Redis answering. It runs while l.probing, and holds
// no lock while it waits.
func (l *Limiter) probe() {
	defer l.wg.Done()
	t := time.NewTimer(retryEvery)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		if !l.down {
			l.probing = false
			l.mu.Unlock()
			return
		}
		key := l.probeKey
		l.stats.Calls++
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(l.ctx, max(l.o.deadline, minProbeWait))
		err := probeScript.Run(ctx, l.rdb, []string{key}).Err()
		cancel()
		l.mu.Lock()
		if err == nil {
			l.backLocked("the probe")
			l.down, l.probing = false, false
			l.mu.Unlock()
			return
		}
		l.stats.Failures++
		l.lastErr = err
		l.logf(slog.LevelDebug, "redislimit: probe failed", slog.String("key", key), slog.Any("error", err))
		l.reloadLocked()
		l.mu.Unlock()
		t.Reset(retryEvery)
	}
}

// decideLocked decides a reservation of host lk ("" for all hosts) at now by the failure policy,
// Redis being unavailable for err. It requires l.mu held.
func (l *Limiter) decideLocked(ctx context.Context, lk string, now time.Time, err error) (time.Time, error) {
	l.stats.Unhandled++
	switch l.o.policy {
	case failOpen:
		l.stats.Admitted++
		return now, nil
	case fallBack:
		fl := l.fallback[lk]
		if fl == nil {
			share := rate.Limit(l.o.share * float64(time.Second) / float64(l.interval))
			fl = newFallback(share, int(math.Ceil(l.o.share*float64(l.burst))))
			l.fallback[lk] = fl
		}
		l.stats.Admitted++
		return fl.reserve(now), nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = errSlow(l.o.deadline)
	}
	return time.Time{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
}
