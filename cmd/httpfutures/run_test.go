package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runJSON runs the program with -o json added and decodes the report.
func runJSON(t *testing.T, ctx context.Context, args ...string) (code int, rep map[string]any, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(ctx, append([]string{"-o", "json"}, args...), &out, &errb)
	if out.Len() > 0 {
		require.NoError(t, json.Unmarshal(out.Bytes(), &rep), "stdout: %s", out.String())
	}
	return code, rep, errb.String()
}

// latency reads a latency field of a JSON report.
func latency(t *testing.T, rep map[string]any, field string) time.Duration {
	t.Helper()
	lat, ok := rep["latencies"].(map[string]any)
	require.True(t, ok)
	v, ok := lat[field].(float64)
	require.True(t, ok, "latencies.%s", field)
	return time.Duration(v)
}

// countingServer answers 200 "ok" and counts the requests it got.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestRunClosedModelSendsN(t *testing.T) {
	srv, hits := countingServer(t)

	code, rep, stderr := runJSON(t, t.Context(), "-n", "300", "-c", "4", srv.URL+"/x")

	assert.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr, "no progress line when stderr is not a terminal")
	assert.Equal(t, int64(300), hits.Load())
	assert.Equal(t, float64(300), rep["requests"])
	assert.Equal(t, float64(1), rep["success"])
	assert.Equal(t, map[string]any{"200": float64(300)}, rep["status_codes"])
	assert.Equal(t, map[string]any{"total": float64(600), "mean": float64(2)}, rep["bytes_in"])
	assert.Equal(t, "closed", rep["model"])
	assert.Positive(t, latency(t, rep, "min"))
	assert.LessOrEqual(t, latency(t, rep, "50th"), latency(t, rep, "max"))
}

func TestRunTextReport(t *testing.T) {
	srv, hits := countingServer(t)
	var out, errb bytes.Buffer

	code := run(t.Context(), []string{srv.URL, "-n", "20"}, &out, &errb)

	assert.Equal(t, 0, code, errb.String())
	assert.Equal(t, int64(20), hits.Load())
	assert.Regexp(t, `(?m)^Requests +\[total, rate, throughput\] +20, `, out.String())
	assert.Regexp(t, `(?m)^Status Codes +\[code:count\] +200:20$`, out.String())
	assert.Regexp(t, `(?m)^Success +\[ratio\] +100\.00%$`, out.String())
}

// readSeqs reads a results file into a map from seq to timestamp.
func TestRunSendsMethodHeadersAndBody(t *testing.T) {
	type seen struct{ method, host, header, body string }
	var (
		mu  sync.Mutex
		got []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.Host, r.Header.Get("X-Test"), string(b)})
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	code, rep, stderr := runJSON(t, t.Context(), "-n", "25", "-c", "3", "-m", "post",
		"-H", "X-Test: yes", "-H", "Host: api.example.test", "-d", "hello", srv.URL)

	require.Equal(t, 0, code, stderr)
	require.Len(t, got, 25)
	for _, s := range got {
		assert.Equal(t, seen{"POST", "api.example.test", "yes", "hello"}, s)
	}
	assert.Equal(t, map[string]any{"total": float64(125), "mean": float64(5)}, rep["bytes_out"])
	assert.Equal(t, map[string]any{"201": float64(25)}, rep["status_codes"])
}

func TestRunCountsStatusCodes(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	// Backpressure is off by default, so the 503s with Retry-After do not pause the run.
	code, rep, stderr := runJSON(t, t.Context(), "-n", "40", "-c", "1", srv.URL)

	require.Equal(t, 0, code, stderr)
	assert.Equal(t, map[string]any{"200": float64(30), "503": float64(10)}, rep["status_codes"])
	assert.Equal(t, 0.75, rep["success"])
	// A response that is not a success is an error, as vegeta writes it: its status line.
	assert.Equal(t, []any{"503 Service Unavailable"}, rep["errors"])
	assert.Equal(t, map[string]any{"503 Service Unavailable": float64(10)}, rep["error_kinds"])
}

func TestRunTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()

	start := time.Now()
	code, rep, stderr := runJSON(t, t.Context(), "-n", "4", "-c", "4", "-timeout", "100ms", srv.URL)

	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Equal(t, 1, code)
	assert.Equal(t, map[string]any{"timeout": float64(4)}, rep["error_kinds"])
	assert.Equal(t, map[string]any{"0": float64(4)}, rep["status_codes"])
	assert.Regexp(t, `^httpfutures: all 4 requests failed: timeout \(.*\)\n$`, stderr)
}

func TestRunUnreachableURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"-n", "5", "http://" + addr + "/get"}, &out, &errb)

	assert.Equal(t, 1, code)
	assert.Regexp(t, `^httpfutures: all 5 requests failed: connection refused \(.*connection refused\)\n$`, errb.String())
	assert.Equal(t, 1, strings.Count(errb.String(), "\n"), "one line")
	assert.Regexp(t, `(?m)^Status Codes +\[code:count\] +0:5$`, out.String())
	assert.Regexp(t, `(?m)^connection refused: 5 \(e\.g\. `, out.String())
}

func TestRunBadUsageExits2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-bogus", "http://127.0.0.1:1/"}, "httpfutures: flag provided but not defined: -bogus\n"},
		{"bad worker count", []string{"-c", "0", "http://127.0.0.1:1/"}, "httpfutures: -c must be at least 1, got 0\n"},
		{"bad scheme", []string{"file:///etc/passwd"}, "httpfutures: invalid URL \"file:///etc/passwd\": the scheme must be http or https\n"},
		{"no host", []string{"http://"}, "httpfutures: invalid URL \"http://\": no host\n"},
		{"bad output", []string{"-o", "yaml", "http://127.0.0.1:1/"}, "httpfutures: -o is the output type, text, json or csv (as hey's), got \"yaml\"; the results file is -output FILE (as vegeta's)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), tt.args, &out, &errb)
			assert.Equal(t, 2, code)
			assert.Equal(t, tt.want, errb.String())
			assert.Empty(t, out.String())
		})
	}
}

func TestRunHelpExits0(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 0, run(t.Context(), []string{"-h"}, &out, &errb))
	assert.Contains(t, errb.String(), "usage: httpfutures")
	assert.Empty(t, out.String())
}

func TestRunInterruptedStillReports(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	code, rep, stderr := runJSON(t, ctx, "-n", "1000000", "-c", "4", srv.URL)

	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, true, rep["interrupted"])
	requests := rep["requests"].(float64)
	assert.Greater(t, requests, float64(10))
	assert.Less(t, requests, float64(1000))
	assert.Equal(t, map[string]any{"200": requests}, rep["status_codes"], "in-flight requests were let finish")
}

func TestRunDemo(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"-duration", "300ms", "-o", "json"}, &out, &errb)

	assert.Equal(t, 0, code, errb.String())
	lines := strings.Split(strings.TrimRight(errb.String(), "\n"), "\n")
	for _, l := range lines[1:] {
		assert.Contains(t, l, "httpfutures: warning: the generator", "only a warning of a busy machine may follow")
	}
	assert.Regexp(t, `^demo: no URL given, so this loads an embedded server at http://127\.0\.0\.1:\d+ .*httpfutures \[flags\] URL; for a tour of the library: httpfutures tour$`, lines[0])
	// 500 req/s for 300ms, alternating /get and /delay/5: 150, sent or (on a very busy machine)
	// dropped.
	var rep map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep))
	requests := rep["requests"].(float64)
	assert.Equal(t, float64(150), requests+rep["sent"].(map[string]any)["dropped"].(float64))
	assert.Equal(t, map[string]any{"200": requests}, rep["status_codes"])
	assert.Equal(t, "500", rep["target_rate"])
}

func TestRunBodies(t *testing.T) {
	bodyFile := filepath.Join(t.TempDir(), "body.bin")
	require.NoError(t, os.WriteFile(bodyFile, []byte("from a file\n"), 0o600))

	tests := []struct {
		name     string
		args     []string
		wantBody string
		wantLen  int64
	}{
		{"string", []string{"-d", "abc"}, "abc", 3},
		{"empty string", []string{"-d", ""}, "", 0},
		{"file", []string{"-D", bodyFile}, "from a file\n", 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct {
				body     string
				length   int64
				chunked  bool
				hasCType bool
			}
			var (
				mu  sync.Mutex
				got []seen
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				got = append(got, seen{string(b), r.ContentLength, slices.Contains(r.TransferEncoding, "chunked"), r.Header.Get("Content-Type") != ""})
				mu.Unlock()
			}))
			defer srv.Close()

			args := append([]string{"-n", "6", "-c", "2", "-m", "PUT"}, tt.args...)
			code, rep, stderr := runJSON(t, t.Context(), append(args, srv.URL)...)

			require.Equal(t, 0, code, stderr)
			require.Len(t, got, 6)
			for _, s := range got {
				assert.Equal(t, seen{tt.wantBody, tt.wantLen, false, false}, s)
			}
			assert.Equal(t, float64(6*tt.wantLen), rep["bytes_out"].(map[string]any)["total"])
		})
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "a regular file")
	assert.False(t, isTerminal(&bytes.Buffer{}), "a buffer")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.False(t, isTerminal(w), "a pipe")
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	assert.False(t, isTerminal(null), "/dev/null, a character device but no terminal")
}

// The run ends at its duration plus what is in flight: what fell due and could not be sent by
// then is dropped and counted, not sent afterwards.
func TestRunAllServerErrorsExits1(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()

	code, rep, stderr := runJSON(t, t.Context(), "-n", "20", srv.URL)

	assert.Equal(t, exitFail, code)
	assert.Equal(t, float64(0), rep["success"])
	assert.Equal(t, "httpfutures: all 20 requests got no 2xx or 3xx response (status codes 500:20)\n", stderr)
}

func TestRunBadHeaderExits2(t *testing.T) {
	srv, hits := countingServer(t)
	var out, errb bytes.Buffer

	code := run(t.Context(), []string{"-H", "Bad Name: x", srv.URL}, &out, &errb)

	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errb.String(), `"Bad Name" is not a valid header name`)
	assert.Equal(t, int64(0), hits.Load(), "nothing was sent")
}

func TestRunThresholds(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	tests := []struct {
		name       string
		thresholds []string
		want       int
		wantErr    string
	}{
		{"met", []string{"p99<10s,success>=90%"}, exitOK, ""},
		{"success missed", []string{"success>=99.9%"}, exitThreshold, "httpfutures: threshold success>=99.9% missed: success is 90.000%\n"},
		{"latency missed", []string{"p50<1ns"}, exitThreshold, "httpfutures: threshold p50<1ns missed: p50 is "},
		{"repeated, both checked", []string{"requests==50", "rate<0"}, exitThreshold, "httpfutures: threshold rate<0 missed: rate is "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.Store(0)
			args := []string{"-n", "50", "-c", "1"}
			for _, th := range tt.thresholds {
				args = append(args, "-threshold", th)
			}
			code, _, stderr := runJSON(t, t.Context(), append(args, srv.URL)...)
			assert.Equal(t, tt.want, code, stderr)
			if tt.wantErr == "" {
				assert.Empty(t, stderr)
			} else {
				assert.True(t, strings.HasPrefix(stderr, tt.wantErr), stderr)
				assert.NotContains(t, stderr, "requests==50", "the threshold met is not reported")
			}
		})
	}
}

// A ramp sends at the rate of the moment: from 0 to 1000/s over 1s, 500 requests, the count at
// t being 500 t², so request i is due at sqrt(i/500) s.
func TestLiveStatsLine(t *testing.T) {
	s := liveStats{elapsed: 2500 * time.Millisecond, done: 12000, rate: 4990.4, target: 5000, inFlight: 3,
		p50: 180 * time.Microsecond, p99: 1234567 * time.Nanosecond, hasLatency: true, errors: 2}
	assert.Equal(t, "   2.5s  12000 done  4990 req/s (target 5000)  3 in flight  p50 180µs  p99 1.235ms  2 errors", s.String())
	s = liveStats{elapsed: time.Second, done: 5, rate: 5}
	assert.Equal(t, "   1.0s  5 done  5 req/s  0 in flight  0 errors", s.String())
}

// A body cut short is a failure, recorded once, and the users go on.
func TestRunBodyCutShort(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "only ten!!")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection is cut
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	defer srv.Close()

	code, rep, stderr := runJSON(t, t.Context(), "-n", "12", "-c", "3", srv.URL)

	assert.Equal(t, exitFail, code, stderr)
	assert.Equal(t, float64(12), rep["requests"])
	assert.Equal(t, map[string]any{"0": float64(12)}, rep["status_codes"])
	assert.Equal(t, map[string]any{"connection closed by peer": float64(12)}, rep["error_kinds"])
	assert.Equal(t, float64(120), rep["bytes_in"].(map[string]any)["total"], "what came is counted")
}

// stallingBodyServer answers with headers and the first bytes of a longer body, then stalls until
// the client gives up.
func stallingBodyServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "abc")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The closed model ends at -duration, or at Ctrl-C, however its requests stall: what is in
// flight gets -timeout and a second more, and the report is printed.
func TestRunClosedModelEndsWhileRequestsStall(t *testing.T) {
	srv := stallingBodyServer(t)
	t.Run("duration", func(t *testing.T) {
		start := time.Now()
		_, rep, _ := runJSON(t, t.Context(), "-duration", "300ms", "-c", "2", "-timeout", "500ms", srv.URL)
		assert.Less(t, time.Since(start), 300*time.Millisecond+500*time.Millisecond+time.Second+time.Second)
		require.NotNil(t, rep, "a report is printed")
	})
	t.Run("interrupt", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, rep, _ := runJSON(t, ctx, "-n", "10", "-c", "2", "-timeout", "500ms", srv.URL)
		assert.Less(t, time.Since(start), 300*time.Millisecond+500*time.Millisecond+time.Second+time.Second)
		require.NotNil(t, rep, "a report is printed")
		assert.Equal(t, true, rep["interrupted"])
	})
}

// Requests still queued when the run ends (here behind -host-rate) are dropped at once, in both
// models, not sent as the limit lets them go, nor waited for.
func TestRunEndDropsWhatIsQueued(t *testing.T) {
	srv, hits := countingServer(t)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"closed model, interrupted", []string{"-n", "1000", "-c", "50"}},
		{"closed model, duration", []string{"-duration", "300ms", "-c", "20"}},
		{"open model, duration", []string{"-duration", "300ms", "-rate", "100"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			args := append([]string{"-host-rate", "5", "-timeout", "5s"}, tt.args...)
			_, rep, _ := runJSON(t, ctx, append(args, srv.URL)...)
			assert.Less(t, time.Since(start), 1500*time.Millisecond, "the run waited for what was queued")
			require.NotNil(t, rep)
			sent := rep["requests"].(float64)
			assert.LessOrEqual(t, sent, float64(4), "5/s for 300 ms, the first at once")
			assert.EqualValues(t, hits.Load(), sent)
			time.Sleep(400 * time.Millisecond)
			assert.EqualValues(t, sent, hits.Load(), "nothing is sent after the run")
		})
	}
}
