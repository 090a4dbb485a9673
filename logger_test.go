package httpfutures_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// logRecords is a slog.Logger writing JSON lines to a buffer, and the records it wrote.
type logRecords struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *logRecords) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// newLogRecords returns a logger at level and the records it writes.
func newLogRecords(level slog.Level) (*slog.Logger, *logRecords) {
	r := &logRecords{}
	return slog.New(slog.NewJSONHandler(r, &slog.HandlerOptions{Level: level})), r
}

// all returns the records written, each as its JSON object.
func (r *logRecords) all(t *testing.T) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(r.buf.String()) {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

// with returns the records whose message is msg.
func (r *logRecords) with(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range r.all(t) {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// at returns the records whose message is msg, at level.
func (r *logRecords) at(t *testing.T, level slog.Level, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range r.with(t, msg) {
		if m["level"] == level.String() {
			out = append(out, m)
		}
	}
	return out
}

// A host paused by its server is logged at Info when the pause begins and when it ends, once
// however many responses extend it; a pace once however many responses tell it.
func TestLoggerPausedResumedPaced(t *testing.T) {
	ts := eventServer(t)
	host := strings.TrimPrefix(ts.URL, "http://")
	log, rec := newLogRecords(slog.LevelInfo)
	tr := newTransport(t, nil, httpfutures.WithLogger(log))

	for range 5 {
		resp, err := tr.StartRoundTrip(get(t, ts.URL+"/pace")).Result()
		require.NoError(t, err)
		resp.Body.Close()
	}
	paced := rec.with(t, "httpfutures: host paced")
	require.Len(t, paced, 1, "a pace is logged when it changes: %v", rec.all(t))
	assert.Equal(t, "INFO", paced[0]["level"])
	assert.Equal(t, host, paced[0]["host"])
	assert.Equal(t, 5.0, paced[0]["per_second"])
	assert.Equal(t, 0.0, paced[0]["folded"])
	assert.Contains(t, paced[0], "until")

	resp, err := tr.StartRoundTrip(get(t, ts.URL+"/pause")).Result()
	require.NoError(t, err)
	resp.Body.Close()
	require.Eventually(t, func() bool { return len(rec.with(t, "httpfutures: host resumed")) == 1 },
		5*time.Second, time.Millisecond, "the pause of a second ends: %v", rec.all(t))
	paused := rec.with(t, "httpfutures: host paused")
	require.Len(t, paused, 1)
	assert.Equal(t, "INFO", paused[0]["level"])
	assert.Equal(t, host, paused[0]["host"])
	resumed := rec.with(t, "httpfutures: host resumed")[0]
	assert.Equal(t, "INFO", resumed["level"])
	assert.Equal(t, host, resumed["host"])
	assert.InDelta(t, float64(time.Second), resumed["paused"], float64(900*time.Millisecond), "how long it was paused, in ns")
}

// A pause extended by responses of the host while it holds is logged at Debug, not again at Info.
func TestLoggerPauseExtended(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		all := make(chan struct{})
		rec := &sendRecorder{respond: func(*http.Request, int) *http.Response {
			i := n.Add(1)
			if i > 3 {
				return nil
			}
			if i == 3 {
				close(all)
			}
			<-all // the three are in flight together, each pausing the host longer
			time.Sleep(time.Duration(i) * time.Millisecond)
			return memResponse(http.StatusTooManyRequests, http.Header{"Retry-After": {fmt.Sprint(i)}})
		}}
		log, records := newLogRecords(slog.LevelDebug)
		tr := newTransport(t, rec, httpfutures.WithLogger(log), httpfutures.WithWorkers(3))
		var fs []*httpfutures.Future
		for range 3 { // sent together, all three answered 429
			fs = append(fs, tr.StartRoundTrip(get(t, "http://a.test/")))
		}
		require.NoError(t, httpfutures.WaitAll(t.Context(), fs...))
		time.Sleep(4 * time.Second)
		synctest.Wait()
		assert.Len(t, records.at(t, slog.LevelInfo, "httpfutures: host paused"), 1, "%v", records.all(t))
		assert.Len(t, records.at(t, slog.LevelDebug, "httpfutures: host pause extended"), 2, "%v", records.all(t))
		assert.Len(t, records.at(t, slog.LevelInfo, "httpfutures: host resumed"), 1)
		assert.Len(t, records.all(t), 4)
	})
}

// A host paused again and again is logged at Info once every 10 seconds, with the pauses folded
// since; its resumptions only where its pause was.
func TestLoggerFoldsPauses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &sendRecorder{respond: func(*http.Request, int) *http.Response {
			return memResponse(http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
		}}
		log, records := newLogRecords(slog.LevelInfo)
		tr := newTransport(t, rec, httpfutures.WithLogger(log))
		for range 25 { // a pause a second, each request after the one before has ended
			_, err := tr.StartRoundTrip(get(t, "http://a.test/")).Result()
			require.NoError(t, err)
			time.Sleep(time.Second)
			synctest.Wait()
		}
		paused := records.with(t, "httpfutures: host paused")
		require.Len(t, paused, 3, "at 0, 10 and 20 seconds: %v", records.all(t))
		for i, folded := range []float64{0, 9, 9} {
			assert.Equal(t, folded, paused[i]["folded"], "line %d", i)
		}
		assert.Len(t, records.with(t, "httpfutures: host resumed"), 3)
		assert.Len(t, records.all(t), 6)
	})
}

// An adaptive limit falling is logged at Info, with its reason; growing, at Debug only.
func TestLoggerLimitChanged(t *testing.T) {
	t.Run("fell", func(t *testing.T) {
		ts := eventServer(t)
		log, rec := newLogRecords(slog.LevelInfo)
		tr := newTransport(t, nil, httpfutures.WithLogger(log), httpfutures.WithAdaptiveHostLimit(16))
		for range 30 {
			resp, err := tr.StartRoundTrip(get(t, ts.URL+"/shed")).Result()
			require.NoError(t, err)
			resp.Body.Close()
		}
		require.NoError(t, tr.Close()) // its workers have told all
		fell := rec.with(t, "httpfutures: host limit fell")
		require.Len(t, fell, 1, "the 503s lowered the limit, again and again, in a line: %v", rec.all(t))
		assert.Equal(t, "INFO", fell[0]["level"])
		assert.Equal(t, "overloaded", fell[0]["reason"])
		assert.Equal(t, 0.0, fell[0]["folded"])
		assert.Less(t, fell[0]["to"], fell[0]["from"])
		assert.Len(t, rec.all(t), 1, "nothing else is logged")
	})
	t.Run("grew", func(t *testing.T) {
		for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
			synctest.Test(t, func(t *testing.T) {
				rec := &sendRecorder{respond: func(*http.Request, int) *http.Response {
					time.Sleep(10 * time.Millisecond)
					return nil
				}}
				log, records := newLogRecords(level)
				tr := newTransport(t, rec, httpfutures.WithLogger(log),
					httpfutures.WithAdaptiveHostLimitConfig(httpfutures.AdaptiveLimit{Max: 8, Initial: 1}))
				var fs []*httpfutures.Future
				for range 200 {
					fs = append(fs, tr.StartRoundTrip(get(t, "http://a.test/")))
				}
				require.NoError(t, httpfutures.WaitAll(t.Context(), fs...))
				require.NoError(t, tr.Close()) // its workers have told all
				grew := records.with(t, "httpfutures: host limit grew")
				if level == slog.LevelInfo {
					assert.Empty(t, records.all(t), "growth is not logged at Info")
					return
				}
				require.NotEmpty(t, grew, "%v", records.all(t))
				assert.Equal(t, "DEBUG", grew[0]["level"])
				assert.Equal(t, "grew", grew[0]["reason"])
				assert.Equal(t, "a.test", grew[0]["host"])
			})
		}
	})
}

// A failing Limiter is logged at Warn at most once per host every 10 seconds: the line after
// says how many failures were folded since; each is logged at Debug.
func TestLoggerFoldsLimiterFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, records := newLogRecords(slog.LevelDebug)
		refused := errors.New("no quota")
		tr := newTransport(t, &sendRecorder{}, httpfutures.WithLogger(log), httpfutures.WithLimiter(failingLimiter{refused}))
		fail := func(host string, n int) {
			for range n {
				_, err := tr.StartRoundTrip(get(t, "http://"+host+"/")).Result()
				require.ErrorIs(t, err, refused)
			}
			synctest.Wait() // the failure is told after the request has failed
		}
		fail("a.test", 50)
		fail("b.test", 3)
		time.Sleep(9 * time.Second)
		fail("a.test", 10)
		lines := records.at(t, slog.LevelWarn, "httpfutures: limiter failed")
		require.Len(t, lines, 2, "a line per host: %v", records.all(t))
		assert.Len(t, records.at(t, slog.LevelDebug, "httpfutures: limiter failed"), 49+2+10, "the others at Debug")
		time.Sleep(time.Second)
		fail("a.test", 1)
		lines = records.at(t, slog.LevelWarn, "httpfutures: limiter failed")
		require.Len(t, lines, 3, "the next line after 10 seconds")
		for i, want := range []struct {
			host   string
			folded float64
		}{{"a.test", 0}, {"b.test", 0}, {"a.test", 59}} {
			assert.Equal(t, "WARN", lines[i]["level"])
			assert.Equal(t, want.host, lines[i]["host"], "line %d", i)
			assert.Equal(t, want.folded, lines[i]["folded"], "line %d", i)
			assert.Contains(t, lines[i]["error"], "no quota")
		}
	})
}

// Requests, retried or not, log nothing above Debug; at Debug, each retry is a line.
func TestLoggerNothingPerRequest(t *testing.T) {
	for _, tt := range []struct {
		level slog.Level
		lines int
	}{{slog.LevelInfo, 0}, {slog.LevelDebug, 20}} {
		t.Run(tt.level.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &sendRecorder{respond: func(_ *http.Request, n int) *http.Response {
					if n%2 == 0 {
						return memResponse(http.StatusBadGateway, nil)
					}
					return nil
				}}
				log, records := newLogRecords(tt.level)
				tr := newTransport(t, rec, httpfutures.WithLogger(log),
					httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: time.Millisecond, MaxWait: time.Millisecond,
						Budget: httpfutures.RetryBudget{Ratio: math.Inf(1)}}))
				for i := range 20 {
					resp, err := tr.StartRoundTrip(get(t, fmt.Sprintf("http://h%d.test/", i))).Result()
					require.NoError(t, err)
					assert.Equal(t, http.StatusOK, resp.StatusCode)
				}
				all := records.all(t)
				require.Len(t, all, tt.lines, "%v", all)
				for _, m := range all {
					assert.Equal(t, "httpfutures: request retried", m["msg"])
					assert.Equal(t, 502.0, m["status"])
					assert.Equal(t, 1.0, m["attempt"])
					assert.Equal(t, "GET", m["method"])
				}
			})
		})
	}
}

// A nil logger logs nothing, and is no error.
func TestLoggerNil(t *testing.T) {
	ts := eventServer(t)
	tr := newTransport(t, nil, httpfutures.WithLogger(nil))
	resp, err := tr.StartRoundTrip(get(t, ts.URL+"/pause")).Result()
	require.NoError(t, err)
	assert.Equal(t, "ok", body(t, resp))
}

// A host's circuit breaker opening is a warning, with what it counted; its closing again is
// Info, and the half-open spell between is Debug.
func TestLoggerCircuitChanged(t *testing.T) {
	log, records := newLogRecords(slog.LevelDebug)
	var fail atomic.Bool
	fail.Store(true)
	next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if fail.Load() {
			return &http.Response{StatusCode: http.StatusInternalServerError, Body: http.NoBody, Request: r}, nil
		}
		return noopTransport{}.RoundTrip(r)
	})
	tr := newTransport(t, next, httpfutures.WithLogger(log),
		httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{MinRequests: 4, Cooldown: 50 * time.Millisecond}))
	for range 4 {
		tr.StartRoundTrip(get(t, "http://a.test/")).Result()
	}
	require.Equal(t, httpfutures.CircuitOpen, tr.HostStats("a.test").Circuit, "counted before the fourth resolved")
	_, err := tr.StartRoundTrip(get(t, "http://a.test/")).Result()
	require.ErrorIs(t, err, httpfutures.ErrCircuitOpen)
	fail.Store(false)
	time.Sleep(60 * time.Millisecond)
	_, err = tr.StartRoundTrip(get(t, "http://a.test/")).Result() // the probe
	require.NoError(t, err)
	require.NoError(t, tr.Close()) // a change is told by the worker, after its Future resolved
	opened := records.at(t, slog.LevelWarn, "httpfutures: host circuit opened")
	require.Len(t, opened, 1, "%v", records.all(t))
	assert.Equal(t, "a.test", opened[0]["host"])
	assert.Equal(t, float64(4), opened[0]["failures"])
	assert.Equal(t, float64(4), opened[0]["attempts"])
	assert.Len(t, records.at(t, slog.LevelDebug, "httpfutures: host circuit half-open"), 1)
	assert.Len(t, records.at(t, slog.LevelInfo, "httpfutures: host circuit closed"), 1)
}
