package redislimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The scripts keep every instant in microseconds of the Redis server's clock (TIME), so that the
// clocks of the processes sharing a quota never matter. The quota's state is one key holding its
// theoretical arrival time (TAT) of GCRA; the backpressure its hosts asked for is one hash beside
// it, in the same hash slot, a field per host: "pauseEnd paceInterval paceEnd paceTAT".

// leaseScript takes ARGV[3] tokens from the quota in KEYS[1] and returns when each is due.
//
// ARGV: the emission interval (µs), the burst, the number of tokens, the host whose pace and
// pause apply ("" for none), "1" if the lease must start without a burst (after an outage, when
// the quota's state may have been lost), "1" if the quota is the host's own, so that a pause
// moves the quota's timeline to its end rather than delay the tokens of other hosts, the
// Limiter's id, the lease span and the window (µs) within which a Limiter that leased counts as
// active, the tokens the Limiter gives back first (leased before, they lapsed unused), and the
// lapse (µs), how late a token may be used.
//
// A token's time on the quota's timeline may pass before it is leased: every process sharing the
// quota was slow to ask, on a busy machine, or Redis slow to answer. It is still lent as long as
// a leased token could still be used, for the lapse after its time; past that, the quota was idle,
// and the timeline starts again from now. Tokens given back move the quota's TAT back by their
// intervals, as far as the tokens that may still be lent.
//
// The lease is cut to a fair share, the span's tokens divided among the active Limiters kept in
// the sorted set KEYS[3]: every Limiter asks for its next lease as soon as its last is spent,
// so under contention equal leases make equal shares.
//
// Token i (1-based) is due at first + (i-1)*interval on the quota's timeline: reserved ahead,
// since the lease is taken whatever its wait. Under a pace the host's own timeline, from pfirst
// by pinterval, applies too, and a pause delays every token to its end.
//
// It returns {now, first, pfirst, pinterval, pause, end, n, back, entries...}, n being the
// tokens granted, back those given back that the timeline held, instants as offsets from now
// (µs), end being the quota's TAT after the lease as stored, for giving tokens back, and entries
// the hash's live fields as flat host, pause, pace interval, pace end quadruples (the host's own
// pause among them).
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local iv, burst, n, host = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out, pe, pi, pt, ptat = {}, 0, 0, 0, 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
	local f = {}
	for w in string.gmatch(all[i + 1], '%S+') do f[#f + 1] = tonumber(w) end
	local e = {f[1] or 0, f[2] or 0, f[3] or 0, f[4] or 0}
	if math.max(e[1], e[3]) <= now then
		redis.call('HDEL', KEYS[2], all[i])
	else
		if all[i] == host then pe, pi, pt, ptat = e[1], e[2], e[3], e[4] end
		if #out < 400 then
			out[#out + 1] = all[i]
			out[#out + 1] = math.max(e[1] - now, 0)
			out[#out + 1] = e[2]
			out[#out + 1] = math.max(e[3] - now, 0)
		end
	end
end
local span, window = tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('ZADD', KEYS[3], now, ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
redis.call('PEXPIRE', KEYS[3], math.ceil(window / 1000))
n = math.max(1, math.min(n, math.ceil(span / iv / redis.call('ZCARD', KEYS[3]))))
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = now - tonumber(ARGV[11])
local back = 0
if tat > since then
	back = math.min(tonumber(ARGV[10]), math.floor((tat - since) / iv))
	tat = tat - back * iv
end
local base = tat
if base < since then base = now end
if ARGV[5] == '1' then base = math.max(base, now + (burst - 1) * iv) end
if ARGV[6] == '1' and pe > now then base = math.max(base, pe + (burst - 1) * iv) end
local newtat = base + n * iv
local stored = string.format('%.0f', newtat)
redis.call('SET', KEYS[1], stored, 'PX', math.max(math.ceil((newtat - now) / 1000), 0) + 1000)
local pfirst, piv = 0, 0
if pt > now and pi > 0 then
	local pb = math.max(ptat, now, pe)
	pfirst, piv = pb - now, pi
	redis.call('HSET', KEYS[2], host, string.format('%.0f %.0f %.0f %.0f', pe, pi, pt, pb + n * pi))
end
local res = {now, base - (burst - 1) * iv - now, pfirst, piv, math.max(pe - now, 0), stored, n, back}
for i = 1, #out do res[#res + 1] = out[i] end
return res
`)

// observeScript records the backpressure a host's server asked for in the hash KEYS[1] and
// publishes it on the channel ARGV[5], for every Limiter sharing the key.
//
// ARGV: the host, the pause (µs from now, 0 for none), the pace's interval (µs, 0 for none) and
// how long the pace lasts (µs). A pause only lengthens; a pace replaces the one before.
var observeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local host, pause, piv, pdur = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local f = {}
local old = redis.call('HGET', KEYS[1], host)
if old then for w in string.gmatch(old, '%S+') do f[#f + 1] = tonumber(w) end end
local pe, pi, pt, ptat = f[1] or 0, f[2] or 0, f[3] or 0, f[4] or 0
if pause > 0 then pe = math.max(pe, now + pause) end
if piv > 0 then pi, pt = piv, now + pdur end
redis.call('HSET', KEYS[1], host, string.format('%.0f %.0f %.0f %.0f', pe, pi, pt, ptat))
local ttl = math.ceil((math.max(pe, pt) - now) / 1000) + 1000
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
local msg = string.format('%s %.0f %.0f %.0f', host, math.max(pe - now, 0), pi, math.max(pt - now, 0))
redis.call('PUBLISH', ARGV[5], msg)
return 1
`)

// probeScript answers from the node that holds the quota in KEYS[1]: a script, so that a cluster
// client sends it to the slot's master, never to a replica.
var probeScript = redis.NewScript(`return redis.call('EXISTS', KEYS[1])`)

// returnScript gives ARGV[2] unused tokens of interval ARGV[3] back to the quota in KEYS[1],
// if no one has taken tokens since the lease that ended at ARGV[1].
var returnScript = redis.NewScript(`
local tat = redis.call('GET', KEYS[1])
if tat ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local back = math.max(tonumber(tat) - tonumber(ARGV[2]) * tonumber(ARGV[3]), now)
redis.call('SET', KEYS[1], string.format('%.0f', back), 'PX', math.ceil((back - now) / 1000) + 1000)
return 1
`)

// grant is a lease as Redis granted it, its instants in local time.
type grant struct {
	first     time.Time     // when the first token is due on the quota's timeline
	pfirst    time.Time     // when it is due on the host's pace; zero if no pace
	pinterval time.Duration // the pace's interval; zero if none
	end       string        // the quota's TAT after the lease, as stored
	n         int           // the tokens granted
	back      int           // the tokens given back that the quota's timeline held
	hosts     []hostNotice  // the backpressure live on the key's hosts
}

// hostNotice is the backpressure a host's server asked for, as Redis holds it.
type hostNotice struct {
	host     string
	pause    time.Duration // from now
	interval time.Duration // between requests; zero if no pace
	pace     time.Duration // how long the pace lasts, from now
}

// ask is what a Limiter asks of leaseScript besides the quota.
type ask struct {
	n       int           // tokens wanted
	back    int           // tokens given back first
	noBurst bool          // start without a burst
	perHost bool          // the quota is the host's own
	id      string        // the Limiter's
	span    time.Duration // its lease span
	window  time.Duration // how long a Limiter counts as active after a lease
	lapse   time.Duration // how late a token may be used
}

// callLease runs leaseScript and converts its answer to local time, taking the server's now as
// the moment the answer arrived: the tokens are due no earlier than Redis says.
func callLease(ctx context.Context, rdb redis.Scripter, k keys, host string, interval time.Duration, burst int, a ask) (grant, error) {
	res, err := leaseScript.Run(ctx, rdb, []string{k.quota, k.bp, k.active}, micros(interval), burst, a.n, host,
		flag(a.noBurst), flag(a.perHost), a.id, micros(a.span), micros(a.window), a.back, micros(a.lapse)).Slice()
	if err != nil {
		return grant{}, err
	}
	at := time.Now()
	if len(res) < 8 || (len(res)-8)%4 != 0 {
		return grant{}, fmt.Errorf("unexpected answer of %d values from the lease script", len(res))
	}
	num := func(i int) time.Duration { v, _ := res[i].(int64); return time.Duration(v) * time.Microsecond }
	g := grant{first: at.Add(num(1))}
	if num(3) > 0 {
		g.pfirst, g.pinterval = at.Add(num(2)), num(3)
	}
	g.end, _ = res[5].(string)
	n, _ := res[6].(int64)
	back, _ := res[7].(int64)
	g.n, g.back = int(n), int(back)
	for i := 8; i+3 < len(res); i += 4 {
		h, _ := res[i].(string)
		g.hosts = append(g.hosts, hostNotice{host: h, pause: num(i + 1), interval: num(i + 2), pace: num(i + 3)})
	}
	return g, nil
}

// parseNotice reads a message of observeScript.
func parseNotice(s string) (hostNotice, bool) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return hostNotice{}, false
	}
	var us [3]int64
	for i := range us {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil || v < 0 {
			return hostNotice{}, false
		}
		us[i] = v
	}
	return hostNotice{host: f[0], pause: time.Duration(us[0]) * time.Microsecond,
		interval: time.Duration(us[1]) * time.Microsecond, pace: time.Duration(us[2]) * time.Microsecond}, true
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// micros formats d in microseconds, with a fraction: an interval of 1/3,000 s is not rounded to
// 333 µs, which would be a rate 0.1% too high.
func micros(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 3, 64)
}
