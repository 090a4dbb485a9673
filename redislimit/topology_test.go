package redislimit_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The tests that lose a master build a replicated Redis of their own, of redis-server processes
// on free loopback ports, so that they can kill its master as a crash would: a Redis Cluster
// whose masters each have a replica, or a master and a replica watched by sentinels.

// waitFor polls ready every 20 ms until it returns nil, failing the test if it has not after
// limit.
func waitFor(t testing.TB, limit time.Duration, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, what, "not after %v: %v", limit, err)
		}
		time.Sleep(20 * time.Millisecond) // polling servers that have no other way to say it
	}
}

// ms formats d in whole milliseconds, as Redis's settings take it.
func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// infoField returns the value of field in the INFO section of the server rdb.
func infoField(rdb *redis.Client, section, field string) string {
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// A replicatedCluster is a Redis Cluster of a test's own: masters, each followed by a replica.
type replicatedCluster struct {
	masters, replicas []*redisProcess // replicas[i] follows masters[i]
}

// clusterSlots is how many hash slots a Redis Cluster has.
const clusterSlots = 16384

// startReplicatedCluster starts a cluster of n masters and n replicas, its nodes marking a node
// failed after nodeTimeout, and returns when every node sees every other as it should.
func startReplicatedCluster(t testing.TB, n int, nodeTimeout time.Duration) *replicatedCluster {
	t.Helper()
	args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", ms(nodeTimeout)}
	c := &replicatedCluster{}
	for range n {
		c.masters = append(c.masters, startRedis(t, args...))
	}
	for range n {
		c.replicas = append(c.replicas, startRedis(t, args...))
	}
	ctx := context.Background()
	for i, m := range c.masters {
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		require.NoError(t, m.admin().ClusterAddSlotsRange(ctx, lo, hi).Err())
	}
	for _, p := range c.nodes()[1:] {
		require.NoError(t, p.admin().ClusterMeet(ctx, "127.0.0.1", c.masters[0].port()).Err())
	}
	for i, r := range c.replicas {
		id, err := c.masters[i].admin().ClusterMyID(ctx).Result()
		require.NoError(t, err)
		waitFor(t, 10*time.Second, "a replica knows its master", func() error {
			return r.admin().ClusterReplicate(ctx, id).Err()
		})
	}
	waitFor(t, 30*time.Second, "the cluster is up", c.up)
	return c
}

// nodes returns the masters, then the replicas.
func (c *replicatedCluster) nodes() []*redisProcess {
	return append(append([]*redisProcess(nil), c.masters...), c.replicas...)
}

// addrs returns the addresses of every node.
func (c *replicatedCluster) addrs() []string {
	var addrs []string
	for _, p := range c.nodes() {
		addrs = append(addrs, p.addr)
	}
	return addrs
}

// up returns nil if every node sees the cluster as ok, with as many masters serving slots and
// replicas as it was made with, none failing, and every replica in sync with its master.
func (c *replicatedCluster) up() error {
	ctx := context.Background()
	for _, p := range c.nodes() {
		rdb := p.admin()
		info, err := rdb.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster not ok", p.addr)
		}
		nodes, err := rdb.ClusterNodes(ctx).Result()
		if err != nil {
			return err
		}
		masters, replicas := 0, 0
		for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
			f := strings.Fields(line)
			if len(f) < 8 {
				return fmt.Errorf("%s: a node line %q", p.addr, line)
			}
			flags := f[2]
			if strings.Contains(flags, "fail") || strings.Contains(flags, "handshake") || strings.Contains(flags, "noaddr") {
				return fmt.Errorf("%s sees %s as %s", p.addr, f[1], flags)
			}
			switch {
			case strings.Contains(flags, "master") && len(f) > 8:
				masters++
			case strings.Contains(flags, "slave"):
				replicas++
			}
		}
		if masters != len(c.masters) || replicas != len(c.replicas) {
			return fmt.Errorf("%s sees %d masters serving slots and %d replicas", p.addr, masters, replicas)
		}
	}
	for _, r := range c.replicas {
		if s := infoField(r.admin(), "replication", "master_link_status"); s != "up" {
			return fmt.Errorf("replica %s: link %q", r.addr, s)
		}
	}
	return nil
}

// masterOf returns the index of the master that holds key.
func (c *replicatedCluster) masterOf(t testing.TB, key string) int {
	slot, err := c.masters[0].admin().ClusterKeySlot(context.Background(), key).Result()
	require.NoError(t, err)
	return int(slot) * len(c.masters) / clusterSlots
}

// promoted returns when the replica p, its master lost, has become a master, polling every 5 ms,
// or fails the test after limit, with the logs of p and of the processes that were to promote it.
func promoted(t testing.TB, p *redisProcess, limit time.Duration, by ...*redisProcess) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		role, err := p.admin().Do(context.Background(), "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			return time.Now()
		}
		if time.Now().After(deadline) {
			logs := p.log()
			for _, q := range by {
				logs += fmt.Sprintf("\n%s:\n%s", q.addr, q.log())
			}
			require.FailNow(t, "no failover", "replica %s not a master %v after its master was killed: %v %v\n%s",
				p.addr, limit, role, err, logs)
		}
		time.Sleep(5 * time.Millisecond) // polling: the server says nothing of its own accord
	}
}

// A sentinelSet is a master and its replica watched by sentinels of a test's own.
type sentinelSet struct {
	name            string // the master's, as the sentinels know it
	master, replica *redisProcess
	sentinels       []*redisProcess
}

// startSentinels starts a master, a replica and n sentinels, which take the master as down after
// downAfter and agree on it by a majority, and returns when every sentinel knows the replica and
// the other sentinels.
func startSentinels(t testing.TB, n int, downAfter time.Duration) *sentinelSet {
	t.Helper()
	s := &sentinelSet{name: "fleet"}
	s.master = startRedis(t)
	s.replica = startRedis(t, "--replicaof", "127.0.0.1", s.master.port())
	waitFor(t, 10*time.Second, "the replica is in sync", func() error {
		if v := infoField(s.replica.admin(), "replication", "master_link_status"); v != "up" {
			return fmt.Errorf("link %q", v)
		}
		return nil
	})
	// A sentinel tries a failover of the same master again only after twice the failover timeout:
	// if the sentinels' votes split (each voting for itself, as they may when they all see the
	// master down at once), none promotes the replica until then. At 3 s, that is 6 s, which
	// the tests' 20 s leave room for.
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]s %[3]d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]s\n"+
		"sentinel failover-timeout %[1]s 3000\n", s.name, s.master.port(), n/2+1, ms(downAfter))
	for range n {
		p := newRedisProcess(t, "--sentinel")
		p.conf = filepath.Join(p.dir, "sentinel.conf")
		require.NoError(t, os.WriteFile(p.conf, []byte(conf), 0o600))
		p.start()
		s.sentinels = append(s.sentinels, p)
	}
	waitFor(t, 30*time.Second, "the sentinels know the replica and each other", func() error {
		for _, p := range s.sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
			replicas, err := sc.Replicas(context.Background(), s.name).Result()
			if err == nil && len(replicas) != 1 {
				err = fmt.Errorf("%s knows %d replicas", p.addr, len(replicas))
			}
			if err == nil {
				var others []map[string]string
				if others, err = sc.Sentinels(context.Background(), s.name).Result(); err == nil && len(others) != n-1 {
					err = fmt.Errorf("%s knows %d other sentinels", p.addr, len(others))
				}
			}
			sc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	return s
}

// addrs returns the sentinels' addresses.
func (s *sentinelSet) addrs() []string {
	var addrs []string
	for _, p := range s.sentinels {
		addrs = append(addrs, p.addr)
	}
	return addrs
}
