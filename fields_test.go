package httpfutures_test

import (
	"encoding/base64"
	"math"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"golang.org/x/time/rate"

	"github.com/httpfutures/httpfutures"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 31, 8, 0, 0, 0, time.UTC)
	in3s := now.Add(3 * time.Second)
	tests := []struct {
		name  string
		value string
		wait  time.Duration
		ok    bool
	}{
		{"seconds", "2", 2 * time.Second, true},
		{"zero", "0", 0, true},
		{"spaces around", " 2 ", 2 * time.Second, true},
		{"leading zeros", "007", 7 * time.Second, true},
		{"IMF-fixdate", in3s.Format(http.TimeFormat), 3 * time.Second, true},
		{"RFC 850 date", in3s.Format("Monday, 02-Jan-06 15:04:05 GMT"), 3 * time.Second, true},
		{"asctime date", in3s.Format(time.ANSIC), 3 * time.Second, true},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"date long past", "Sun, 06 Nov 1994 08:49:37 GMT", 0, true},
		{"the most seconds a Duration holds", "9223372036", 9223372036 * time.Second, true},
		{"a second more than a Duration holds", "9223372037", math.MaxInt64, true},
		{"more digits than an int64 holds", "99999999999999999999999", math.MaxInt64, true},
		{"a date far ahead", "Fri, 31 Dec 9999 23:59:59 GMT", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Sub(now), true},
		{"negative", "-2", 0, false},
		{"plus sign", "+2", 0, false},
		{"fraction", "2.5", 0, false},
		{"exponent", "1e3", 0, false},
		{"full-width digit", "２", 0, false},
		{"a zone other than GMT", "Sun, 06 Nov 1994 08:49:37 PST", 0, false},
		{"no such day", "Sun, 32 Nov 1994 08:49:37 GMT", 0, false},
		{"words", "soon", 0, false},
		{"empty", "", 0, false},
		{"blank", "  ", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, ok := httpfutures.ParseRetryAfter(tt.value, now)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.wait, wait)
		})
	}
}

func TestParseRateLimit(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name      string
		header    http.Header
		remaining int64
		reset     time.Duration
		ok        bool
	}{
		// Where the field-by-field parser disagreed with RFC 9651.
		{"a comma inside a String", headerOf("RateLimit", `"a,b";r=5;t=3`), 5, 3 * s, true},
		{"a semicolon inside a String", headerOf("RateLimit", `"a;b";r=5;t=3`), 5, 3 * s, true},
		{"an escaped quote inside a String", headerOf("RateLimit", `"def\"ault";r=5;t=3`), 5, 3 * s, true},
		{"a parameter String holding a comma", headerOf("RateLimit", `"d";r=5;t=3;x="a,b"`), 5, 3 * s, true},
		{"not a Token: starts with a digit", headerOf("RateLimit", `1abc;r=5;t=3`), 0, 0, false},
		{"not a String: non-ASCII", headerOf("RateLimit", `"défaut";r=5;t=3`), 0, 0, false},
		{"a trailing comma", headerOf("RateLimit", `"d";r=5;t=3,`), 0, 0, false},

		// Where they agreed.
		{"one policy", headerOf("RateLimit", `"default";r=50;t=30`), 50, 30 * s, true},
		{"a Token names the policy", headerOf("RateLimit", `default;r=50;t=30`), 50, 30 * s, true},
		{"the slowest of several policies", headerOf("RateLimit", `"burst";r=50;t=1, "daily";r=4;t=8`), 4, 8 * s, true},
		{"policies over several field lines", headerOf("RateLimit", `"burst";r=50;t=1`, "RateLimit", `"daily";r=4;t=8`), 4, 8 * s, true},
		{"an exhausted quota wins over a slow one", headerOf("RateLimit", `"a";r=1;t=100, "b";r=0;t=5`), 0, 5 * s, true},
		{"the longest of exhausted quotas", headerOf("RateLimit", `"a";r=0;t=5, "b";r=0;t=9, "c";r=0;t=1`), 0, 9 * s, true},
		{"unknown and boolean parameters are ignored", headerOf("RateLimit", `"default";q=100;r=4;w;t=8`), 4, 8 * s, true},
		{"r not an Integer", headerOf("RateLimit", `"default";r=abc;t=8`), 0, 0, false},
		{"r negative", headerOf("RateLimit", `"default";r=-1;t=8`), 0, 0, false},
		{"r missing", headerOf("RateLimit", `"default";t=8`), 0, 0, false},
		{"no item", headerOf("RateLimit", `;;;`), 0, 0, false},
		{"no field", http.Header{}, 0, 0, false},

		// What the draft says besides.
		{"r a Decimal", headerOf("RateLimit", `"default";r=1.5;t=8`), 0, 0, false},
		{"r a String", headerOf("RateLimit", `"default";r="5";t=8`), 0, 0, false},
		{"t a Decimal", headerOf("RateLimit", `"default";r=5;t=8.0`), 0, 0, false},
		{"an Integer names no policy", headerOf("RateLimit", `5;r=5;t=8`), 0, 0, false},
		{"an inner list names no policy", headerOf("RateLimit", `("a" "b");r=5;t=8`), 0, 0, false},
		{"one malformed item voids the field", headerOf("RateLimit", `"a";r=4;t=8, "b";r=x;t=1`), 0, 0, false},
		{"a partition key", headerOf("RateLimit", `"default";r=5;t=60;pk=:QXBwLTk5OQ==:`), 5, 60 * s, true},
		{"a partition key that is not a Byte Sequence", headerOf("RateLimit", `"default";r=5;t=60;pk="app"`), 0, 0, false},
		{"no t: no time to spread the quota over", headerOf("RateLimit", `"default";r=999;pk=:dHJpYWwxMjEzMjM=:`), 0, 0, false},
		{"no t on one item, the other is used", headerOf("RateLimit", `"trial";r=999, "default";r=4;t=8`), 4, 8 * s, true},
		{"t zero with quota left asks for nothing", headerOf("RateLimit", `"default";r=4;t=0`), 0, 0, false},
		{"the largest t saturates", headerOf("RateLimit", `"default";r=0;t=999999999999999`), 0, 9223372036 * s, true},
		{"a policy counting requests", headerOf(
			"RateLimit-Policy", `"default";q=100;qu="requests";w=60`,
			"RateLimit", `"default";r=4;t=8`), 4, 8 * s, true},
		{"a policy counting content bytes sets no pace", headerOf(
			"RateLimit-Policy", `"bytes";q=65535;qu="content-bytes";w=10`,
			"RateLimit", `"bytes";r=1;t=10`), 0, 0, false},
		{"a policy counting concurrent requests sets no pace", headerOf(
			"RateLimit-Policy", `"conc";q=10;qu="concurrent-requests"`,
			"RateLimit", `"conc";r=0;t=10`), 0, 0, false},
		{"only the policies counting requests are compared", headerOf(
			"RateLimit-Policy", `"bytes";q=65535;qu="content-bytes";w=10, "default";q=100;w=60`,
			"RateLimit", `"bytes";r=0;t=10, "default";r=50;t=60`), 50, 60 * s, true},
		{"policy names compared whatever their case and kind", headerOf(
			"RateLimit-Policy", `Bytes;q=65535;qu="content-bytes"`,
			"RateLimit", `"bytes";r=0;t=10`), 0, 0, false},
		{"a policy not described counts requests", headerOf(
			"RateLimit-Policy", `"bytes";q=65535;qu="content-bytes"`,
			"RateLimit", `"other";r=0;t=10`), 0, 10 * s, true},

		// RateLimit-Remaining and RateLimit-Reset, of the draft's earlier versions.
		{"legacy fields", headerOf("RateLimit-Remaining", "4", "RateLimit-Reset", "8"), 4, 8 * s, true},
		{"legacy fields, exhausted", headerOf("RateLimit-Remaining", "0", "RateLimit-Reset", "3"), 0, 3 * s, true},
		{"legacy fields with spaces", headerOf("RateLimit-Remaining", " 4 ", "RateLimit-Reset", " 8 "), 4, 8 * s, true},
		{"legacy reset negative", headerOf("RateLimit-Remaining", "4", "RateLimit-Reset", "-8"), 0, 0, false},
		{"legacy remaining negative", headerOf("RateLimit-Remaining", "-4", "RateLimit-Reset", "8"), 0, 0, false},
		{"legacy reset not an Integer", headerOf("RateLimit-Remaining", "4", "RateLimit-Reset", "abc"), 0, 0, false},
		{"legacy remaining only", headerOf("RateLimit-Remaining", "4"), 0, 0, false},
		{"legacy reset only", headerOf("RateLimit-Reset", "8"), 0, 0, false},
		{"legacy remaining beyond an Integer", headerOf("RateLimit-Remaining", "99999999999999999999", "RateLimit-Reset", "1"), 0, 0, false},
		{"legacy reset beyond a Duration saturates", headerOf("RateLimit-Remaining", "1", "RateLimit-Reset", "9223372037"), 1, 9223372036 * s, true},
		{"RateLimit wins over the legacy fields", headerOf(
			"RateLimit", `"default";r=4;t=8`,
			"RateLimit-Remaining", "0", "RateLimit-Reset", "100"), 4, 8 * s, true},
		{"legacy fields when RateLimit is malformed", headerOf(
			"RateLimit", `"d";r=5;t=3,`,
			"RateLimit-Remaining", "4", "RateLimit-Reset", "8"), 4, 8 * s, true},
		{"legacy fields when RateLimit sets no pace", headerOf(
			"RateLimit-Policy", `"bytes";q=65535;qu="content-bytes"`,
			"RateLimit", `"bytes";r=0;t=10`,
			"RateLimit-Remaining", "4", "RateLimit-Reset", "8"), 4, 8 * s, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remaining, reset, ok := httpfutures.ParseRateLimit(tt.header)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.remaining, remaining)
			assert.Equal(t, tt.reset, reset)
		})
	}
}

func TestParseRateLimitPolicy(t *testing.T) {
	key := func(b64 string) []byte {
		b, err := base64.StdEncoding.DecodeString(b64)
		require.NoError(t, err)
		return b
	}
	type policy = httpfutures.QuotaPolicy
	tests := []struct {
		name   string
		header http.Header
		want   []policy
	}{
		{"a quota per window", headerOf("RateLimit-Policy", `"default";q=100;w=10`),
			[]policy{{Name: "default", Quota: 100, Unit: "requests", Window: 10 * time.Second}}},
		{"several policies", headerOf("RateLimit-Policy", `"permin";q=50;w=60,"perhr";q=1000;w=3600`),
			[]policy{
				{Name: "permin", Quota: 50, Unit: "requests", Window: time.Minute},
				{Name: "perhr", Quota: 1000, Unit: "requests", Window: time.Hour},
			}},
		{"over several field lines", headerOf("RateLimit-Policy", `"burst";q=100;w=60`, "RateLimit-Policy", `"daily";q=1000;w=86400`),
			[]policy{
				{Name: "burst", Quota: 100, Unit: "requests", Window: time.Minute},
				{Name: "daily", Quota: 1000, Unit: "requests", Window: 24 * time.Hour},
			}},
		{"a partition key", headerOf("RateLimit-Policy", `"peruser";q=100;w=60;pk=:dXNlci00Mg==:`),
			[]policy{{Name: "peruser", Quota: 100, Unit: "requests", Window: time.Minute, Key: key("dXNlci00Mg==")}}},
		{"content bytes", headerOf("RateLimit-Policy", `"peruser";q=65535;qu="content-bytes";w=10;pk=:QXBwLTk5OQ==:`),
			[]policy{{Name: "peruser", Quota: 65535, Unit: "content-bytes", Window: 10 * time.Second, Key: key("QXBwLTk5OQ==")}}},
		{"concurrent requests, no window", headerOf("RateLimit-Policy", `"conc";q=10;qu="concurrent-requests"`),
			[]policy{{Name: "conc", Quota: 10, Unit: "concurrent-requests"}}},
		{"a unit not registered is kept", headerOf("RateLimit-Policy", `"cpu";q=10;qu="cpu-seconds";w=1`),
			[]policy{{Name: "cpu", Quota: 10, Unit: "cpu-seconds", Window: time.Second}}},
		{"a Token names the policy", headerOf("RateLimit-Policy", `burst;q=100;w=60`),
			[]policy{{Name: "burst", Quota: 100, Unit: "requests", Window: time.Minute}}},
		{"a zero quota", headerOf("RateLimit-Policy", `"closed";q=0;w=60`),
			[]policy{{Name: "closed", Quota: 0, Unit: "requests", Window: time.Minute}}},
		{"unknown parameters are ignored", headerOf("RateLimit-Policy", `"default";q=100;acme-burst=5;flag;w=10`),
			[]policy{{Name: "default", Quota: 100, Unit: "requests", Window: 10 * time.Second}}},
		{"a malformed item is left out, the others kept", headerOf("RateLimit-Policy",
			`"noq";w=10, "negq";q=-1, "decq";q=1.5, "tokenunit";q=1;qu=requests, "zerow";q=1;w=0, `+
				`"negw";q=1;w=-5, "strpk";q=1;pk="k", 7;q=1, ("inner");q=1, "good";q=5;w=1`),
			[]policy{{Name: "good", Quota: 5, Unit: "requests", Window: time.Second}}},
		{"a field that is not a list", headerOf("RateLimit-Policy", `"default";q=100;w=10,`), nil},
		{"a String with a comma", headerOf("RateLimit-Policy", `"a,b";q=1`),
			[]policy{{Name: "a,b", Quota: 1, Unit: "requests"}}},
		{"non-ASCII", headerOf("RateLimit-Policy", `"défaut";q=1`), nil},
		{"empty", headerOf("RateLimit-Policy", ``), nil},
		{"no field", http.Header{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, httpfutures.ParseRateLimitPolicy(tt.header))
		})
	}
}

func TestParseConcurrencyPolicy(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		limit  int
		ok     bool
	}{
		{"a concurrency quota", headerOf("RateLimit-Policy", `"conc";q=10;qu="concurrent-requests"`), 10, true},
		{"the smallest of several", headerOf("RateLimit-Policy",
			`"a";q=10;qu="concurrent-requests", "rate";q=1;w=1, "b";q=4;qu="concurrent-requests"`), 4, true},
		{"a zero quota", headerOf("RateLimit-Policy", `"conc";q=0;qu="concurrent-requests"`), 0, true},
		{"only request quotas", headerOf("RateLimit-Policy", `"rate";q=10;w=1`), 0, false},
		{"content bytes", headerOf("RateLimit-Policy", `"bytes";q=10;qu="content-bytes"`), 0, false},
		{"the unit a Token, not a String", headerOf("RateLimit-Policy", `"conc";q=10;qu=concurrent-requests`), 0, false},
		{"a malformed field", headerOf("RateLimit-Policy", `"conc";q=10;qu="concurrent-requests",`), 0, false},
		{"the RateLimit field is not read", headerOf("RateLimit", `"conc";r=10;t=1`), 0, false},
		{"no field", http.Header{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit, ok := httpfutures.ParseConcurrencyPolicy(tt.header)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.limit, limit)
		})
	}
}

// TestBackpressureFollowsTheDraft checks, through a transport, that the host is paced by what the
// RateLimit fields mean, not by what a field-by-field reading finds in them.
func TestBackpressureFollowsTheDraft(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		pace   rate.Limit      // HostStats.Pace once the response is in
		pause  time.Duration   // HostStats.PausedUntil then, from t0
		a      []time.Duration // when a.test's next three requests are sent
	}{
		{"a policy name holding a comma", headerOf("RateLimit", `"a,b";r=4;t=8`),
			0.5, 0, evenly(3, 2*time.Second, 2*time.Second)},
		{"a trailing comma voids the field", headerOf("RateLimit", `"default";r=0;t=3,`),
			0, 0, evenly(3, 0, 0)},
		{"an exhausted policy counting requests pauses", headerOf(
			"RateLimit-Policy", `"default";q=10;qu="requests";w=3`,
			"RateLimit", `"default";r=0;t=3`),
			0, 3 * time.Second, evenly(3, 3*time.Second, 0)},
		{"an exhausted policy counting content bytes does not", headerOf(
			"RateLimit-Policy", `"bytes";q=65535;qu="content-bytes";w=3`,
			"RateLimit", `"bytes";r=0;t=3`),
			0, 0, evenly(3, 0, 0)},
		{"nor one counting concurrent requests", headerOf(
			"RateLimit-Policy", `"conc";q=2;qu="concurrent-requests"`,
			"RateLimit", `"conc";r=0;t=3`),
			0, 0, evenly(3, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				bp := &backpressure{first: func(time.Time) *http.Response {
					return memResponse(http.StatusOK, tt.header.Clone())
				}}
				bp.run(t)
				assert.Equal(t, tt.pace, bp.host.Pace)
				if tt.pause > 0 {
					assert.Equal(t, bp.t0.Add(tt.pause), bp.host.PausedUntil)
				} else {
					assert.Zero(t, bp.host.PausedUntil)
				}
				assert.Equal(t, tt.a, bp.a)
				assert.Equal(t, []time.Duration{0}, bp.b, "b.test keeps its own pace")
			})
		})
	}
}
