// Package redislimit provides a Limiter on Redis, so that many processes share one quota: ten
// replicas of a crawler, or a fleet of workers calling one API, keep together to the rate that
// one of them would keep alone.
package redislimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

// ErrUnavailable is returned by Reserve, wrapped, when Redis cannot be reached within the
// deadline and the Limiter fails closed.
var ErrUnavailable = errors.New("redislimit: Redis is unavailable")

// ErrClosed is returned by Reserve after Close.
var ErrClosed = errors.New("redislimit: limiter closed")

// retryEvery is how often a Limiter tries Redis again while it is unavailable, in a goroutine of
// its own. Meanwhile the failure policy decides at once, without waiting for the deadline.
const retryEvery = 100 * time.Millisecond

// minLapse is how late a leased token may still be used at least. A token may be used as late
// as half the lease span (a process busy elsewhere for a while loses none), and no later: then
// it lapses. So the processes sharing a quota send, in any window, no more than the quota's
// rate allows in the window, plus twice the burst, plus half a lease, which leaves room within
// one lease for the jitter of the network and of the machine.
const minLapse = 10 * time.Millisecond

// A Limiter is an httpfutures.Limiter whose quota is kept in Redis, and so shared by every
// Limiter, in any process, made with the same Redis and key: GCRA (the generic cell rate
// algorithm, a token bucket kept as one instant) runs in a Lua script on the server's clock, so
// the clocks of the processes do not matter.
//
// A Limiter reserves ahead: Reserve always takes a token, and returns when it is due, so that
// a Scheduler waits on its own timer, never in Redis. To make few round trips at high rates, it
// leases tokens in batches sized to about 50 ms of its process's recent demand (WithLeaseSpan),
// cut to a fair share when several Limiters lease at once, and hands them out on their
// schedule; a token not used within half a lease span of its time lapses, and tokens unused are
// given back on Close, so that the processes together keep the quota's rate in every window
// (give or take the burst and one lease). Stats counts the calls to Redis per request.
//
// Redis being down, or slower than the deadline (WithDeadline), never hangs a request. By
// default the Limiter fails closed: Reserve returns an error matching ErrUnavailable after at
// most the deadline (the Scheduler fails the request with an *httpfutures.LimiterError); it
// can fail open instead (WithFailOpen), or pace locally at a share of the quota
// (WithFallback). Once a call has failed, Redis counts as unavailable, and the policy decides
// at once, until a probe, every 100 ms, finds it answering; then the Limiter starts again
// without a burst, whatever Redis remembers. (After a long outage a go-redis client stops
// dialing once PoolSize dials in a row have failed, and tries again once a second: Redis may
// then be back a second before the Limiter sees it.)
//
// A Limiter is also an httpfutures.BackpressureObserver: a pause (429 or 503 with Retry-After)
// or a pace (RateLimit fields) that one process hears from a server is kept in Redis and
// published, and every Limiter sharing the key delays that host's tokens to its end, or paces
// them, as if it had heard it itself. A token a Scheduler reserved before the news came is not
// taken back: at most one request per process goes, within a lease of the response.
//
// The zero Limiter is not usable: make one with New. A Limiter is safe for concurrent use;
// its accuracy needs the non-decreasing times a Scheduler gives it.
type Limiter struct {
	rdb      redis.UniversalClient
	key      string
	interval time.Duration // between tokens at the quota's rate
	burst    int
	o        options
	channel  string // where backpressure is published
	id       string // among the Limiters sharing the key

	ctx  context.Context // canceled by Close: ends the subscriber and the calls in flight
	stop context.CancelFunc
	ps   *redis.PubSub
	wg   sync.WaitGroup

	mu        sync.Mutex
	leases    map[string]*lease    // by host, or "" for the quota of all hosts
	notices   map[string]notice    // the backpressure heard for each host
	fallback  map[string]*fallback // by host, or "": the local limit while down
	down      bool                 // the last call to Redis failed: probe runs
	slow      chan struct{}        // closed when a call that passed the deadline returns; nil if none
	closing   bool                 // Close has begun: no call starts
	observing int                  // calls sharing backpressure running
	recover   bool                 // the next lease starts without a burst
	lastErr   error                // the failure of the last call, if down
	closed    bool
	stats     Stats
}

// Stats counts what a Limiter did.
type Stats struct {
	Admitted  uint64 // tokens handed out by Reserve, from Redis or by the failure policy
	Leased    uint64 // tokens leased from Redis
	Lapsed    uint64 // leased tokens that lapsed unused
	Returned  uint64 // leased tokens given back to Redis by Close
	Calls     uint64 // calls to Redis: leases, backpressure and returns
	Failures  uint64 // calls to Redis that failed or passed the deadline
	Unhandled uint64 // reservations decided by the failure policy while Redis was unavailable
}

// CallsPerRequest returns the calls to Redis per token handed out.
func (s Stats) CallsPerRequest() float64 {
	if s.Admitted == 0 {
		return 0
	}
	return float64(s.Calls) / float64(s.Admitted)
}

// New returns a Limiter whose quota of r requests per second, with burst, is shared by every
// Limiter, in any process, made with the same Redis and key. A burst below 1 is taken as 1. New
// starts one goroutine, which listens for backpressure; Close stops it.
//
// New panics if rdb is nil, if key is empty or holds a brace (keys are hash-tagged with
// braces), or if r is not a positive finite rate.
func New(rdb redis.UniversalClient, key string, r rate.Limit, burst int, opts ...Option) *Limiter {
	switch {
	case rdb == nil:
		panic("redislimit: New with a nil Redis client")
	case key == "" || strings.ContainsAny(key, "{}"):
		panic(fmt.Sprintf("redislimit: New with key %q: the key must be non-empty and hold no braces", key))
	case !(r > 0) || r == rate.Inf || math.IsInf(float64(r), 0):
		panic(fmt.Sprintf("redislimit: New with rate %v: the rate must be positive and finite", r))
	}
	o := newOptions(opts)
	l := &Limiter{
		rdb:      rdb,
		key:      key,
		interval: time.Duration(float64(time.Second) / float64(r)),
		burst:    max(burst, 1),
		o:        o,
		channel:  o.prefix + "{" + key + "}:bp",
		id:       strconv.FormatUint(rand.Uint64(), 36),
		leases:   make(map[string]*lease),
		notices:  make(map[string]notice),
		fallback: make(map[string]*fallback),
	}
	l.interval = max(l.interval, time.Nanosecond)
	l.ctx, l.stop = context.WithCancel(context.Background())
	l.ps = rdb.Subscribe(l.ctx) // no channel yet: no round trip here
	l.wg.Add(1)
	go l.listen()
	return l
}

var _ httpfutures.BackpressureObserver = (*Limiter)(nil)

// Reserve implements httpfutures.Limiter: it takes a token for one request to host at now and
// returns when the request may go. It calls Redis only when its lease is spent, for at most the
// deadline. While Redis is unavailable the failure policy decides: an error matching
// ErrUnavailable, now, or the local limiter's time.
func (l *Limiter) Reserve(ctx context.Context, host string, now time.Time) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return time.Time{}, ErrClosed
	}
	if l.o.perHost && strings.ContainsAny(host, "{}") {
		return time.Time{}, fmt.Errorf("redislimit: host %q holds a brace", host)
	}
	n := l.noticeLocked(host, now)
	lk := ""
	if l.o.perHost || n.paced(now) {
		lk = host
	}
	ls := l.leases[lk]
	if ls == nil {
		if len(l.leases) >= maxHosts {
			l.sweepLocked(now)
		}
		ls = &lease{}
		l.leases[lk] = ls
	}
	ls.calls++
	due, ok, lapsed := ls.take(now)
	l.stats.Lapsed += uint64(lapsed)
	switch {
	case !ok:
		if err := l.leaseLocked(ctx, ls, lk, n, now); err != nil {
			if due, err = l.failLocked(ctx, lk, now, err); err != nil {
				return time.Time{}, err
			}
			break
		}
		due, _, _ = ls.take(now) // a fresh batch: its first token has not lapsed
	case ls.low() && !l.down && l.o.span > 0:
		// Lease the next batch ahead. If that fails, this token still holds, and the failure
		// policy decides for the requests after it.
		_ = l.leaseLocked(ctx, ls, lk, n, now)
	}
	l.stats.Admitted++
	return later(due, n.pauseEnd), nil
}

// leaseLocked asks Redis for a batch of tokens for ls, the lease of host lk ("" for all hosts).
// It requires l.mu held.
func (l *Limiter) leaseLocked(ctx context.Context, ls *lease, lk string, n notice, now time.Time) error {
	if l.down {
		return l.lastErr
	}
	interval := l.interval
	if n.paced(now) {
		interval = max(interval, n.interval)
	}
	size := ls.nextSize(now, l.o.span, interval)
	k, a := l.keysFor(lk), ask{
		n: size, noBurst: l.recover, perHost: l.o.perHost, id: l.id,
		span: l.o.span, window: max(4*l.o.span, 100*time.Millisecond),
	}
	// The call may outlive the wait: it reads only these copies, and writes only g and lerr,
	// which are read only if it returned in time.
	var g grant
	var lerr error
	err := l.callLocked(ctx, func(ctx context.Context) {
		g, lerr = callLease(ctx, l.rdb, k, lk, l.interval, l.burst, a)
	})
	if err == nil && lerr != nil {
		err = lerr
		l.stats.Failures++
	}
	if err != nil {
		l.down, l.recover, l.lastErr = true, true, err
		l.wg.Add(1)
		go l.probe()
		return err
	}
	l.down, l.recover, l.lastErr = false, false, nil
	clear(l.fallback)
	got := time.Now()
	for _, h := range g.hosts {
		l.applyLocked(h, got)
	}
	l.stats.Leased += uint64(g.n)
	ls.add(newBatch(g, l.interval, max(l.o.span/2, minLapse), got))
	return nil
}

// failLocked decides a reservation while Redis is unavailable, by the failure policy. It
// requires l.mu held.
func (l *Limiter) failLocked(ctx context.Context, lk string, now time.Time, err error) (time.Time, error) {
	l.stats.Unhandled++
	switch l.o.policy {
	case failOpen:
		return now, nil
	case fallBack:
		fl := l.fallback[lk]
		if fl == nil {
			share := rate.Limit(l.o.share * float64(time.Second) / float64(l.interval))
			fl = newFallback(share, int(math.Ceil(l.o.share*float64(l.burst))))
			l.fallback[lk] = fl
		}
		return fl.reserve(now), nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = errSlow(l.o.deadline)
	}
	return time.Time{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// maxHosts is how many hosts' leases a Limiter keeps before it forgets those idle.
const maxHosts = 1024

// sweepLocked forgets the leases that are spent and were asked for more than a second before
// now, and the backpressure that has lapsed. It requires l.mu held.
func (l *Limiter) sweepLocked(now time.Time) {
	for lk, ls := range l.leases {
		if ls.unused() == 0 && now.Sub(ls.asked) > time.Second {
			delete(l.leases, lk)
		}
	}
	for host := range l.notices {
		l.noticeLocked(host, now)
	}
}

// keys are the Redis keys of one quota.
type keys struct {
	quota  string // the quota's TAT
	bp     string // the backpressure of its hosts, a hash
	active string // the Limiters that leased lately, a sorted set
}

// keysFor returns the keys of host's quota: its own with WithHostQuota, else the one of all
// hosts. The hash tag keeps a quota's keys on one slot of a Redis Cluster.
func (l *Limiter) keysFor(host string) keys {
	tag := l.key
	if l.o.perHost {
		tag += ":" + host
	}
	q := l.o.prefix + "{" + tag + "}"
	return keys{quota: q, bp: q + ":bp", active: q + ":active"}
}

// Stats returns what the Limiter has done so far.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Close gives the unused tokens of its leases back to Redis, if no one has leased since, and
// stops the Limiter's goroutines; then Reserve fails with ErrClosed. Close does not close the
// Redis client. It returns when the goroutines have stopped, with the error of giving back, if
// any. A call to Redis still running past its deadline is waited for: a client made with
// ContextTimeoutEnabled ends it at once, others at their ReadTimeout.
func (l *Limiter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var errs []error
	for lk, ls := range l.leases {
		k, end := ls.last()
		if k == 0 || l.down {
			continue
		}
		var ok int
		var err error
		if cerr := l.callLocked(context.Background(), func(ctx context.Context) {
			ok, err = returnScript.Run(ctx, l.rdb, []string{l.keysFor(lk).quota}, end, k, micros(l.interval)).Int()
		}); cerr != nil {
			break // Redis is slow: the tokens lapse
		}
		switch {
		case err != nil:
			l.stats.Failures++
			errs = append(errs, err)
		case ok == 1:
			l.stats.Returned += uint64(k)
		}
	}
	l.closing = true
	l.mu.Unlock()
	l.stop()
	err := l.ps.Close()
	l.wg.Wait()
	if err != nil && !errors.Is(err, redis.ErrClosed) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("redislimit: close: %w", errors.Join(errs...))
	}
	return nil
}

// probe pings Redis every 100 ms until it answers, then lets leases be taken again, or until
// Close. It runs while l.down, and holds no lock while it waits.
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
		ctx, cancel := context.WithTimeout(l.ctx, l.o.deadline)
		err := l.rdb.Ping(ctx).Err()
		cancel()
		l.mu.Lock()
		l.stats.Calls++
		if err == nil {
			l.down = false
			l.mu.Unlock()
			return
		}
		l.stats.Failures++
		l.lastErr = err
		l.mu.Unlock()
		t.Reset(retryEvery)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
