package httpfutures_test

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/httpfutures/httpfutures"
)

// bubbleEpoch is midnight UTC 2000-01-01, the time a synctest bubble starts at: a "now" the
// seed corpus shares with the tests.
var bubbleEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Unix(bubbleEpoch, 0).UTC()
	for _, v := range []string{
		"0", "2", " 2 ", "120", "007",
		"1743405600", "9223372036", "9223372037", "99999999999999999999999",
		"-1", "+2", "2.5", "1e3", "0x10", "２",
		now.Add(3 * time.Second).Format(http.TimeFormat),
		now.Add(3 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT"),
		now.Add(3 * time.Second).Format(time.ANSIC),
		now.Add(-time.Hour).Format(http.TimeFormat),
		"Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Sun, 06 Nov 1994 08:49:37 PST", "Sun, 32 Nov 1994 08:49:37 GMT",
		"", " ", "soon", "\x00", "Retry-After: 2",
	} {
		f.Add(v, bubbleEpoch)
	}
	f.Add("2", int64(math.MaxInt64))
	f.Add("Fri, 31 Dec 9999 23:59:59 GMT", int64(math.MinInt64))
	f.Add("Mon, 01 Jan 0001 00:00:00 GMT", int64(math.MaxInt64))

	f.Fuzz(func(t *testing.T, v string, unix int64) {
		d, ok := httpfutures.ParseRetryAfter(v, time.Unix(unix, 0))
		if !ok {
			if d != 0 {
				t.Fatalf("ParseRetryAfter(%q) = %v, false: want a zero duration with false", v, d)
			}
			if trimmed := strings.TrimSpace(v); trimmed != "" && strings.Trim(trimmed, "0123456789") == "" {
				t.Fatalf("ParseRetryAfter(%q) = false: a number of seconds must parse", v)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v: negative", v, d)
		}
		if trimmed := strings.TrimSpace(v); strings.Trim(trimmed, "0123456789") == "" && d != math.MaxInt64 && d%time.Second != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v: not whole seconds", v, d)
		}
	})
}

func FuzzParseRateLimit(f *testing.F) {
	for _, field := range []string{
		`"default";r=50;t=30`, `default;r=50;t=30`, `"default";r=0;t=3`, `"default";r=4;t=0`,
		`"burst";r=50;t=1, "daily";r=1000;t=86400`, `"a";r=1;t=10,"b";r=0;t=5,"c";r=9;t=1`,
		`"default";q=100;w=10;r=5;t=8`, `"default";r;t=8`, `"default";r=;t=8`, `"default";flag;r=1;t=1`,
		`"default";r=99999999999999999999;t=1`, `"default";r=1;t=9223372036`, `"default";r=1;t=9223372037`,
		`"default";r=-1;t=8`, `"default";r=abc;t=8`, `"quo\"ted";r=1;t=1`, `"unterminated;r=1;t=1`,
		`;;;`, `,,,`, `r=1`, `"default"`, `=;=;=`, "\"a\";r=1;t=1\n\"b\";r=0;t=2", "",
	} {
		f.Add(field, "", "")
	}
	for _, legacy := range [][2]string{
		{"4", "8"}, {"0", "3"}, {" 4 ", " 8 "}, {"-4", "8"}, {"4", "-8"}, {"4", "abc"},
		{"99999999999999999999", "1"}, {"1", "9223372037"}, {"", "8"}, {"4", ""},
	} {
		f.Add("", legacy[0], legacy[1])
	}
	f.Add(`"default";r=4;t=8`, "0", "100")

	f.Fuzz(func(t *testing.T, field, remaining, reset string) {
		h := http.Header{}
		if field != "" {
			for v := range strings.SplitSeq(field, "\n") { // several field lines
				h.Add("RateLimit", v)
			}
		}
		if remaining != "" {
			h.Set("RateLimit-Remaining", remaining)
		}
		if reset != "" {
			h.Set("RateLimit-Reset", reset)
		}
		r, d, ok := httpfutures.ParseRateLimit(h)
		if !ok {
			if r != 0 || d != 0 {
				t.Fatalf("ParseRateLimit(%q) = %d, %v, false: want zero values with false", h, r, d)
			}
			return
		}
		if r < 0 {
			t.Fatalf("ParseRateLimit(%q): negative remaining %d", h, r)
		}
		if d < 0 {
			t.Fatalf("ParseRateLimit(%q): negative reset %v", h, d)
		}
		if d%time.Second != 0 {
			t.Fatalf("ParseRateLimit(%q): reset %v is not whole seconds", h, d)
		}
	})
}
