package redislimit_test

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/httpfutures/httpfutures/internal/stallwatch"
	"github.com/httpfutures/httpfutures/redislimit"
)

// A machine busy enough may give a process no core at all for a while, or too seldom: no limiter
// sends then, so the tests that measure a rate on a busy machine leave that time out, and say
// how long it was (package stallwatch).

// stallTick is how often watchStalls looks at the clock, and watchRedis at the server.
const stallTick = stallwatch.Tick

// watchStalls notes, from start until the returned func is called, the spells in which the
// process did not run. The func returns them.
func watchStalls(start time.Time) func() [][2]int64 { return stallwatch.Process(start) }

// stalledTogether returns how long, in [from, to), every process of reports was stalled at once,
// or the Redis server they share (the spells of redisStalls).
func stalledTogether(reports []fleetReport, from, to time.Time, redisStalls ...[2]int64) time.Duration {
	window := [][2]int64{{from.UnixNano(), to.UnixNano()}}
	all := window
	for _, r := range reports {
		all = intersect(all, r.Stalls)
	}
	all = union(all, intersect(window, redisStalls))
	var d time.Duration
	for _, a := range all {
		d += time.Duration(a[1] - a[0])
	}
	return d
}

// intersect returns the spells in both a and b, each sorted and without overlaps.
func intersect(a, b [][2]int64) [][2]int64 {
	var both [][2]int64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		if lo, hi := max(a[i][0], b[j][0]), min(a[i][1], b[j][1]); lo < hi {
			both = append(both, [2]int64{lo, hi})
		}
		if a[i][1] < b[j][1] {
			i++
		} else {
			j++
		}
	}
	return both
}

// sendBounds returns how many requests a quota of r per second with burst lets the processes of
// reports send in [from, to): within a share within of the rate for the time they all ran, and
// their Redis server (stalled in redisStalls), at least; at most the rate's share above it and
// the burst, and a lapse's worth more if one of them stalled meanwhile or just before, whose
// tokens may then go that late.
func sendBounds(r float64, burst int, within float64, reports []fleetReport, from, to time.Time, redisStalls ...[2]int64) (least, most float64) {
	d := to.Sub(from).Seconds()
	least = r * (d - stalledTogether(reports, from, to, redisStalls...).Seconds()) * (1 - within)
	most = r*d*(1+within) + float64(burst)
	lapse := redislimit.DefaultLeaseSpan / 2
	for _, rep := range reports {
		if len(intersect([][2]int64{{from.Add(-lapse).UnixNano(), to.UnixNano()}}, rep.Stalls)) > 0 {
			most += r * lapse.Seconds()
			break
		}
	}
	return least, most
}

// watchRedis notes, from start until the returned func is called, the spells in which the Redis
// server that holds key did not answer: a read of the key every tick that took two ticks or more,
// from its sending to its answer, on a machine too busy to run the server. No process leases
// then. The func returns them.
func watchRedis(rdb redis.UniversalClient, key string, start time.Time) func() [][2]int64 {
	return stallwatch.Ticks(start, func(_, _ time.Time) (spell [2]int64, ok bool) {
		sent := time.Now()
		rdb.Exists(context.Background(), key)
		got := time.Now()
		return [2]int64{sent.UnixNano(), got.UnixNano()}, got.Sub(sent) > 2*stallTick
	})
}

// union returns the spells in a or b, each sorted and without overlaps.
func union(a, b [][2]int64) [][2]int64 {
	all := append(append([][2]int64(nil), a...), b...)
	slices.SortFunc(all, func(x, y [2]int64) int { return cmp.Compare(x[0], y[0]) })
	var out [][2]int64
	for _, s := range all {
		if n := len(out); n > 0 && s[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], s[1])
			continue
		}
		out = append(out, s)
	}
	return out
}
