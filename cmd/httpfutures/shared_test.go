package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSharedFlagsErrors(t *testing.T) {
	const u = "http://127.0.0.1:8080/get"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"rate without Redis", []string{"-shared-rate", "100", u}, "-shared-rate and -shared-key need -redis"},
		{"Redis without a rate", []string{"-redis", "redis://127.0.0.1:6379", u}, "-redis needs -shared-rate"},
		{"a negative rate", []string{"-redis", "redis://127.0.0.1:6379", "-shared-rate", "-1", u}, "-redis needs -shared-rate"},
		{"not a Redis URL", []string{"-redis", "http://127.0.0.1:6379", "-shared-rate", "100", u}, "-redis: "},
		{"a key with braces", []string{"-redis", "redis://127.0.0.1:6379", "-shared-rate", "100", "-shared-key", "{a}", u}, "no braces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseArgs(tt.args, io.Discard)
			var ue *usageError
			require.True(t, errors.As(err, &ue), "got %v", err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestSharedFlagsKey(t *testing.T) {
	cfg, err := parseArgs([]string{"-redis", "redis://127.0.0.1:6379/2", "-shared-rate", "100", "http://Example.test:8080/get"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "example.test:8080", cfg.shared.key)
	assert.Equal(t, 2, cfg.shared.opt.DB)
	assert.Equal(t, 100.0, cfg.shared.rate)
	assert.True(t, cfg.shared.opt.ContextTimeoutEnabled, "the Limiter's calls end at their deadline")
}

// redisAddr returns the address of the Redis server the tests may use, REDIS_ADDR or
// 127.0.0.1:6379; without one the test skips, or with CI set fails.
func redisAddr(t *testing.T) string {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no Redis at %s (CI is set: it must be running): %v", addr, err)
		}
		t.Skipf("no Redis at %s: %v; start one with `redis-server --port 6379 --daemonize yes`, or set REDIS_ADDR", addr, err)
	}
	return addr
}

func TestSharedRateHoldsAcrossGenerators(t *testing.T) {
	addr := redisAddr(t)
	srv, hits := countingServer(t)
	const generators, shared = 3, 300
	key := "cmd-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var wg sync.WaitGroup
	codes := make([]int, generators)
	for i := range generators {
		wg.Go(func() {
			codes[i], _, _ = runJSON(t, t.Context(), "-redis", "redis://"+addr, "-shared-rate", strconv.Itoa(shared),
				"-shared-key", key, "-c", "4", "-duration", "1s", srv.URL)
		})
	}
	wg.Wait()
	for i, c := range codes {
		assert.Equal(t, 0, c, "generator %d", i)
	}
	t.Logf("%d generators sharing %d/s for 1 s sent %d requests", generators, shared, hits.Load())
	// Each alone would send as fast as its workers go; together they keep the shared rate.
	assert.InEpsilon(t, shared, float64(hits.Load()), 0.1)
}
