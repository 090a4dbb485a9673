package main

import (
	"flag"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/redislimit"
)

// sharedFlags are -redis, -shared-rate and -shared-key: load generators on any number of
// machines, given the same Redis and key, send -shared-rate requests per second together, with
// no coordinator but Redis. A nil *sharedFlags shares nothing.
type sharedFlags struct {
	url  string
	rate float64
	key  string

	opt *redis.Options // parsed from url by check
	rdb *redis.Client  // made by options
	lim *redislimit.Limiter
}

func addSharedFlags(fs *flag.FlagSet) *sharedFlags {
	s := &sharedFlags{}
	fs.StringVar(&s.url, "redis", "", "Redis URL (redis://host:port/db) through which load generators share -shared-rate"+asOwn)
	fs.Float64Var(&s.rate, "shared-rate", 0, "requests per second for all the load generators sharing -redis and -shared-key"+asOwn)
	fs.StringVar(&s.key, "shared-key", "", "the key of the shared rate in Redis (default: the target's host)"+asOwn)
	return s
}

// check validates the flags and settles the key, from target when none is given. It returns
// s, or nil if no rate is shared.
func (s *sharedFlags) check(target string) (*sharedFlags, error) {
	if s.url == "" && s.rate == 0 && s.key == "" {
		return nil, nil
	}
	switch {
	case s.url == "":
		return nil, usagef("-shared-rate and -shared-key need -redis")
	case !(s.rate > 0) || isNaNOrInf(s.rate):
		return nil, usagef("-redis needs -shared-rate, a positive number of requests per second, got %v", s.rate)
	case strings.ContainsAny(s.key, "{}"):
		return nil, usagef("-shared-key must hold no braces, got %q", s.key)
	}
	opt, err := redis.ParseURL(s.url)
	if err != nil {
		return nil, usagef("-redis: %v", err)
	}
	// The Limiter's calls end at their deadline, not at the ReadTimeout: after a network cut, the
	// rate is shared again within a probe of Redis answering (see redislimit's Failures).
	opt.ContextTimeoutEnabled = true
	s.opt = opt
	if s.key == "" {
		s.key = "demo"
		if u, err := url.Parse(target); err == nil && target != "" {
			s.key = strings.ToLower(u.Host)
		}
	}
	return s, nil
}

// options returns the transport's options for the shared rate: a Limiter on Redis.
func (s *sharedFlags) options() []httpfutures.Option {
	if s == nil {
		return nil
	}
	s.rdb = redis.NewClient(s.opt)
	s.lim = redislimit.New(s.rdb, s.key, rate.Limit(s.rate), 1)
	return []httpfutures.Option{httpfutures.WithLimiter(s.lim)}
}

// close closes the Limiter and its client, once the transport is closed.
func (s *sharedFlags) close() {
	if s == nil || s.lim == nil {
		return
	}
	s.lim.Close()
	s.rdb.Close()
}
