package redislimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/redislimit"
)

func TestNewPanicsOnBadArguments(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	t.Cleanup(func() { rdb.Close() })
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	t.Cleanup(func() { ring.Close() })
	tests := []struct {
		name string
		new  func()
		want string
	}{
		{"nil client", func() { redislimit.New(nil, "k", 1, 1) }, "nil Redis client"},
		{"empty key", func() { redislimit.New(rdb, "", 1, 1) }, "non-empty"},
		{"key with a brace", func() { redislimit.New(rdb, "a{b", 1, 1) }, "no braces"},
		{"zero rate", func() { redislimit.New(rdb, "k", 0, 1) }, "positive and finite"},
		{"infinite rate", func() { redislimit.New(rdb, "k", rate.Inf, 1) }, "positive and finite"},
		{"a ring", func() { redislimit.New(ring, "k", 1, 1) }, "*redis.Ring"},
		{"zero deadline", func() { redislimit.WithDeadline(0) }, "must be positive"},
		{"share above 1", func() { redislimit.WithFallback(1.5) }, "(0, 1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				require.NotNil(t, r)
				assert.Contains(t, fmt.Sprint(r), tt.want)
			}()
			tt.new()
		})
	}
}

func TestUnusedTokensLapse(t *testing.T) {
	rdb, _ := connect(t, false)
	const burst = 2
	lim := redislimit.New(rdb, uniqueKey(t), 100, burst)
	t.Cleanup(func() { lim.Close() })
	ctx := context.Background()
	// Grow the lease: a demand of 100/s asks 50 ms of it, five tokens.
	now := time.Now()
	for range 22 { // four leases of five, and two tokens of the fifth
		due, err := lim.Reserve(ctx, "a.test", now)
		require.NoError(t, err)
		now = later(now, due)
		<-time.After(time.Until(now))
	}
	require.Greater(t, lim.Stats().Leased, lim.Stats().Admitted, "a lease holds tokens ahead")
	// Idle for longer than a lease span: its tokens lapse, and do not go at once on the next
	// calls.
	<-time.After(150 * time.Millisecond)
	now = time.Now()
	atOnce := 0
	for range 10 {
		due, err := lim.Reserve(ctx, "a.test", now)
		require.NoError(t, err)
		if !due.After(now.Add(time.Millisecond)) {
			atOnce++
		}
	}
	assert.LessOrEqual(t, atOnce, burst, "requests let go at once after the idle spell")
	assert.Positive(t, lim.Stats().Lapsed)
}

// TestLapsedTokensGoBack has one process lease a lease span's worth of tokens and then stall,
// as a process on a busy machine does, past the time they could be used: they lapse, and go back
// with its next lease, so that another process sharing the quota has them at once rather than
// after them.
func TestLapsedTokensGoBack(t *testing.T) {
	rdb, addrs := connect(t, false)
	const quota = 1000 // a token a millisecond
	key := uniqueKey(t)
	ctx := context.Background()
	slow := redislimit.New(rdb, key, quota, 1)
	t.Cleanup(func() { slow.Close() })
	now := time.Now()
	for range 3 { // the first lease is of a token, the next of a span: 50 ms of tokens, all due ahead
		_, err := slow.Reserve(ctx, "a.test", now)
		require.NoError(t, err)
	}
	st := slow.Stats()
	held := st.Leased - st.Admitted
	require.GreaterOrEqual(t, held, uint64(40), "%+v", st)
	// Asked again 100 ms later by its clock: every token it held has lapsed.
	_, err := slow.Reserve(ctx, "a.test", now.Add(100*time.Millisecond))
	require.NoError(t, err)
	st = slow.Stats()
	assert.Equal(t, held, st.Lapsed, "%+v", st)
	assert.Equal(t, held, st.Returned, "%+v", st)

	other := redislimit.New(newClient(t, addrs), key, quota, 1)
	t.Cleanup(func() { other.Close() })
	asked := time.Now()
	due, err := other.Reserve(ctx, "a.test", asked)
	require.NoError(t, err)
	wait := due.Sub(asked)
	assert.Less(t, wait, 10*time.Millisecond, "the other process's first token waits for %d tokens that lapsed", held)
	t.Logf("%d tokens lapsed and given back; the other process's first token is due %v after it asks", st.Returned, wait)
}

// TestPassedTokensStillLent leases from a quota whose timeline every process sharing it let pass
// unleased a little while ago, as a fleet all slowed by a busy machine does: the tokens of the
// last lapse (half a lease span) are still lent, so the fleet loses none; those of longer ago are
// not, and the quota starts again from now, with its burst.
func TestPassedTokensStillLent(t *testing.T) {
	rdb, _ := connect(t, false)
	const quota = 100 // a token every 10 ms
	tests := []struct {
		name   string
		passed time.Duration // how long ago the quota's timeline was last leased up to
		atOnce int           // tokens due at once
	}{
		{"within the lapse", 20 * time.Millisecond, 3}, // 20 ms ago, 10 ms ago, now
		{"longer ago", 100 * time.Millisecond, 1},      // now: the burst of 1
	}
	setTAT := redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('SET', KEYS[1], string.format('%.0f', now - tonumber(ARGV[1])), 'PX', 10000)
return 1`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := uniqueKey(t)
			require.NoError(t, setTAT.Run(context.Background(), rdb, []string{redislimit.DefaultPrefix + "{" + key + "}"},
				tt.passed.Microseconds()).Err())
			lim := redislimit.New(rdb, key, quota, 1)
			t.Cleanup(func() { lim.Close() })
			now := time.Now()
			atOnce := 0
			for range 5 {
				due, err := lim.Reserve(context.Background(), "a.test", now)
				require.NoError(t, err)
				if due.Before(now.Add(5 * time.Millisecond)) {
					atOnce++
				}
			}
			assert.Equal(t, tt.atOnce, atOnce, "tokens due at once, the timeline passed %v ago", tt.passed)
		})
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestHostQuota(t *testing.T) {
	rdb, _ := connect(t, true)
	key := uniqueKey(t)
	const quota = 200
	// A deadline a busy machine keeps: a call slower than the default's 50 ms would fail requests.
	lim := redislimit.New(rdb, key, quota, 1, redislimit.WithHostQuota(), redislimit.WithPrefix("hf-test:"),
		redislimit.WithDeadline(time.Second))
	srv := newCountingServer(t, nil)
	tr := httpfutures.NewTransport(nil, httpfutures.WithLimiter(lim))
	// Two hosts, the same loopback server: by address and by name, each with its own quota.
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	port := u.Port()
	hosts := []string{"127.0.0.1:" + port, "localhost:" + port}
	start := time.Now()
	var futures []*httpfutures.Future
	for range 300 {
		for _, h := range hosts {
			req, err := http.NewRequest(http.MethodGet, "http://"+h+"/", nil)
			require.NoError(t, err)
			futures = append(futures, tr.StartRoundTrip(req))
		}
	}
	<-time.After(time.Second)
	require.NoError(t, tr.Close())
	require.NoError(t, lim.Close())
	for _, f := range futures {
		<-f.Done()
	}
	elapsed := time.Since(start)
	sent := len(srv.times(nil))
	// Each host at its own quota: twice the quota together, not once.
	assert.InEpsilon(t, 2*quota*elapsed.Seconds(), float64(sent), 0.1)
	for _, h := range hosts {
		k := "hf-test:{" + key + ":" + h + "}"
		n, err := rdb.Exists(context.Background(), k).Result()
		require.NoError(t, err)
		assert.Equal(t, int64(1), n, "key %s", k)
	}
}

func TestPaceIsShared(t *testing.T) {
	rdb, addrs := connect(t, false)
	key := uniqueKey(t)
	const pace = 10 // what the server asks: 10 requests a second
	srv := newCountingServer(t, func(w http.ResponseWriter, child int, at time.Time) bool {
		if child == 1 {
			w.Header().Set("RateLimit", `"default";r=`+strconv.Itoa(pace)+`;t=1`)
		}
		return false
	})
	// Two Limiters on two clients, as two processes would have; only the first hears the pace. A
	// deadline a busy machine keeps: the first, failing closed on a slow answer, would stop
	// hearing the pace, and the pace lapse.
	limA := redislimit.New(rdb, key, 1000, 1, redislimit.WithDeadline(time.Second))
	limB := redislimit.New(newClient(t, addrs), key, 1000, 1, redislimit.WithDeadline(time.Second))
	trA := httpfutures.NewTransport(nil, httpfutures.WithLimiter(limA))
	trB := httpfutures.NewTransport(nil, httpfutures.WithLimiter(limB))
	send := func(tr *httpfutures.AsyncTransport, child int) *httpfutures.Future {
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		req.Header.Set("X-Child", strconv.Itoa(child))
		return tr.StartRoundTrip(req)
	}
	// Wait until the pace is in Redis: what the Limiters publish says so.
	ps := rdb.Subscribe(context.Background(), redislimit.DefaultPrefix+"{"+key+"}:bp")
	t.Cleanup(func() { ps.Close() })
	_, err := ps.Receive(context.Background()) // the subscription's confirmation
	require.NoError(t, err)
	resp, err := send(trA, 1).Result()
	require.NoError(t, err)
	resp.Body.Close()
	heard := time.Now()
	select {
	case msg := <-ps.Channel():
		t.Logf("published: %s", msg.Payload)
	case <-time.After(time.Second):
		require.FailNow(t, "the pace was not published")
	}
	var futures []*httpfutures.Future
	for range 100 {
		futures = append(futures, send(trA, 1), send(trB, 2))
	}
	<-time.After(1500 * time.Millisecond)
	for _, tr := range []*httpfutures.AsyncTransport{trA, trB} {
		require.NoError(t, tr.Close())
	}
	for _, l := range []*redislimit.Limiter{limA, limB} {
		require.NoError(t, l.Close())
	}
	for _, f := range futures {
		<-f.Done()
	}
	all := srv.times(nil)
	b := srv.times(func(c int) bool { return c == 2 })
	got := countIn(all, heard, heard.Add(1500*time.Millisecond))
	// The two together keep the server's pace, 15 in 1.5 s, give or take a token each and the
	// one Redis grants at once; without sharing, the second would send its 100 at once.
	assert.LessOrEqual(t, got, pace*3/2+3, "requests in the 1.5 s after the pace was heard")
	assert.Positive(t, len(b), "the second process sends, at the shared pace")
	t.Logf("in the 1.5 s after the pace was heard: %d requests, %d of them from the second process; %+v %+v", got, len(b), limA.Stats(), limB.Stats())
}
