package redislimit_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The tests run against real Redis servers: REDIS_ADDR (default 127.0.0.1:6379) for a standalone
// server, REDIS_CLUSTER_ADDRS (default 127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002) for a Redis
// Cluster, and redis-server on PATH for the tests that kill their own. Without them a test skips,
// saying what to start; with CI set in the environment, it fails.

const startHelp = "start one with `redis-server --port 6379 --daemonize yes`, or see .ci/run for a cluster"

// unavailable skips the test, or fails it when CI is set.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: the Redis servers must be running)", msg)
	}
	t.Skipf("%s; %s", msg, startHelp)
}

// redisAddrs returns the addresses a standalone server (cluster false) or a cluster is at.
func redisAddrs(cluster bool) []string {
	if cluster {
		v := os.Getenv("REDIS_CLUSTER_ADDRS")
		if v == "" {
			v = "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
		}
		return strings.Split(v, ",")
	}
	v := os.Getenv("REDIS_ADDR")
	if v == "" {
		v = "127.0.0.1:6379"
	}
	return []string{v}
}

// newClient returns a client of the servers at addrs, a cluster client if there are several,
// closed when the test ends.
func newClient(t testing.TB, addrs []string) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// connect returns a client of the standalone server or the cluster, skipping the test (or
// failing it under CI) if it does not answer.
func connect(t testing.TB, cluster bool) (redis.UniversalClient, []string) {
	t.Helper()
	addrs := redisAddrs(cluster)
	rdb := newClient(t, addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		unavailable(t, "no Redis at %s: %v", strings.Join(addrs, ","), err)
	}
	if cluster {
		if err := rdb.(*redis.ClusterClient).ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		}); err != nil {
			unavailable(t, "the Redis Cluster at %s is not up: %v", strings.Join(addrs, ","), err)
		}
	}
	return rdb, addrs
}

// uniqueKey returns a quota key no other test, nor an earlier run, uses.
func uniqueKey(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-", "{", "", "}", "").Replace(t.Name())
	return name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// redisProcess is a redis-server of a test's own, on a port of its own, to kill and restart: a
// standalone server, a node of a cluster, a replica or a sentinel, as its arguments make it.
type redisProcess struct {
	t    testing.TB
	addr string
	dir  string
	conf string   // a configuration file to start from (a sentinel's, which it rewrites); "" if none
	args []string // after the port, the address, the directory and the log
	cmd  *exec.Cmd
	rdb  *redis.Client // of this server alone, made by admin
}

// startRedis starts a redis-server with args on a free loopback port, stopped when the test ends.
func startRedis(t testing.TB, args ...string) *redisProcess {
	t.Helper()
	p := newRedisProcess(t, args...)
	p.start()
	return p
}

// newRedisProcess returns a redis-server with args on a free loopback port, not yet started,
// stopped when the test ends.
func newRedisProcess(t testing.TB, args ...string) *redisProcess {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "no redis-server on PATH: install it with `apt-get install redis-server`")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	p := &redisProcess{t: t, addr: addr, dir: t.TempDir(), args: args}
	t.Cleanup(p.kill)
	return p
}

// port returns the port the server listens on.
func (p *redisProcess) port() string {
	_, port, _ := net.SplitHostPort(p.addr)
	return port
}

// start runs the server and waits until it answers.
func (p *redisProcess) start() {
	p.t.Helper()
	var argv []string
	if p.conf != "" {
		argv = append(argv, p.conf)
	}
	argv = append(argv, "--port", p.port(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", p.dir, "--logfile", filepath.Join(p.dir, "redis.log"))
	p.cmd = exec.Command("redis-server", append(argv, p.args...)...)
	require.NoError(p.t, p.cmd.Start())
	rdb := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		require.True(p.t, time.Now().Before(deadline), "redis-server on %s did not come up: %v", p.addr, err)
		time.Sleep(10 * time.Millisecond) // polling a process that has no other way to say it is up
	}
}

// signal sends sig to the server: SIGSTOP stalls it, SIGCONT lets it go on.
func (p *redisProcess) signal(sig os.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

// admin returns a client of this server alone, closed when the test ends.
func (p *redisProcess) admin() *redis.Client {
	if p.rdb == nil {
		p.rdb = redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
		p.t.Cleanup(func() { p.rdb.Close() })
	}
	return p.rdb
}

// log returns the end of the server's log, for a failure's message.
func (p *redisProcess) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// kill stops the server at once, as a crash would.
func (p *redisProcess) kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT) // if stalled
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}
