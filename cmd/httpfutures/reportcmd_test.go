package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// attackTo runs an attack with -output to a file of dir and returns the file.
func attackTo(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	var out, errb bytes.Buffer
	code := run(t.Context(), append([]string{"-output", path, "-name", name}, args...), &out, &errb)
	require.Equal(t, 0, code, errb.String())
	return path
}

func TestOutputStreamsOneResultPerRequest(t *testing.T) {
	srv, hits := countingServer(t)
	path := attackTo(t, t.TempDir(), "a.json", "-n", "50", "-c", "3", srv.URL+"/x")

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	require.Len(t, lines, 50)
	assert.Equal(t, int64(50), hits.Load())
	seqs := map[float64]bool{}
	for _, l := range lines {
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		assert.Equal(t, "a.json", r["attack"])
		assert.Equal(t, float64(200), r["code"])
		assert.Equal(t, float64(2), r["bytes_in"])
		assert.Equal(t, "GET", r["method"])
		assert.Equal(t, srv.URL+"/x", r["url"])
		assert.Positive(t, r["latency"])
		seqs[r["seq"].(float64)] = true
	}
	assert.Len(t, seqs, 50, "each seq once")
}

// The report of results files matches the report of the run, and several files are one run.
func TestReportSubcommand(t *testing.T) {
	srv, _ := countingServer(t)
	dir := t.TempDir()
	var runOut, runErr bytes.Buffer
	a := filepath.Join(dir, "a.json")
	require.Equal(t, 0, run(t.Context(), []string{"-o", "json", "-output", a, "-rate", "500", "-duration", "200ms", srv.URL}, &runOut, &runErr), runErr.String())
	b := attackTo(t, dir, "b.json", "-n", "30", srv.URL)

	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"json of one file is the run's report", []string{"-type", "json", a}, func(t *testing.T, out string) {
			var fromFile, fromRun map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &fromFile))
			require.NoError(t, json.Unmarshal(runOut.Bytes(), &fromRun))
			for _, k := range []string{"requests", "rate", "throughput", "success", "duration", "wait", "latencies", "bytes_in", "status_codes", "earliest", "end"} {
				assert.Equal(t, fromRun[k], fromFile[k], k)
			}
			sentFile, sentRun := fromFile["sent"].(map[string]any), fromRun["sent"].(map[string]any)
			assert.Equal(t, sentRun["lag_max"], sentFile["lag_max"])
			assert.Equal(t, sentRun["rate"], sentFile["rate"])
		}},
		{"files merged", []string{"-type", "json", a, b}, func(t *testing.T, out string) {
			var r, fromRun map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &r))
			require.NoError(t, json.Unmarshal(runOut.Bytes(), &fromRun))
			n := fromRun["requests"].(float64) + 30 // about 100 from the open run, unless the machine is very busy
			assert.Equal(t, n, r["requests"])
			assert.Equal(t, map[string]any{"200": n}, r["status_codes"])
		}},
		{"text", []string{b}, func(t *testing.T, out string) {
			assert.Regexp(t, `(?m)^Requests +\[total, rate, throughput\] +30, `, out)
			assert.Regexp(t, `(?m)^Status Codes +\[code:count\] +200:30$`, out)
		}},
		{"hist", []string{"-type", "hist[0,1h]", b}, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			require.Len(t, lines, 3, out)
			assert.Regexp(t, `^Bucket +# +% +Histogram$`, lines[0])
			assert.Regexp(t, `^\[0s, +1h0m0s\] +30 +100\.00% +#{75}$`, lines[1])
			assert.Regexp(t, `^\[1h0m0s, +\+Inf\] +0 +0\.00% +$`, lines[2])
		}},
		{"hist whose first bucket is above 0", []string{"-type", "hist[1h,2h]", b}, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			require.Len(t, lines, 4, out)
			assert.Regexp(t, `^\[0s, +1h0m0s\] +30 +100\.00% +#{75}$`, lines[1], "what is below the first bucket is counted")
			assert.Regexp(t, `^\[1h0m0s, +2h0m0s\] +0 +0\.00% +$`, lines[2])
		}},
		{"hdrplot", []string{"-type", "hdrplot", b}, func(t *testing.T, out string) {
			assert.Regexp(t, `^ *Value\s+Percentile\s+TotalCount\s+1/\(1-Percentile\)`, out)
			assert.Regexp(t, `(?m)^\s+[0-9.]+\s+1\.000000\s+30\s`, out, "the last line counts every result")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), append([]string{"report"}, tt.args...), &out, &errb)
			require.Equal(t, 0, code, errb.String())
			tt.check(t, out.String())
		})
	}
}

func TestReportSubcommandErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("garbage\n"), 0o600))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.json")}, "no such file"},
		{"not results", []string{bad}, "bad.json: result 1:"},
		{"bad type", []string{"-type", "xml", bad}, "-type must be text, json, hist[...] or hdrplot"},
		{"bad buckets", []string{"-type", "hist[0,5ms,1ms]", bad}, "buckets must increase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			assert.Equal(t, exitUsage, run(t.Context(), append([]string{"report"}, tt.args...), &out, &errb))
			assert.Contains(t, errb.String(), tt.want)
		})
	}
}

func TestReportSubcommandThreshold(t *testing.T) {
	srv, _ := countingServer(t)
	b := attackTo(t, t.TempDir(), "b.json", "-n", "10", srv.URL)
	var out, errb bytes.Buffer
	assert.Equal(t, exitOK, run(t.Context(), []string{"report", "-threshold", "success>=100%,p50<1h", b}, &out, &errb), errb.String())
	errb.Reset()
	assert.Equal(t, exitThreshold, run(t.Context(), []string{"report", "-threshold", "p99<1ns", b}, &out, &errb))
	assert.Regexp(t, `^httpfutures report: threshold p99<1ns missed: p99 is .+\n$`, errb.String())
}

// The report of a results file groups errors by the same kinds as the run's own report, though
// their messages differ from request to request (here by the local port).
func TestReportGroupsErrorsByKind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			_, _ = c.Read(buf) // the request, then a reset
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
		}
	}()
	dir := t.TempDir()
	path := filepath.Join(dir, "reset.json")
	var runOut, runErr bytes.Buffer
	run(t.Context(), []string{"-o", "json", "-output", path, "-n", "20", "-c", "4", "-keepalive=false", "http://" + ln.Addr().String()}, &runOut, &runErr)
	var fromRun map[string]any
	require.NoError(t, json.Unmarshal(runOut.Bytes(), &fromRun), runErr.String())
	var out, errb bytes.Buffer
	require.Equal(t, 0, run(t.Context(), []string{"report", "-type", "json", path}, &out, &errb), errb.String())
	var fromFile map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &fromFile))
	assert.Equal(t, map[string]any{"connection reset": float64(20)}, fromRun["error_kinds"])
	assert.Equal(t, fromRun["error_kinds"], fromFile["error_kinds"])
}
