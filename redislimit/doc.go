// Package redislimit provides a Limiter on Redis, so that many processes share one quota: ten
// replicas of a crawler, or a fleet of workers calling one API, keep together to the rate that
// one of them would keep alone. Every limit of an httpfutures Scheduler is kept by its process;
// a Limiter made by New with the same Redis and key is shared by every process, on any machine:
//
//	// Or a *redis.ClusterClient, or NewFailoverClient; ContextTimeoutEnabled: see Failures.
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
//	lim := redislimit.New(rdb, "api.example.com", 100, 10) // 100/s, bursts of 10, for all
//	defer lim.Close()
//	session := httpfutures.NewSession(httpfutures.WithLimiter(lim))
//
// # The quota
//
// The quota is GCRA on the server's clock: one instant in Redis (the generic cell rate
// algorithm's theoretical arrival time), moved by a Lua script that reads Redis's TIME, so that
// the processes' clocks never matter. Scripts run with EVALSHA, loaded again only on NOSCRIPT.
//
// Reserve always takes a token and returns when it is due, and the Scheduler waits on its own
// timer. A Limiter leases about 50 ms of its process's recent demand at once (WithLeaseSpan),
// cut to a fair share when several lease together, hands the tokens out on their schedule, and
// asks for the next batch, without waiting for it, when half of one is spent. A token not used
// within half a lease span of its time lapses and goes back to the quota with the next lease, so
// that a process slowed by a busy machine leaves its tokens to the others rather than take them
// from the fleet; a token whose time passed while every process was slow to lease it is still
// lent for as long; Close gives unused ones back. In any window the processes together send no
// more than the quota allows, plus twice the burst and a lease (half a lease more after a spell
// in which the machine ran none of them). Stats counts the calls to Redis: about 0.04 per
// request at 2,000/s.
//
// WithHostQuota gives each host a quota of its own; each host's keys are hash-tagged, so that a
// Redis Cluster keeps each quota on one slot and spreads the hosts over its nodes.
//
// # Failures
//
// No request waits for Redis longer than the deadline (WithDeadline, 50 ms): the call runs in a
// goroutine of the Limiter, so the bound holds whatever the client's timeouts. While Redis cannot
// be reached the failure policy decides at once: by default the Limiter fails closed (the request
// fails with an error matching ErrUnavailable, inside an *httpfutures.LimiterError); WithFailOpen
// lets requests go unlimited; WithFallback(share) paces them locally at that share of the quota
// (with n processes, 1/n keeps the quota). WithLogger tells an operator when the policy takes
// effect and when Redis is back.
//
// A call that has not answered by the deadline goes on until the client ends it, and meanwhile
// the Limiter makes no other call (so as not to pile calls onto a server that is slow): the
// policy decides. A client made with ContextTimeoutEnabled ends a call at its deadline; other
// clients only at their ReadTimeout, 5 s by default. Where the network to Redis is cut without
// a word (a firewall, a lost route), a call made then never answers, and a Limiter whose client
// waits for the ReadTimeout finds Redis again only that long after the call, however early the
// network healed; with ContextTimeoutEnabled, within a probe or two of it (measured: 0.26 s
// against 1.8 s with a ReadTimeout of 2 s, TestNetworkCut); the client closes the connection of
// a call it ends so. Make the client with ContextTimeoutEnabled, as the example above does; New
// tells the logger if it is not.
//
// A probe asks the node that holds the quota every 100 ms, not any node: a cluster client sends a
// PING anywhere, and would find the cluster answering while the quota's slot still points at a
// master that is gone. A Redis Cluster client is told to reload its map of slots at each failure
// (go-redis does so alone once a minute), and a Sentinel client (redis.NewFailoverClient) asks
// the sentinels for the master at each dial: the quota comes from Redis again within a second of
// a failover. The first lease after an outage starts without a burst, whatever Redis remembers.
// The measured figures (a Cluster's master killed, Sentinel's, Redis killed and stalled, a fleet
// on a busy machine) are in the package's README.md.
//
// # Servers heard fleet-wide
//
// A 429 or 503 with Retry-After, or the pace of the RateLimit fields, heard by one process is
// stored beside the quota and published; every Limiter on the key pauses or paces that host as
// if it had heard it (a Limiter is an httpfutures.BackpressureObserver). A request whose token
// was reserved before the news came still goes: at most one per process, within a lease of the
// response.
//
// go-redis/redis_rate runs the same GCRA, but its Allow answers "now or not yet" and has no
// reservation ahead, so it cannot serve a Limiter that returns when the request may go without
// sleeping, nor batch tokens; BenchmarkShared measures the lease against one call per try.
package redislimit
