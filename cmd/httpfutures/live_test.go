package main

import (
	"bytes"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the controlling side and the terminal a program writes to.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	if runtime.GOOS != "linux" {
		t.Skip("pseudo-terminals are opened the Linux way")
	}
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { ctl.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0)) // unlock
	n, err := unix.IoctlGetUint32(int(ctl.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	tty, err = os.OpenFile(filepath.Join("/dev/pts", strconv.Itoa(int(n))), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// On a terminal, the live view shows a status line a second and, under it, charts of the rate
// and the p99 of each second; the report still goes to stdout.
func TestLiveViewOnATerminal(t *testing.T) {
	ctl, tty := openPTY(t)
	require.True(t, isTerminal(tty))
	srv, _ := countingServer(t)

	screen := make(chan string, 1)
	go func() {
		var all strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := ctl.Read(buf)
			all.Write(buf[:n])
			if err != nil || strings.Contains(all.String(), "END") {
				screen <- all.String()
				return
			}
		}
	}()
	var out bytes.Buffer
	code := run(t.Context(), []string{"-rate", "200", "-duration", "2500ms", srv.URL}, &out, tty)
	_, _ = tty.WriteString("END")

	require.Equal(t, 0, code)
	// 500 fall due; on a busy machine (the race detector) the last may be dropped at the end.
	assert.Regexp(t, `(?m)^Requests +\[total, rate, throughput\] +(500|49\d), `, out.String())
	var got string
	select {
	case got = <-screen:
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal was not read")
	}
	assert.Regexp(t, `\x1b\[K +1\.\ds  \d+ done  \d+ req/s \(target 200\)  \d+ in flight  p50 .+  p99 .+  0 errors`, got)
	// Two seconds drawn: the charts have a column each.
	charts := regexp.MustCompile(`req/s ([▁▂▃▄▅▆▇█ ]+?) +max (\d+)\r?\n\r\x1b\[Kp99   ([▁▂▃▄▅▆▇█ ]+?) +max `).FindAllStringSubmatch(got, -1)
	require.GreaterOrEqual(t, len(charts), 2, "%q", got)
	last := charts[len(charts)-1]
	assert.GreaterOrEqual(t, utf8.RuneCountInString(last[1]), 2)
	assert.Equal(t, utf8.RuneCountInString(last[1]), utf8.RuneCountInString(last[3]), "a column a second in each")
	peak, _ := strconv.Atoi(last[2])
	assert.InDelta(t, 200, peak, 60, "the rate chart's top is the rate of a second")
	// The view is erased at the end, after its last frame (a warning may follow it).
	assert.Greater(t, strings.LastIndex(got, "\x1b[2A\x1b[J"), strings.LastIndex(got, "p99   "), "the view is erased at the end: %q", got[max(len(got)-80, 0):])
}

// Elsewhere, nothing: not on a pipe, nor on /dev/null, a character device.
func TestLiveViewElsewhere(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	assert.Nil(t, newLiveView(null))

	srv, _ := countingServer(t)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	var out bytes.Buffer
	code := run(t.Context(), []string{"-rate", "100", "-duration", "1200ms", srv.URL}, &out, w)
	require.NoError(t, w.Close())
	require.Equal(t, 0, code)
	rest, err := io.ReadAll(r)
	require.NoError(t, err)
	// A busy machine may end the run with a warning; the view itself draws nothing.
	assert.NotContains(t, string(rest), "\x1b[", "no view on stderr when it is not a terminal")
	assert.NotContains(t, string(rest), "req/s")
}

func TestSparkline(t *testing.T) {
	assert.Equal(t, "▁▂▃▄▅▆▇█", sparkline([]float64{0, 1, 2, 3, 4, 5, 6, 7}, 7))
	assert.Equal(t, "▁ █", sparkline([]float64{0, math.NaN(), 10}, 10), "a second with no answer is a gap")
	assert.Equal(t, "▁▁", sparkline([]float64{0, 0}, 0))
}

// The charts keep the last minute, a column a second.
func TestLiveChartsKeepAMinute(t *testing.T) {
	v := &liveView{}
	for i := range liveWindow + 10 {
		v.frame(liveStats{rate: float64(i), hasLatency: true, p99: time.Duration(i) * time.Millisecond})
	}
	assert.Len(t, v.rates, liveWindow)
	assert.Equal(t, float64(liveWindow+9), v.rates[liveWindow-1])
	f := v.frame(liveStats{rate: 1})
	assert.True(t, strings.HasPrefix(f, "\r\x1b[2A\x1b[J"), "each frame draws over the last")
	assert.Contains(t, f, "max 69")
}
