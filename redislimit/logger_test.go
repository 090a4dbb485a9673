package redislimit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures/redislimit"
)

// logLines is a slog handler's output: JSON lines, kept.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// with returns the lines whose message is msg, each as its JSON object.
func (l *logLines) with(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.buf.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// A Limiter tells its logger when Redis becomes unavailable, with the policy that decides
// meanwhile, and when it answers again; once each, however many reservations the outage meets.
func TestLoggerOfAnOutage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []redislimit.Option
		policy string
	}{
		{"fail closed", nil, "fail closed: requests fail with ErrUnavailable"},
		{"fail open", []redislimit.Option{redislimit.WithFailOpen()}, "fail open: requests go unlimited"},
		{"fall back", []redislimit.Option{redislimit.WithFallback(0.5)}, "fall back: requests paced locally at 0.5 of the quota"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startRedis(t)
			rdb := redis.NewClient(&redis.Options{Addr: srv.addr, MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
			t.Cleanup(func() { rdb.Close() })
			lines := &logLines{}
			log := slog.New(slog.NewJSONHandler(lines, &slog.HandlerOptions{Level: slog.LevelDebug}))
			lim := redislimit.New(rdb, uniqueKey(t), 1000, 10, append(tc.opts, redislimit.WithLogger(log))...)
			t.Cleanup(func() { lim.Close() })
			reserve := func() error {
				_, err := lim.Reserve(context.Background(), "a.test", time.Now())
				return err
			}
			require.NoError(t, reserve())
			srv.kill()
			var failed error
			for range 200 { // the outage is met by many reservations
				if err := reserve(); err != nil {
					failed = err
				}
			}
			if tc.opts == nil {
				require.True(t, errors.Is(failed, redislimit.ErrUnavailable), "failing closed: %v", failed)
			}
			srv.start()
			require.Eventually(t, func() bool {
				return len(lines.with(t, "redislimit: Redis answers again; leases resume")) == 1
			}, 10*time.Second, 10*time.Millisecond, "the probe finds Redis back")
			down := lines.with(t, "redislimit: Redis unavailable; the failure policy decides")
			require.Len(t, down, 1, "once for the outage")
			assert.Equal(t, "WARN", down[0]["level"])
			assert.Equal(t, tc.policy, down[0]["policy"])
			assert.NotEmpty(t, down[0]["error"])
			back := lines.with(t, "redislimit: Redis answers again; leases resume")
			assert.Equal(t, "INFO", back[0]["level"])
			assert.NotEmpty(t, back[0]["unavailable"])
		})
	}
}

// A Limiter whose client would let a call run past the deadline until its ReadTimeout says so
// at New, once, with what to do (TestNetworkCut measures what it costs); one whose client ends
// calls at their deadline says nothing. New makes no call: no server is needed.
func TestLoggerAdvisesContextTimeout(t *testing.T) {
	const advice = "redislimit: the Redis client ends a call past the deadline only at its ReadTimeout; " +
		"make it with ContextTimeoutEnabled to find Redis again soon after a network cut"
	for _, tc := range []struct {
		name    string
		rdb     func() redis.UniversalClient
		timeout any // the read_timeout logged; nil if nothing is
	}{
		{"client, default", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		}, 5e9}, // go-redis's default ReadTimeout, in nanoseconds as JSON logs a Duration
		{"client, no ReadTimeout", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: -1})
		}, "none: a call ends when its connection fails"},
		{"cluster client, 500ms", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ReadTimeout: 500 * time.Millisecond})
		}, 5e8},
		{"client, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
		}, nil},
		{"cluster client, ContextTimeoutEnabled", func() redis.UniversalClient {
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := tc.rdb()
			t.Cleanup(func() { rdb.Close() })
			lines := &logLines{}
			log := slog.New(slog.NewJSONHandler(lines, nil))
			lim := redislimit.New(rdb, uniqueKey(t), 100, 10, redislimit.WithLogger(log))
			require.NoError(t, lim.Close())
			got := lines.with(t, advice)
			if tc.timeout == nil {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Equal(t, "INFO", got[0]["level"])
			assert.Equal(t, tc.timeout, got[0]["read_timeout"])
			assert.NotEmpty(t, got[0]["key"])
		})
	}
}
