package httpfutures_test

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"

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

// fieldLines splits v at newlines into the lines of one field, as a server sends it over
// several lines; none for an empty v.
func fieldLines(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, "\n")
}

func FuzzParseRateLimit(f *testing.F) {
	for _, field := range []string{
		`"default";r=50;t=30`, `default;r=50;t=30`, `"default";r=0;t=3`, `"default";r=4;t=0`,
		`"burst";r=50;t=1, "daily";r=1000;t=86400`, `"a";r=1;t=10,"b";r=0;t=5,"c";r=9;t=1`,
		`"default";q=100;w=10;r=5;t=8`, `"default";r;t=8`, `"default";r=;t=8`, `"default";flag;r=1;t=1`,
		`"default";r=99999999999999999999;t=1`, `"default";r=1;t=9223372036`, `"default";r=1;t=999999999999999`,
		`"default";r=-1;t=8`, `"default";r=abc;t=8`, `"quo\"ted";r=1;t=1`, `"unterminated;r=1;t=1`,
		`"a,b";r=5;t=3`, `"a;b";r=5;t=3`, `"d";r=5;t=3;x="a,b"`, `1abc;r=5;t=3`, `"défaut";r=5;t=3`, `"d";r=5;t=3,`,
		`"default";r=5;t=60;pk=:QXBwLTk5OQ==:`, `"default";r=999`, `("a" "b");r=1;t=1`, `5;r=1;t=1`,
		`;;;`, `,,,`, `r=1`, `"default"`, `=;=;=`, "\"a\";r=1;t=1\n\"b\";r=0;t=2", "",
	} {
		f.Add(field, "", "", "")
	}
	for _, policy := range []string{
		`"default";q=100;w=60`, `"default";q=100;qu="content-bytes";w=60`,
		`"default";q=10;qu="concurrent-requests"`, `DEFAULT;q=1;qu="content-bytes"`, `"default";q=1,`,
	} {
		f.Add(`"default";r=0;t=3`, policy, "", "")
	}
	for _, legacy := range [][2]string{
		{"4", "8"}, {"0", "3"}, {" 4 ", " 8 "}, {"-4", "8"}, {"4", "-8"}, {"4", "abc"},
		{"99999999999999999999", "1"}, {"1", "9223372037"}, {"", "8"}, {"4", ""}, {"4;x=1", "8"}, {"0", "0"},
	} {
		f.Add("", "", legacy[0], legacy[1])
	}
	f.Add(`"default";r=4;t=8`, "", "0", "100")
	f.Add(`"d";r=5;t=3,`, "", "4", "8")

	f.Fuzz(func(t *testing.T, field, policy, remaining, reset string) {
		h := http.Header{}
		for _, v := range fieldLines(field) {
			h.Add("RateLimit", v)
		}
		for _, v := range fieldLines(policy) {
			h.Add("RateLimit-Policy", v)
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
		if remaining != "" && reset != "" {
			return // the legacy fields may have answered
		}
		if d == 0 {
			t.Fatalf("ParseRateLimit(%q): a zero reset from the RateLimit field", h)
		}
		// Only the RateLimit field can have answered: it must be a Structured Field list with
		// an item of that remaining quota and reset.
		list, err := httpsfv.UnmarshalList(h.Values("RateLimit"))
		if err != nil {
			t.Fatalf("ParseRateLimit(%q) = %d, %v: the field is not a list: %v", h, r, d, err)
		}
		for _, m := range list {
			item, isItem := m.(httpsfv.Item)
			if !isItem {
				t.Fatalf("ParseRateLimit(%q) = %d, %v: accepted an inner list", h, r, d)
			}
			ri, _ := item.Params.Get("r")
			ti, _ := item.Params.Get("t")
			if rn, isInt := ri.(int64); isInt && rn == r {
				if tn, isInt := ti.(int64); isInt && (time.Duration(tn)*time.Second == d || tn > int64(d/time.Second)) {
					return
				}
			}
		}
		t.Fatalf("ParseRateLimit(%q) = %d, %v: no item has r=%d and t=%d", h, r, d, r, d/time.Second)
	})
}

func FuzzParseRateLimitPolicy(f *testing.F) {
	for _, field := range []string{
		`"default";q=100;w=10`, `"permin";q=50;w=60,"perhr";q=1000;w=3600`,
		`"peruser";q=100;w=60;pk=:cHsdsRa894==:`, `"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:`,
		`"conc";q=10;qu="concurrent-requests"`, `"a";q=10;qu="concurrent-requests", "b";q=4;qu="concurrent-requests"`,
		`burst;q=100;w=60`, `"closed";q=0`, `"x";q=1;qu=""`, `"x";q=1;qu=requests`, `"x";q=-1`, `"x";q=1.5`,
		`"x";w=10`, `"x";q=1;w=0`, `"x";q=1;w=-1`, `"x";q=1;pk="k"`, `7;q=1`, `("a");q=1`,
		`"x";q=999999999999999;w=999999999999999`, `"x";q=1,`, `"défaut";q=1`, "\"a\";q=1\n\"b\";q=2", "",
	} {
		f.Add(field)
	}

	f.Fuzz(func(t *testing.T, field string) {
		h := http.Header{}
		for _, v := range fieldLines(field) {
			h.Add("RateLimit-Policy", v)
		}
		policies := httpfutures.ParseRateLimitPolicy(h)
		list, err := httpsfv.UnmarshalList(h.Values("RateLimit-Policy"))
		if err != nil && policies != nil {
			t.Fatalf("ParseRateLimitPolicy(%q) = %v: the field is not a list: %v", h, policies, err)
		}
		if len(policies) > len(list) {
			t.Fatalf("ParseRateLimitPolicy(%q): %d policies from %d items", h, len(policies), len(list))
		}
		minConcurrent := int64(-1)
		for _, p := range policies {
			if p.Quota < 0 {
				t.Fatalf("ParseRateLimitPolicy(%q): negative quota in %+v", h, p)
			}
			if p.Window < 0 || p.Window%time.Second != 0 {
				t.Fatalf("ParseRateLimitPolicy(%q): window %v is not whole non-negative seconds", h, p.Window)
			}
			if p.Unit == "concurrent-requests" && (minConcurrent < 0 || p.Quota < minConcurrent) {
				minConcurrent = p.Quota
			}
		}
		limit, ok := httpfutures.ParseConcurrencyPolicy(h)
		if ok != (minConcurrent >= 0) || ok && int64(limit) != min(minConcurrent, math.MaxInt) {
			t.Fatalf("ParseConcurrencyPolicy(%q) = %d, %v: want the smallest concurrency quota of %+v", h, limit, ok, policies)
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, body := range []string{
		`{"a":1}`, `[1,2,3]`, `"s"`, `1 2`, `{"a":`, ``, `null`, `{"a":"\u00e9"}`, "\xff", strings.Repeat("[", 2000),
		`1e700`, `[1e700]`, `-1e400`,
	} {
		f.Add(http.StatusOK, body)
	}
	f.Add(http.StatusNotFound, `{"error":"not found"}`)
	f.Add(http.StatusInternalServerError, strings.Repeat("x", 2000))

	f.Fuzz(func(t *testing.T, status int, body string) {
		resp := &http.Response{
			StatusCode: status,
			Status:     http.StatusText(status),
			Body:       io.NopCloser(strings.NewReader(body)),
			Request:    &http.Request{URL: &url.URL{Scheme: "http", Host: "127.0.0.1", Path: "/"}},
		}
		v, err := httpfutures.DecodeJSON[any](resp)
		var se *httpfutures.StatusError
		if status < 200 || status > 299 {
			if !errors.As(err, &se) {
				t.Fatalf("DecodeJSON, status %d: %v, want a *StatusError", status, err)
			}
			if se.StatusCode != status || string(se.Body) != body[:min(len(body), 1<<10)] {
				t.Fatalf("DecodeJSON, status %d: %+v does not hold the status and the body's start", status, se)
			}
			return
		}
		if errors.As(err, &se) {
			t.Fatalf("DecodeJSON, status %d: %v, a *StatusError for a 2xx", status, err)
		}
		if !json.Valid([]byte(body)) {
			return
		}
		// Valid JSON is decoded as json.Unmarshal decodes it, refused where it refuses it: a
		// number beyond a float64 (1e700) is valid JSON that no any can hold.
		var want any
		if uerr := json.Unmarshal([]byte(body), &want); uerr != nil {
			if err == nil {
				t.Fatalf("DecodeJSON(%q) = %v, but json.Unmarshal refuses it: %v", body, v, uerr)
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeJSON(%q): %v, but it is valid JSON", body, err)
		}
		if got, _ := json.Marshal(v); string(got) != string(must(json.Marshal(want))) {
			t.Fatalf("DecodeJSON(%q) = %v, want %v", body, v, want)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
