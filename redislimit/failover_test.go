package redislimit_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/redislimit"
)

// A failoverTarget is a replicated Redis of a test's own, whose master the test kills.
type failoverTarget struct {
	opts *redis.UniversalOptions // for the Limiters' clients
	// kill kills the master that holds key, as a crash would, and returns when its replica has
	// become a master: the failover is done but for telling the clients.
	kill func(key string) time.Time
	// told, if not nil, receives when the clients were told of the new master.
	told chan time.Time
}

// clusterTarget is a Redis Cluster of three masters and three replicas whose nodes take one
// that does not answer for a second as failed.
func clusterTarget(t *testing.T) failoverTarget {
	c := startReplicatedCluster(t, 3, time.Second)
	return failoverTarget{opts: &redis.UniversalOptions{Addrs: c.addrs()}, kill: func(key string) time.Time {
		i := c.masterOf(t, key)
		c.masters[i].kill()
		return promoted(t, c.replicas[i], 20*time.Second)
	}}
}

// sentinelTarget is a master and a replica watched by three sentinels, which take a master
// that does not answer for 500 ms as down, make the replica the master, and tell the clients
// with +switch-master.
func sentinelTarget(t *testing.T) failoverTarget {
	s := startSentinels(t, 3, 500*time.Millisecond)
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].addr})
	t.Cleanup(func() { sc.Close() })
	ps := sc.Subscribe(context.Background(), "+switch-master")
	t.Cleanup(func() { ps.Close() })
	_, err := ps.Receive(context.Background()) // the subscription's confirmation
	require.NoError(t, err)
	told := make(chan time.Time, 1)
	go func() {
		if _, ok := <-ps.Channel(); ok {
			told <- time.Now()
		}
	}()
	return failoverTarget{
		opts: &redis.UniversalOptions{Addrs: s.addrs(), MasterName: s.name},
		kill: func(string) time.Time {
			s.master.kill()
			return promoted(t, s.replica, 20*time.Second, s.sentinels...)
		},
		told: told,
	}
}

// A failoverMember is one Limiter of the test, on a client of its own as a process of its own
// would have, sending to a server of its own.
type failoverMember struct {
	policy string
	lim    *redislimit.Limiter
	srv    *countingServer
	tr     *httpfutures.AsyncTransport
	d      *driver
	leases []time.Time // when its count of leased tokens was seen to grow
}

// TestFailover kills, mid-run, the master that holds a quota two Limiters share (one failing
// closed, one falling back to half the quota), in a Redis Cluster and under Redis Sentinel. The
// quota must come from Redis again within 2 s of the failover: a cluster client, left to itself,
// keeps sending the quota's calls to the dead master for a minute, until it reloads its map of
// slots.
func TestFailover(t *testing.T) {
	const (
		quota  = processQuota
		burst  = 10
		within = 2 * time.Second // of the failover: the quota comes from Redis again
		before = time.Second
		after  = 1500 * time.Millisecond // measured from within after the failover
		lease  = redislimit.DefaultLeaseSpan
	)
	tests := []struct {
		name  string
		start func(t *testing.T) failoverTarget
	}{
		{"cluster of 3 masters and 3 replicas", clusterTarget},
		{"sentinels, a master and a replica", sentinelTarget},
	}
	var rows []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.start(t)
			key := uniqueKey(t)
			members := []*failoverMember{
				{policy: "fail closed"},
				{policy: "fall back to half"},
			}
			for i, m := range members {
				rdb := redis.NewUniversalClient(target.opts)
				t.Cleanup(func() { rdb.Close() })
				opts := []redislimit.Option{redislimit.WithFallback(0.5)}
				if i == 0 {
					opts = nil
				}
				m.lim = redislimit.New(rdb, key, quota, burst, opts...)
				m.srv = newCountingServer(t, nil)
				m.tr = httpfutures.NewTransport(nil, httpfutures.WithLimiter(m.lim))
			}
			stopWatch := watchLeases(members)

			t0 := time.Now()
			stalls := watchStalls(t0)
			for _, m := range members {
				m.d = drive(t, m.tr, m.srv.URL, 16, 5*time.Millisecond)
			}
			sleepUntil(t0.Add(before))
			killed := time.Now()
			failedOver := target.kill(key)
			end := failedOver.Add(within + after)
			sleepUntil(end)
			report := []fleetReport{{Stalls: stalls()}}
			for _, m := range members {
				m.d.stop()
				require.NoError(t, m.tr.Close())
				m.d.wg.Wait()
			}
			stopWatch()
			for _, m := range members {
				require.NoError(t, m.lim.Close())
			}

			var all []time.Time
			for _, m := range members {
				all = append(all, m.srv.times(nil)...)
			}
			slices.SortFunc(all, time.Time.Compare)
			rate := func(times []time.Time, from, to time.Time) float64 {
				return float64(countIn(times, from, to)) / to.Sub(from).Seconds()
			}
			// ran returns the share of [from, to) the machine ran the process.
			ran := func(from, to time.Time) float64 {
				return 1 - stalledTogether(report, from, to).Seconds()/to.Sub(from).Seconds()
			}
			holds := func(from, to time.Time, when string) float64 {
				t.Helper()
				n := float64(countIn(all, from, to))
				least, most := sendBounds(quota, 2*burst, 0.05, report, from, to)
				assert.LessOrEqual(t, n, most, "requests %s", when)
				assert.GreaterOrEqual(t, n, least, "requests %s", when)
				return rate(all, from, to)
			}
			// Before the kill, and from 2 s after the failover: the quota, shared.
			rBefore := holds(t0.Add(200*time.Millisecond), killed, "before the kill")
			again := failedOver.Add(within)
			rAfter := holds(again, end, "from 2 s after the failover")
			// Meanwhile, once the tokens leased before the kill are spent: the policies. A process
			// the machine stalled spends them late, by as long as it stalled.
			down := spentBy(report, killed, lease+100*time.Millisecond)
			closed, fallback := members[0].srv.times(nil), members[1].srv.times(nil)
			assert.Zero(t, countIn(closed, down, failedOver), "requests sent failing closed during the failover, from %v after the kill",
				down.Sub(killed).Round(time.Millisecond))
			assert.LessOrEqual(t, rate(fallback, down, failedOver), quota/2*1.1, "requests per second falling back during the failover")
			assert.GreaterOrEqual(t, rate(fallback, down, failedOver), quota/2*0.9*ran(down, failedOver),
				"requests per second falling back during the failover")
			for _, o := range members[0].d.between(down, failedOver) {
				if !assert.ErrorIs(t, o.err, redislimit.ErrUnavailable, "failing closed: the first request that did not fail, submitted %v and done %v after the kill",
					o.submitted.Sub(killed).Round(time.Millisecond), o.done.Sub(killed).Round(time.Millisecond)) {
					break
				}
			}
			// The first lease after the failover.
			var backs []string
			for _, m := range members {
				i := 0
				for i < len(m.leases) && m.leases[i].Before(failedOver) {
					i++
				}
				require.Less(t, i, len(m.leases), "%s: no lease from Redis after the failover", m.policy)
				back := m.leases[i].Sub(failedOver)
				assert.LessOrEqual(t, back, within, "%s: the first lease after the failover", m.policy)
				backs = append(backs, fmt.Sprintf("%s %v", m.policy, back.Round(time.Millisecond)))
				st := m.lim.Stats()
				assert.Positive(t, st.Failures, m.policy)
				t.Logf("%s: %+v", m.policy, st)
			}
			told := ""
			if target.told != nil {
				select {
				case at := <-target.told:
					told = fmt.Sprintf(", the clients told %v after that", at.Sub(failedOver).Round(time.Millisecond))
				default:
				}
			}
			row := fmt.Sprintf("%s: the replica a master %v after the kill%s; leases again %s after the failover; "+
				"before %.0f/s; during %.0f/s (fail closed %.0f/s, falling back %.0f/s); from 2 s after %.0f/s (%.0f/s, %.0f/s)",
				tt.name, failedOver.Sub(killed).Round(time.Millisecond), told, strings.Join(backs, ", "),
				rBefore, rate(all, down, failedOver), rate(closed, down, failedOver), rate(fallback, down, failedOver), rAfter,
				rate(closed, again, end), rate(fallback, again, end))
			t.Log(row)
			rows = append(rows, row)
		})
	}
	t.Logf("quota %d/s shared by a Limiter failing closed and one falling back to half:\n%s", quota, strings.Join(rows, "\n"))
}

// spentBy returns when the tokens leased before at are spent: after span, and later by as long
// as the process stalled meanwhile.
func spentBy(reports []fleetReport, at time.Time, span time.Duration) time.Time {
	end := at.Add(span)
	for {
		later := at.Add(span + stalledTogether(reports, at, end))
		if !later.After(end) {
			return end
		}
		end = later
	}
}

// watchLeases notes, every 2 ms, when each member's count of leased tokens grows, until the
// returned func is called.
func watchLeases(members []*failoverMember) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		seen := make([]uint64, len(members))
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				for i, m := range members {
					if n := m.lim.Stats().Leased; n > seen[i] {
						seen[i] = n
						m.leases = append(m.leases, now)
					}
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
