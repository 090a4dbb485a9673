package redislimit

import (
	"fmt"
	"log/slog"
	"time"
)

// An Option configures a Limiter made by New.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// DefaultDeadline is how long a Limiter waits for Redis, unless WithDeadline says otherwise.
const DefaultDeadline = 50 * time.Millisecond

// DefaultLeaseSpan is how much of a process's demand a lease of tokens covers, unless
// WithLeaseSpan says otherwise.
const DefaultLeaseSpan = 50 * time.Millisecond

// DefaultPrefix begins every key a Limiter writes, unless WithPrefix says otherwise.
const DefaultPrefix = "httpfutures:"

// policy is what a Limiter does while Redis cannot be reached.
type policy int

const (
	failClosed policy = iota // refuse the request with ErrUnavailable
	failOpen                 // let the request go
	fallBack                 // pace it locally at a share of the quota
)

type options struct {
	perHost  bool
	prefix   string
	deadline time.Duration
	span     time.Duration
	policy   policy
	share    float64      // of the quota, for fallBack
	log      *slog.Logger // WithLogger; nil if none
}

// lapse returns how late a leased token may still be used: half the lease span, and minLapse at
// least.
func (o options) lapse() time.Duration { return max(o.span/2, minLapse) }

func newOptions(opts []Option) options {
	o := options{prefix: DefaultPrefix, deadline: DefaultDeadline, span: DefaultLeaseSpan}
	for _, opt := range opts {
		opt.apply(&o)
	}
	return o
}

// WithHostQuota gives each host a quota of its own, of the rate and burst given to New, instead
// of one quota for all hosts together. Each host's state is kept under its own hash-tagged key,
// so that Redis Cluster keeps every quota on one slot and spreads the hosts over the nodes.
func WithHostQuota() Option {
	return optionFunc(func(o *options) { o.perHost = true })
}

// WithPrefix begins every key and channel of the Limiter with prefix instead of DefaultPrefix.
func WithPrefix(prefix string) Option {
	return optionFunc(func(o *options) { o.prefix = prefix })
}

// WithDeadline bounds how long a reservation waits for Redis to d instead of DefaultDeadline:
// a call that has not answered within d of a reservation needing its tokens counts as Redis
// being unavailable, and the failure policy decides. A batch leased ahead may take longer
// unnoticed, as long as it comes before the tokens held are spent. New panics if d is not
// positive.
func WithDeadline(d time.Duration) Option {
	if d <= 0 {
		panic(fmt.Sprintf("redislimit: WithDeadline(%v): the deadline must be positive", d))
	}
	return optionFunc(func(o *options) { o.deadline = d })
}

// WithLeaseSpan sizes the leases of tokens to d of the process's recent demand instead of
// DefaultLeaseSpan. A longer span makes fewer calls to Redis and lets the processes sharing a
// quota drift further from an even share; 0 takes one token per call.
func WithLeaseSpan(d time.Duration) Option {
	return optionFunc(func(o *options) { o.span = max(d, 0) })
}

// WithFailOpen lets requests go unlimited while Redis is unavailable, instead of refusing them.
// Choose it when going over the quota for a while costs less than not sending.
func WithFailOpen() Option {
	return optionFunc(func(o *options) { o.policy = failOpen })
}

// WithFallback paces requests with a local limiter at share (between 0 and 1) of the quota
// while Redis is unavailable, instead of refusing them: with n processes sharing the quota, a
// share of 1/n keeps the quota if all of them fall back at once. New panics if share is not in
// (0, 1].
func WithFallback(share float64) Option {
	if !(share > 0 && share <= 1) {
		panic(fmt.Sprintf("redislimit: WithFallback(%v): the share must be in (0, 1]", share))
	}
	return optionFunc(func(o *options) { o.policy, o.share = fallBack, share })
}

// WithLogger makes the Limiter log to l what an operator wants to know of Redis: that it became
// unavailable and the failure policy decides meanwhile (Warn, with the policy: requests refused,
// let go unlimited, or paced locally at a share of the quota), that it answers again and leases
// resume (Info, with how long it was away), and each probe that failed meanwhile (Debug). A line
// is logged as the state changes, with the Limiter's lock held: give it a quick handler. A nil l
// logs nothing.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.log = l })
}

// describe says what the policy does while Redis is unavailable, for a log line.
func (o options) describe() string {
	switch o.policy {
	case failOpen:
		return "fail open: requests go unlimited"
	case fallBack:
		return fmt.Sprintf("fall back: requests paced locally at %g of the quota", o.share)
	}
	return "fail closed: requests fail with ErrUnavailable"
}
