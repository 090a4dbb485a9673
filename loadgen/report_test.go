package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// sampleMetrics records 10 requests due 100ms apart and sent 10µs after: 8 answered 200 with
// 1..8ms latency, one 503 and one refused connection.
func sampleMetrics() (*Metrics, time.Time) {
	m := NewMetrics()
	t0 := time.Date(2025, 3, 15, 14, 30, 0, 0, time.UTC)
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/", Err: &net.OpError{
		Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	for i := range 10 {
		r := Result{
			Seq: uint64(i), Code: 200, Timestamp: t0.Add(time.Duration(i) * 100 * time.Millisecond),
			Latency: time.Duration(i+1) * time.Millisecond, BytesIn: 100, BytesOut: 10, Lag: 10 * time.Microsecond,
		}
		kind := ""
		switch i {
		case 8:
			r.Code = 503
		case 9:
			r.Code, r.BytesIn, r.Error, kind = 0, 0, refused.Error(), ErrorKind(refused)
			r.Lag = 2 * time.Millisecond
		}
		m.add(&r, kind)
	}
	return m, t0
}

func TestReportJSONHasVegetaFields(t *testing.T) {
	m, t0 := sampleMetrics()
	m.addDropped(3)
	var buf bytes.Buffer
	require.NoError(t, m.Report().WriteJSON(&buf))

	var got map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))

	// vegeta report -type=json fields, and the additions.
	for _, k := range []string{
		"latencies", "bytes_in", "bytes_out", "earliest", "latest", "end", "duration", "wait",
		"requests", "rate", "throughput", "success", "status_codes", "errors",
		"sent", "error_kinds",
	} {
		assert.Contains(t, got, k)
	}
	assert.Equal(t, []string{"50th", "90th", "95th", "99.9th", "99th", "max", "mean", "min", "total"},
		sortedKeys(t, got["latencies"]))
	assert.Equal(t, []string{"mean", "total"}, sortedKeys(t, got["bytes_in"]))
	assert.Equal(t, []string{"mean", "total"}, sortedKeys(t, got["bytes_out"]))

	assert.Equal(t, float64(10), got["requests"])
	assert.Equal(t, 0.8, got["success"])
	assert.Equal(t, map[string]any{"200": float64(8), "503": float64(1), "0": float64(1)}, got["status_codes"])
	assert.Equal(t, []any{"connection refused: Get \"http://127.0.0.1:1/\": dial tcp: connect: connection refused"}, got["errors"])
	assert.Equal(t, map[string]any{"connection refused": float64(1)}, got["error_kinds"])

	// Durations in nanoseconds; timestamps in RFC 3339. The duration runs from the first send
	// (10µs after the first due time) to the last (2ms after the last).
	assert.Equal(t, float64(902*time.Millisecond-10*time.Microsecond), got["duration"])
	assert.Equal(t, float64(8*time.Millisecond), got["wait"]) // the last one sent ends 8ms later
	assert.Equal(t, t0.Format(time.RFC3339Nano), got["earliest"])
	assert.Equal(t, t0.Add(900*time.Millisecond).Format(time.RFC3339Nano), got["latest"])
	assert.Equal(t, t0.Add(910*time.Millisecond).Format(time.RFC3339Nano), got["end"])
	// vegeta's definitions over the send times: requests over duration, successes over
	// duration plus wait.
	assert.InDelta(t, 10/(0.902-0.00001), got["rate"], 1e-6)
	assert.InDelta(t, 8/(0.91-0.00001), got["throughput"], 1e-6)

	lat := got["latencies"].(map[string]any)
	assert.Equal(t, float64(55*time.Millisecond), lat["total"])
	assert.Equal(t, float64(5500*time.Microsecond), lat["mean"])
	assert.Equal(t, float64(time.Millisecond), lat["min"])
	assert.Equal(t, float64(10*time.Millisecond), lat["max"])
	assert.InEpsilon(t, float64(5*time.Millisecond), lat["50th"], 0.002)
	assert.InEpsilon(t, float64(9*time.Millisecond), lat["90th"], 0.002)
	assert.InEpsilon(t, float64(10*time.Millisecond), lat["99th"], 0.002)
	assert.Equal(t, map[string]any{"total": float64(900), "mean": float64(90)}, got["bytes_in"])
	assert.Equal(t, map[string]any{"total": float64(100), "mean": float64(10)}, got["bytes_out"])

	sent := got["sent"].(map[string]any)
	assert.InDelta(t, 10/(0.902-0.00001), sent["rate"], 1e-6, "from the real send times")
	assert.InEpsilon(t, float64(10*time.Microsecond), sent["lag_50th"], 0.002)
	assert.Equal(t, float64(2*time.Millisecond), sent["lag_max"])
	assert.Equal(t, float64(1), sent["late"])
	assert.Equal(t, float64(3), sent["dropped"])
}

func TestReportJSONEmpty(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, NewMetrics().Report().WriteJSON(&buf))
	var got map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	assert.Equal(t, float64(0), got["requests"])
	assert.Equal(t, []any{}, got["errors"], "an empty list, not null")
	assert.Equal(t, map[string]any{}, got["status_codes"])
	assert.NotContains(t, got, "model")
	assert.NotContains(t, got, "target_rate")
}

func sortedKeys(t *testing.T, v any) []string {
	t.Helper()
	obj, ok := v.(map[string]any)
	require.True(t, ok, "want an object, got %T", v)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestReportText(t *testing.T) {
	m, _ := sampleMetrics()
	m.addDropped(1)
	r := m.Report()
	r.Interrupted = true
	r.Model, r.TargetRate, r.Asked, r.AskedRate = "open", "10", 11, 10
	var buf bytes.Buffer
	require.NoError(t, r.WriteText(&buf))
	got := buf.String()

	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	require.Len(t, lines, 13, got)
	// What was sent first, what was asked beside it.
	assert.Regexp(t, `^Requests +\[total, rate, throughput\] +10, 11\.09, 8\.79$`, lines[0])
	assert.Regexp(t, `^Asked +\[total, rate, dropped\] +11, 10\.00, 1 \(the timetable: -rate 10\)$`, lines[1])
	lines = slices.Delete(lines, 1, 2)
	assert.Regexp(t, `^Target +\[model\] +open \(latency from each request's due time\)$`, lines[1])
	assert.Regexp(t, `^Duration +\[total, attack, wait\] +909\.99ms, 901\.99ms, 8ms$`, lines[2])
	assert.Regexp(t, `^Latencies +\[min, mean, 50, 90, 95, 99, 99\.9, max\] +1ms, 5\.5ms, 5\.00\dms, 9\.00\dms, 10ms, 10ms, 10ms, 10ms$`, lines[3])
	assert.Regexp(t, `^Sent +\[lag 50, 99, max, late, dropped\] +10\.0\dµs, 2ms, 2ms, 1, 1$`, lines[4])
	assert.Regexp(t, `^Bytes In +\[total, mean\] +900, 90\.00$`, lines[5])
	assert.Regexp(t, `^Bytes Out +\[total, mean\] +100, 10\.00$`, lines[6])
	assert.Regexp(t, `^Success +\[ratio\] +80\.00%$`, lines[7])
	assert.Regexp(t, `^Status Codes +\[code:count\] +0:1  200:8  503:1$`, lines[8])
	assert.Equal(t, "Interrupted: sending stopped early on a signal", lines[9])
	assert.Equal(t, "Error Set:", lines[10])
	assert.Equal(t, `connection refused: 1 (e.g. Get "http://127.0.0.1:1/": dial tcp: connect: connection refused)`, lines[11])
}

func TestReportTextClosedModel(t *testing.T) {
	m := NewMetrics()
	m.add(&Result{Timestamp: time.Now(), Latency: time.Millisecond, Code: 200}, "")
	r := m.Report()
	r.Model = "closed"
	var buf bytes.Buffer
	require.NoError(t, r.WriteText(&buf))
	assert.Contains(t, buf.String(), "closed, as fast as the workers go (latency from queueing)")
	assert.NotContains(t, buf.String(), "Sent", "no timetable, no lag")
	assert.True(t, strings.HasSuffix(buf.String(), "Error Set:\n"), buf.String())
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestErrorKind(t *testing.T) {
	wrap := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://127.0.0.1:9/", Err: err}
	}
	opErr := func(op string, errno syscall.Errno) error {
		return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"context deadline", wrap(context.DeadlineExceeded), kindTimeout},
		{"i/o deadline", wrap(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), kindTimeout},
		{"net.Error timeout", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}), kindTimeout},
		{"dns timeout", &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true}, kindTimeout},
		{"refused", wrap(opErr("connect", syscall.ECONNREFUSED)), kindRefused},
		{"reset", wrap(opErr("read", syscall.ECONNRESET)), kindReset},
		{"broken pipe", opErr("write", syscall.EPIPE), kindReset},
		{"eof", wrap(io.EOF), kindClosed},
		{"unexpected eof", fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), kindClosed},
		{"dns", wrap(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}), kindDNS},
		{"canceled", wrap(context.Canceled), kindCanceled},
		{"transport closed", fmt.Errorf("queued: %w", httpfutures.ErrClosed), kindShutdown},
		{"other", errors.New("malformed HTTP response"), kindOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ErrorKind(tt.err))
		})
	}
}

func TestFmtDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{850 * time.Nanosecond, "850ns"},
		{123456 * time.Nanosecond, "123.46µs"},
		{12345678 * time.Nanosecond, "12.346ms"},
		{1234567890 * time.Nanosecond, "1.235s"},
		{123456 * time.Millisecond, "2m3.5s"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, FormatDuration(tt.in), "%d", int64(tt.in))
	}
}
