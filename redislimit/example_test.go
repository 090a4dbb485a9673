package redislimit_test

import (
	"github.com/redis/go-redis/v9"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/redislimit"
)

// Every process that runs this, on any machine, sends to api.example.com no more than 100
// requests per second together; a 429 with Retry-After that one of them hears pauses them all.
func Example() {
	// ContextTimeoutEnabled: a call to Redis ends at the Limiter's deadline, so that the Limiter
	// finds Redis again soon after a network cut (see Failures).
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	lim := redislimit.New(rdb, "api.example.com", 100, 10,
		redislimit.WithFallback(0.1)) // while Redis is away: a tenth of the quota each, for ten processes
	defer lim.Close()

	session := httpfutures.NewSession(httpfutures.WithLimiter(lim))
	defer session.Close()
	_ = session.Get("https://api.example.com/items/1")
}
