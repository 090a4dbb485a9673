package redislimit_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpfutures/httpfutures/redislimit"
)

// cutter is a TCP relay on loopback in front of a server, whose network can be cut as a
// firewall or a lost route cuts it: nothing passes any more and nothing says so. The
// connections open at the cut, and those made while it lasts, stay open and never answer; once
// it heals, new connections reach the server again, and the cut ones stay silent.
type cutter struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	cut    bool
	relays map[net.Conn]net.Conn // by the client's side, the server's; nil for a silent one
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &cutter{ln: ln, target: target, relays: make(map[net.Conn]net.Conn)}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(c.close)
	return c
}

func (c *cutter) addr() string { return c.ln.Addr().String() }

func (c *cutter) accept() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		cut := c.cut
		c.relays[conn] = nil
		c.mu.Unlock()
		if cut {
			continue // silent for ever
		}
		server, err := net.Dial("tcp", c.target)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.cut { // cut meanwhile
			c.mu.Unlock()
			server.Close()
			continue
		}
		c.relays[conn] = server
		c.mu.Unlock()
		c.wg.Add(2)
		go c.pipe(server, conn)
		go c.pipe(conn, server)
	}
}

// pipe copies from src to dst until either fails. The client's side is closed only by close:
// a cut leaves it open.
func (c *cutter) pipe(dst io.Writer, src io.Reader) {
	defer c.wg.Done()
	_, _ = io.Copy(dst, src)
}

// cutNow cuts the network: the relays stop, their client's side left open and silent.
func (c *cutter) cutNow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for client, server := range c.relays {
		if server != nil {
			server.Close() // the pipes end; the client sees nothing of it
			c.relays[client] = nil
		}
	}
}

// heal lets new connections through again.
func (c *cutter) heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = false
}

func (c *cutter) close() {
	c.ln.Close()
	c.mu.Lock()
	for client, server := range c.relays {
		client.Close()
		if server != nil {
			server.Close()
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// A call to Redis that has not answered by the deadline goes on until the client ends it, and
// meanwhile the Limiter makes no other: the failure policy decides. Where the network to Redis
// is cut without a word, a call made then never answers: a client made with
// ContextTimeoutEnabled ends it at the call's deadline, and the Limiter finds Redis again within
// a probe or two of the network healing; a client without ends it at its ReadTimeout, however
// early the network healed. Each reservation is decided within the deadline either way.
func TestNetworkCut(t *testing.T) {
	const (
		quota       = 1000
		burst       = 10
		deadline    = 100 * time.Millisecond
		readTimeout = 2 * time.Second
		cutFor      = 300 * time.Millisecond
		// every is how often the test reserves: under the quota, so that every reservation is
		// admitted while Redis answers.
		every = 2 * time.Millisecond
		// slack is what a machine busy with the race detector may add to the deadline.
		slack = 250 * time.Millisecond
	)
	var rows []string
	for _, c := range []struct {
		name      string
		ctxBound  bool
		recovered time.Duration // the most the Limiter may take after the network healed
	}{
		{"ContextTimeoutEnabled", true, time.Second},
		// The call made at the cut ends at the ReadTimeout after it was made; the probe then
		// finds Redis within a second.
		{"ReadTimeout only", false, readTimeout - cutFor + time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			red := startRedis(t)
			cut := newCutter(t, red.addr)
			rdb := redis.NewClient(&redis.Options{
				Addr: cut.addr(), MaxRetries: -1,
				ReadTimeout: readTimeout, ContextTimeoutEnabled: c.ctxBound,
			})
			lim := redislimit.New(rdb, uniqueKey(t), quota, burst, redislimit.WithDeadline(deadline))

			type reservation struct {
				at, done time.Time
				err      error
			}
			var rs []reservation
			reserve := func(until time.Time) {
				for now := time.Now(); now.Before(until); now = time.Now() {
					_, err := lim.Reserve(context.Background(), "api.example", now)
					rs = append(rs, reservation{now, time.Now(), err})
					time.Sleep(every)
				}
			}
			start := time.Now()
			reserve(start.Add(300 * time.Millisecond))
			cutAt := time.Now()
			cut.cutNow()
			healAt := cutAt.Add(cutFor)
			reserve(healAt)
			cut.heal()
			reserve(healAt.Add(readTimeout + 1500*time.Millisecond))

			var recoveredAt time.Time // the first reservation after the heal from which all are admitted
			refused := 0
			for _, r := range rs {
				switch {
				case r.at.Before(cutAt):
					assert.NoError(t, r.err, "before the cut, at %v", r.at.Sub(start))
				case r.err != nil:
					require.ErrorIs(t, r.err, redislimit.ErrUnavailable)
					refused++
					recoveredAt = time.Time{}
				case recoveredAt.IsZero() && !r.at.Before(healAt):
					recoveredAt = r.at
				}
				assert.Less(t, r.done.Sub(r.at), deadline+slack, "a reservation at %v waited", r.at.Sub(start))
			}
			require.NotZero(t, refused, "nothing refused: the cut was not felt")
			require.False(t, recoveredAt.IsZero(), "the Limiter never found Redis again")
			after := recoveredAt.Sub(healAt)
			assert.Less(t, after, c.recovered, "admitted again after the network healed")

			require.NoError(t, lim.Close())
			require.NoError(t, rdb.Close())
			cut.close()
			st := lim.Stats()
			row := fmt.Sprintf("%-22s refused %4d; admitted again %4d ms after the network healed (%d calls, %d failed)",
				c.name, refused, after.Milliseconds(), st.Calls, st.Failures)
			t.Log(row)
			rows = append(rows, row)
			goleak.VerifyNone(t, ignore)
		})
	}
	t.Logf("the network to Redis cut for %v, a deadline of %v, a ReadTimeout of %v:\n%s",
		cutFor, deadline, readTimeout, strings.Join(rows, "\n"))
}
