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

// minLapse is how late a leased token may still be used at least. A token may be used as late
// as half the lease span (a process busy elsewhere for a while loses none), and no later: then
// it lapses, and goes back to the quota with the next lease, for any process to lease again.
// Redis lends a token whose time passed unleased as late, the processes having all been slow to
// ask. So the processes sharing a quota send, in any window, no more than the quota's rate allows
// in the window, plus twice the burst, plus a lease (and half a lease more after a spell in which
// the machine ran none of them), which leaves room for the jitter of the network and of the
// machine.
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
// schedule, asking for the next batch, without waiting for it, once one is half spent. A token
// not used within half a lease span of its time lapses, and goes back to the quota with the next
// lease, so that a process slowed by a busy machine leaves its tokens to the others rather than
// take them from the fleet; a token whose time passed while every process was slow to lease it
// is still lent for as long; tokens unused are given back on Close. So the processes together
// keep the quota's rate in every window, give or take the burst and a lease. Stats counts the
// calls to Redis per request.
//
// Redis being down, or slower than the deadline (WithDeadline), never hangs a request. By
// default the Limiter fails closed: Reserve returns an error matching ErrUnavailable after at
// most the deadline (the Scheduler fails the request with an *httpfutures.LimiterError); it
// can fail open instead (WithFailOpen), or pace locally at a share of the quota
// (WithFallback). Once a call has failed, or kept a Reserve waiting the whole deadline, Redis
// counts as unavailable, and the policy decides at once, until the call answers or a probe,
// every 100 ms, finds the quota's node answering; then the Limiter starts again without a
// burst, whatever Redis remembers. The probe asks the node that holds the quota's key, and a
// Redis Cluster client is told to reload its map of slots at each failure, so that the quota is
// back within a probe of a failover; a client of Sentinel (redis.NewFailoverClient) asks the
// sentinels for the master at each dial. (After a long outage a go-redis client stops dialing
// once PoolSize dials in a row have failed, and tries again once a second: Redis may then be
// back a second before the Limiter sees it.)
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

	// mu guards the tokens, what is known of the hosts, the state of Redis and the counts.
	mu        sync.Mutex
	leases    map[string]*lease    // by host, or "" for the quota of all hosts
	notices   map[string]notice    // the backpressure heard for each host
	fallback  map[string]*fallback // by host, or "": the local limit while down
	down      bool                 // the last call to Redis failed: the policy decides
	probing   bool                 // the probe runs
	probeKey  string               // the key of the quota whose call failed: the probe asks its node
	lastErr   error                // the failure of the last call, if down
	downAt    time.Time            // when Redis became unavailable, if down
	recover   bool                 // the next lease starts without a burst
	overdue   int                  // calls past the deadline still running: no other starts
	observing int                  // calls sharing backpressure running
	closed    bool                 // Close has begun: no call starts, Reserve refuses
	stats     Stats
}

// Stats counts what a Limiter did.
type Stats struct {
	Admitted  uint64 // tokens handed out by Reserve, from Redis or by the failure policy
	Leased    uint64 // tokens leased from Redis
	Lapsed    uint64 // leased tokens that lapsed unused
	Returned  uint64 // leased tokens given back to Redis: lapsed ones with the next lease, unused ones by Close
	Calls     uint64 // calls to Redis: leases, probes, backpressure and returns
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
// New panics if rdb is nil or a *redis.Ring (which cannot listen before it is given a channel,
// as New does), if key is empty or holds a brace (keys are hash-tagged with braces), or if r is
// not a positive finite rate.
func New(rdb redis.UniversalClient, key string, r rate.Limit, burst int, opts ...Option) *Limiter {
	_, ring := rdb.(*redis.Ring)
	switch {
	case rdb == nil:
		panic("redislimit: New with a nil Redis client")
	case ring:
		panic("redislimit: New with a *redis.Ring, which cannot listen for backpressure before it has a channel: " +
			"use a *redis.Client, a *redis.ClusterClient or a failover client")
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
	l.adviseClient()
	l.ctx, l.stop = context.WithCancel(context.Background())
	l.ps = rdb.Subscribe(l.ctx) // no channel yet: no round trip here
	l.wg.Add(1)
	go l.listen()
	return l
}

var _ httpfutures.BackpressureObserver = (*Limiter)(nil)

// Reserve implements httpfutures.Limiter: it takes a token for one request to host at now and
// returns when the request may go. It waits for Redis only when its lease is spent, for at most
// the deadline. While Redis is unavailable the failure policy decides: an error matching
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
	var waitEnd time.Time // when this reservation stops waiting for Redis
	for first := true; ; first = false {
		// Looked up again after a wait: meanwhile a pace may have lapsed, and its lease gone.
		n := l.noticeLocked(host, now)
		lk := ""
		if l.o.perHost || n.paced(now) {
			lk = host
		}
		ls := l.leaseLocked(lk, now)
		if first {
			ls.calls++
		}
		due, ok, lapsed := ls.take(now)
		l.stats.Lapsed += uint64(lapsed)
		if ok {
			if first && ls.call == nil && ls.low() && !l.down && l.o.span > 0 {
				// Lease the next batch ahead, without waiting (unless a batch has just come: the
				// next reservation sees the demand since). If that fails, this token still holds,
				// and the failure policy decides for the requests after it.
				_, _ = l.startLeaseLocked(ls, lk, n, now)
			}
			l.stats.Admitted++
			return later(due, n.pauseEnd), nil
		}
		c, err := l.callForLocked(ls, lk, n, now)
		if err != nil {
			return l.decideLocked(ctx, lk, now, err)
		}
		if waitEnd.IsZero() {
			waitEnd = time.Now().Add(l.o.deadline)
		}
		if !l.waitLocked(ctx, c, waitEnd) {
			err := ctx.Err()
			if err == nil {
				err = errSlow(l.o.deadline)
			}
			return l.decideLocked(ctx, lk, now, err)
		}
		if l.closed {
			return time.Time{}, ErrClosed
		}
		// The call has answered: a fresh batch, whose first token has not lapsed, or a failure.
	}
}

// callForLocked returns the call for the next batch of ls, the lease of host lk, starting it if
// none runs, or why Redis counts as unavailable: a call failed, or one has kept a reservation
// waiting the whole deadline and still runs. It requires l.mu held.
func (l *Limiter) callForLocked(ls *lease, lk string, n notice, now time.Time) (*leaseCall, error) {
	switch c := ls.call; {
	case l.down:
		return nil, l.lastErr
	case c == nil:
		return l.startLeaseLocked(ls, lk, n, now)
	case c.overdue:
		return nil, errSlow(l.o.deadline)
	default:
		return c, nil
	}
}

// leaseLocked returns the lease of host lk ("" for all hosts), made if there is none. It
// requires l.mu held.
func (l *Limiter) leaseLocked(lk string, now time.Time) *lease {
	ls := l.leases[lk]
	if ls == nil {
		if len(l.leases) >= maxHosts {
			l.sweepLocked(now)
		}
		ls = &lease{}
		l.leases[lk] = ls
	}
	return ls
}

// maxHosts is how many hosts' leases a Limiter keeps before it forgets those idle.
const maxHosts = 1024

// sweepLocked forgets the leases that are spent and were asked for more than a second before
// now, and the backpressure that has lapsed. It requires l.mu held.
func (l *Limiter) sweepLocked(now time.Time) {
	for lk, ls := range l.leases {
		if ls.unused() == 0 && ls.call == nil && now.Sub(ls.asked) > time.Second {
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
// any. Giving back takes at most the deadline; a call to Redis still running past its deadline
// is waited for: a client made with ContextTimeoutEnabled ends it at once, others at their
// ReadTimeout.
func (l *Limiter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var backs []giveBack
	if !l.down && l.overdue == 0 {
		for lk, ls := range l.leases {
			if k, end := ls.last(); k > 0 {
				backs = append(backs, giveBack{key: l.keysFor(lk).quota, n: k, end: end})
			}
		}
	}
	var errs []error
	if len(backs) > 0 {
		done := make(chan struct{})
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer close(done)
			l.giveBack(backs, &errs)
		}()
		t := time.NewTimer(l.o.deadline)
		l.mu.Unlock()
		select {
		case <-done:
		case <-t.C: // Redis is slow: the tokens lapse
		}
		t.Stop()
	} else {
		l.mu.Unlock()
	}
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

// giveBack is the unused tokens of a lease, to give back to the quota at key if its TAT is
// still end.
type giveBack struct {
	key, end string
	n        int
}

// giveBack gives backs back in turn, each within the deadline, until one fails to answer in
// time or Close ends them, and appends the errors to errs.
func (l *Limiter) giveBack(backs []giveBack, errs *[]error) {
	for _, b := range backs {
		ctx, cancel := context.WithTimeout(l.ctx, l.o.deadline)
		ok, err := returnScript.Run(ctx, l.rdb, []string{b.key}, b.end, b.n, micros(l.interval)).Int()
		cancel()
		l.mu.Lock()
		l.stats.Calls++
		switch {
		case err != nil:
			l.stats.Failures++
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				*errs = append(*errs, err)
			}
		case ok == 1:
			l.stats.Returned += uint64(b.n)
		}
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
