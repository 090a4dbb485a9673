package httpfutures

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dunglas/httpsfv"
)

// This file reads the response header fields a server uses to ask for less: Retry-After
// (RFC 9110), and RateLimit and RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-12), with
// the older RateLimit-Remaining and RateLimit-Reset of its earlier versions. The RateLimit
// fields are Structured Fields (RFC 9651), parsed by github.com/dunglas/httpsfv; this file only
// gives their items a meaning.

// Quota units of a RateLimit-Policy item (its qu parameter) that this package acts on. The draft
// defines a third, "content-bytes", which says nothing about how many requests may be sent.
const (
	unitRequests           = "requests"            // the default
	unitConcurrentRequests = "concurrent-requests" // requests processed at once
)

// maxSeconds is the largest whole number of seconds that a time.Duration holds.
const maxSeconds = math.MaxInt64 / int64(time.Second)

// seconds converts n non-negative seconds to a Duration, saturating at the largest whole number
// of seconds a Duration holds: a server asking for longer has asked for longer than any cap.
func seconds(n int64) time.Duration {
	return time.Duration(min(n, maxSeconds)) * time.Second
}

// parseRetryAfter reads a Retry-After value: a number of seconds, or an HTTP-date in any of the
// three forms HTTP allows. A date in the past means no wait; a number too large for a Duration
// is the largest Duration, for the caller to cap.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > maxSeconds {
			return math.MaxInt64, true
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// isDigits reports whether s is one or more ASCII digits: the delay-seconds of Retry-After.
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// A quotaPolicy is one item of a RateLimit-Policy field: the quota the server allocates to the
// partition of the request.
type quotaPolicy struct {
	name   string        // the policy's identifier, as RateLimit items name it
	quota  int64         // q: the quota, in units
	unit   string        // qu: unitRequests when the server names none; others are kept as sent
	window time.Duration // w: the time window; zero if the server gave none
	key    []byte        // pk: the partition key; nil if the server gave none
}

// A serviceLimit is one item of a RateLimit field: what remains of a policy's quota.
type serviceLimit struct {
	policy    string        // the identifier of the policy it reports on
	remaining int64         // r: the quota units left
	reset     time.Duration // t: the time until more quota is made available
	hasReset  bool          // whether t was given: without it, no time is known
	key       []byte        // pk: the partition key; nil if the server gave none
}

// parseRateLimitPolicy reads the RateLimit-Policy field lines of hdr. A field that is not a
// Structured Field list yields nothing; an item that is not a quota policy (its value not a
// String or Token, q missing or not a non-negative Integer, qu not a String, w not a positive
// Integer, pk not a Byte Sequence) is left out and the others kept. Unknown parameters are
// ignored, as the draft asks.
func parseRateLimitPolicy(hdr http.Header) []quotaPolicy {
	list, _ := parseList(hdr, "RateLimit-Policy")
	var policies []quotaPolicy
	for _, m := range list {
		if p, ok := quotaPolicyOf(m); ok {
			policies = append(policies, p)
		}
	}
	return policies
}

// quotaPolicyOf interprets one RateLimit-Policy member.
func quotaPolicyOf(m httpsfv.Member) (quotaPolicy, bool) {
	item, ok := m.(httpsfv.Item)
	if !ok {
		return quotaPolicy{}, false // an inner list
	}
	name, ok := identifier(item.Value)
	if !ok {
		return quotaPolicy{}, false
	}
	p := quotaPolicy{name: name, unit: unitRequests}
	if p.quota, ok = integerParam(item.Params, "q"); !ok {
		return quotaPolicy{}, false
	}
	if v, found := item.Params.Get("qu"); found {
		if p.unit, ok = v.(string); !ok {
			return quotaPolicy{}, false
		}
	}
	if _, found := item.Params.Get("w"); found {
		w, ok := integerParam(item.Params, "w")
		if !ok || w == 0 {
			return quotaPolicy{}, false
		}
		p.window = seconds(w)
	}
	if p.key, ok = partitionKey(item.Params); !ok {
		return quotaPolicy{}, false
	}
	return p, true
}

// parseServiceLimits reads the RateLimit field lines of hdr. The draft says a malformed RateLimit
// field must be ignored, so one bad item (not a Structured Field list, an item whose value is not
// a String or Token, r missing or not a non-negative Integer, t not a non-negative Integer, pk
// not a Byte Sequence) voids the whole field: ok is false. A field that is absent is not ok
// either.
func parseServiceLimits(hdr http.Header) (limits []serviceLimit, ok bool) {
	list, ok := parseList(hdr, "RateLimit")
	if !ok {
		return nil, false
	}
	limits = make([]serviceLimit, 0, len(list))
	for _, m := range list {
		l, ok := serviceLimitOf(m)
		if !ok {
			return nil, false
		}
		limits = append(limits, l)
	}
	return limits, true
}

// serviceLimitOf interprets one RateLimit member.
func serviceLimitOf(m httpsfv.Member) (serviceLimit, bool) {
	item, ok := m.(httpsfv.Item)
	if !ok {
		return serviceLimit{}, false
	}
	var l serviceLimit
	if l.policy, ok = identifier(item.Value); !ok {
		return serviceLimit{}, false
	}
	if l.remaining, ok = integerParam(item.Params, "r"); !ok {
		return serviceLimit{}, false
	}
	if _, l.hasReset = item.Params.Get("t"); l.hasReset {
		t, ok := integerParam(item.Params, "t")
		if !ok {
			return serviceLimit{}, false
		}
		l.reset = seconds(t)
	}
	if l.key, ok = partitionKey(item.Params); !ok {
		return serviceLimit{}, false
	}
	return l, true
}

// parseRateLimit reads the remaining quota of requests and the time to its reset that a response
// asks its client to keep to.
//
// It reads the RateLimit field (`RateLimit: "default";r=50;t=30`): of its items, those that
// drive a request pace are the ones whose policy counts requests, with a reset t. An item's unit
// is that of the RateLimit-Policy item of the same name (names compared without regard to case,
// and whether sent as a String or a Token); without one, the draft's default, requests. An item
// of a policy counting anything else (content bytes, concurrent requests, a unit this package
// does not know) says nothing about how many requests may be sent per second, and is passed
// over; one without t gives no time to spread its remaining requests over, and is passed over
// too. Of those left, the most restrictive
// wins: an exhausted quota (r=0) with the longest reset, else the fewest requests per second.
// Partition keys are not compared: every item of a response is about the partition of its
// request.
//
// When the RateLimit field is absent, malformed, or has no such item, the older
// RateLimit-Remaining and RateLimit-Reset fields (each an Integer) are read instead.
func parseRateLimit(hdr http.Header) (remaining int64, reset time.Duration, ok bool) {
	if limits, valid := parseServiceLimits(hdr); valid {
		if remaining, reset, ok = slowestRequestLimit(limits, parseRateLimitPolicy(hdr)); ok {
			return remaining, reset, true
		}
	}
	return parseLegacyRateLimit(hdr)
}

// slowestRequestLimit returns the most restrictive of limits that counts requests and has a
// reset, as parseRateLimit describes.
func slowestRequestLimit(limits []serviceLimit, policies []quotaPolicy) (remaining int64, reset time.Duration, ok bool) {
	best := math.Inf(1)
	for _, l := range limits {
		if !l.hasReset || l.reset == 0 || unitOf(l.policy, policies) != unitRequests {
			continue
		}
		pace := float64(l.remaining) / l.reset.Seconds()
		if l.remaining == 0 {
			pace = -l.reset.Seconds() // exhausted: the longest wait is the most restrictive
		}
		if pace < best {
			best, remaining, reset, ok = pace, l.remaining, l.reset, true
		}
	}
	return remaining, reset, ok
}

// unitOf returns the quota unit of the policy named name: that of its RateLimit-Policy item, or
// requests, the draft's default, if the server described no such policy.
func unitOf(name string, policies []quotaPolicy) string {
	for _, p := range policies {
		if strings.EqualFold(p.name, name) {
			return p.unit
		}
	}
	return unitRequests
}

// parseLegacyRateLimit reads RateLimit-Remaining and RateLimit-Reset, both non-negative Integers,
// of the draft's versions before -07.
func parseLegacyRateLimit(hdr http.Header) (remaining int64, reset time.Duration, ok bool) {
	r, ok1 := integerField(hdr, "RateLimit-Remaining")
	t, ok2 := integerField(hdr, "RateLimit-Reset")
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return r, seconds(t), true
}

// parseConcurrencyPolicy returns the quota of the RateLimit-Policy items of hdr that count
// concurrent requests (qu="concurrent-requests"): how many requests the server will process at
// once for the partition of this request. Of several, the smallest wins. A quota of zero is
// returned as it is, for the caller to decide what a server allowing nothing means.
func parseConcurrencyPolicy(hdr http.Header) (limit int, ok bool) {
	for _, p := range parseRateLimitPolicy(hdr) {
		if p.unit != unitConcurrentRequests {
			continue
		}
		q := int(min(p.quota, math.MaxInt))
		if !ok || q < limit {
			limit, ok = q, true
		}
	}
	return limit, ok
}

// parseList parses the field lines of hdr named name as one Structured Field list, the lines
// joined as RFC 9651 says. It is not ok if there are none or they are malformed.
func parseList(hdr http.Header, name string) (httpsfv.List, bool) {
	lines := hdr.Values(name)
	if len(lines) == 0 {
		return nil, false
	}
	list, err := httpsfv.UnmarshalList(lines)
	return list, err == nil
}

// integerField parses the field lines of hdr named name as one Structured Field item holding a
// non-negative Integer, parameters ignored.
func integerField(hdr http.Header, name string) (int64, bool) {
	lines := hdr.Values(name)
	if len(lines) == 0 {
		return 0, false
	}
	item, err := httpsfv.UnmarshalItem(lines)
	if err != nil {
		return 0, false
	}
	n, ok := item.Value.(int64)
	return n, ok && n >= 0
}

// identifier returns the policy identifier an item names: a String or, as servers also send, a
// Token. The kind of bare item is not part of the name.
func identifier(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case httpsfv.Token:
		return string(v), true
	}
	return "", false
}

// integerParam returns the parameter key of params, which must be a non-negative Integer.
func integerParam(params *httpsfv.Params, key string) (int64, bool) {
	v, _ := params.Get(key)
	n, ok := v.(int64)
	return n, ok && n >= 0
}

// partitionKey returns the pk parameter of params: absent (nil, true) or a Byte Sequence.
func partitionKey(params *httpsfv.Params) ([]byte, bool) {
	v, found := params.Get("pk")
	if !found {
		return nil, true
	}
	key, ok := v.([]byte)
	return key, ok
}
