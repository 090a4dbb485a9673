package main

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures/loadgen"
)

func readSeqs(t *testing.T, path string) map[uint64]time.Time {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	due := map[uint64]time.Time{}
	require.NoError(t, loadgen.ReadResults(f, path, func(r *loadgen.Result) { due[r.Seq] = r.Timestamp }))
	return due
}

func checkTimetable(t *testing.T, rep map[string]any, due map[uint64]time.Time, n int, offset func(seq uint64) time.Duration) {
	t.Helper()
	sent := rep["sent"].(map[string]any)
	assert.Equal(t, float64(n), rep["requests"].(float64)+sent["dropped"].(float64), "each request due was sent or dropped")
	assert.Equal(t, float64(len(due)), rep["requests"])
	t0, ok := due[0]
	require.True(t, ok, "request 0 was sent")
	for seq, ts := range due {
		require.InDelta(t, offset(seq), ts.Sub(t0), float64(time.Microsecond), "request %d", seq)
	}
}

func TestRunOpenModelKeepsTheRate(t *testing.T) {
	srv, hits := countingServer(t)
	path := filepath.Join(t.TempDir(), "r.json")
	rate, n := strconv.Itoa(openRate), int(openRate*openSpan/time.Second)

	code, rep, stderr := runJSON(t, t.Context(), "-rate", rate, "-duration", openSpan.String(), "-output", path, srv.URL)

	require.Equal(t, 0, code, stderr)
	sent := rep["sent"].(map[string]any)
	t.Logf("rate %.1f/s, sent at %.1f/s, p50 %v, max %v, send lag p99 %vns, dropped %v", rep["rate"], sent["rate"],
		latency(t, rep, "50th"), latency(t, rep, "max"), sent["lag_99th"], sent["dropped"])
	// Request i is due at i/openRate s, and those due before openSpan are sent, or dropped if
	// the machine is so busy that they could not be by the end: n in all.
	checkTimetable(t, rep, readSeqs(t, path), n, func(seq uint64) time.Duration { return time.Duration(seq) * time.Second / openRate })
	assert.Equal(t, float64(hits.Load()), rep["requests"])
	assert.Equal(t, "open", rep["model"])
	assert.Equal(t, rate, rep["target_rate"])
	// The rate is what was sent, over the span of the real send times; the timetable's is
	// beside it, exact.
	assert.Equal(t, sent["rate"], rep["rate"])
	assert.InDelta(t, openRate, rep["rate"], openRate/10)
	assert.Equal(t, float64(n), rep["asked_requests"])
	assert.Equal(t, float64(openRate), rep["asked_rate"])
}

func TestRunLatencyCountsFromScheduledTime(t *testing.T) {
	const stall = 200 * time.Millisecond
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 10 { // the 10th request stalls the only worker
			time.Sleep(stall)
		}
	}))
	defer srv.Close()

	// 100 req/s with one worker: 20 requests fall due while the 10th is stalled. Measured from
	// when they were sent, only the stalled one would be slow (the 98th percentile); measured
	// from their scheduled time, the ones queued behind it carry the stall too.
	code, rep, stderr := runJSON(t, t.Context(), "-rate", "100", "-n", "60", "-max-workers", "1", srv.URL)

	require.Equal(t, 0, code, stderr)
	assert.Equal(t, float64(60), rep["requests"])
	assert.GreaterOrEqual(t, latency(t, rep, "max"), stall)
	assert.GreaterOrEqual(t, latency(t, rep, "90th"), stall/2,
		"the requests queued behind the stall must show it")
}

func TestRunOpenModelInterruptedStillReports(t *testing.T) {
	srv, hits := countingServer(t)

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	code, rep, stderr := runJSON(t, ctx, "-rate", "200", "-duration", "1m", srv.URL)

	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, true, rep["interrupted"])
	requests := rep["requests"].(float64)
	// About 60 sent in 300ms, and what was queued ahead of its time (at most 100ms more).
	assert.Greater(t, requests, float64(20))
	assert.Less(t, requests, float64(200))
	assert.Equal(t, float64(hits.Load()), requests)
	assert.NotContains(t, rep, "not_sent", "what was queued was sent")
}

func TestRunDurationBoundsTheRun(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()

	// 8 workers at 50ms a request send at most 160/s of the 500/s asked for.
	start := time.Now()
	code, rep, stderr := runJSON(t, t.Context(), "-rate", "500", "-duration", "500ms", "-max-workers", "8", srv.URL)
	elapsed := time.Since(start)

	assert.Equal(t, 0, code, stderr)
	assert.Less(t, elapsed, 500*time.Millisecond+400*time.Millisecond, "the duration and one request in flight, with room for a busy machine")
	requests := rep["requests"].(float64)
	dropped := rep["sent"].(map[string]any)["dropped"].(float64)
	assert.Equal(t, float64(hits.Load()), requests)
	assert.LessOrEqual(t, requests, float64(8*11), "at most 8 workers' worth of 50ms requests in 500ms")
	assert.Equal(t, float64(250), requests+dropped, "every request due in 500ms is sent or dropped")
	// What was sent is the rate, never the 500/s asked, which stands beside it; the warning
	// names one cause, the workers, with the count that would keep up.
	assert.Less(t, rep["rate"], float64(8/0.05)*1.3, "the rate 8 workers of 50ms can send")
	assert.Equal(t, float64(500), rep["asked_rate"])
	assert.Equal(t, float64(250), rep["asked_requests"])
	assert.Regexp(t, `^httpfutures: warning: the generator, not the server, limited the run: the workers: at the server's mean latency of 5\d\.\d+ms, 8 workers send at most 1[0-9]{2} req/s, below the 500 req/s asked; 3\d workers \(-max-workers\) would keep up\n$`, stderr)
}

// A rate far past what the generator sends is reported as asked, beside the rate sent: a
// billion a second asked is not a billion sent.
func TestRunUnreachableRateReportsWhatWasSent(t *testing.T) {
	srv, _ := countingServer(t)
	start := time.Now()
	var out, errb bytes.Buffer

	code := run(t.Context(), []string{"-rate", "1e9", "-duration", "100ms", "-max-workers", "8", srv.URL}, &out, &errb)

	assert.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, 0, code, errb.String())
	m := regexp.MustCompile(`(?m)^Requests +\[total, rate, throughput\] +(\d+), ([\d.]+), [\d.]+\n^Asked +\[total, rate, dropped\] +100000000, 1000000000\.00, (\d+) \(the timetable: -rate 1e9\)$`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	sent, _ := strconv.ParseFloat(m[1], 64)
	rate, _ := strconv.ParseFloat(m[2], 64)
	dropped, _ := strconv.ParseFloat(m[3], 64)
	assert.Equal(t, 1e8, sent+dropped, "every request due in 100ms at 1e9/s is sent or dropped")
	assert.Less(t, rate, 1e6, "the rate is what was sent")
	assert.Contains(t, errb.String(), "warning: the generator, not the server, limited the run: the ")
}

func TestRunRamp(t *testing.T) {
	srv, _ := countingServer(t)
	path := filepath.Join(t.TempDir(), "r.json")

	code, rep, stderr := runJSON(t, t.Context(), "-rate", "0:1000", "-duration", "1s", "-output", path, srv.URL)

	require.Equal(t, 0, code, stderr)
	checkTimetable(t, rep, readSeqs(t, path), 500, func(seq uint64) time.Duration {
		return time.Duration(math.Sqrt(float64(seq)/500) * float64(time.Second))
	})
}
