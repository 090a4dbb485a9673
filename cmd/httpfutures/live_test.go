package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

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

// On a terminal, the live view shows a line a second; the report still goes to stdout.
func TestLiveViewOnATerminal(t *testing.T) {
	ctl, tty := openPTY(t)
	require.True(t, isTerminal(tty))
	srv, _ := countingServer(t)

	lines := make(chan string, 16)
	go func() {
		r := bufio.NewReader(ctl)
		for {
			s, err := r.ReadString('\r')
			if s != "" {
				lines <- s
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	var out bytes.Buffer
	code := run(t.Context(), []string{"-rate", "200", "-duration", "1500ms", srv.URL}, &out, tty)

	require.Equal(t, 0, code)
	assert.Regexp(t, `(?m)^Requests +\[total, rate, throughput\] +300, `, out.String())
	var seen []string
	timeout := time.After(5 * time.Second)
	for len(seen) < 1 {
		select {
		case l := <-lines:
			if strings.Contains(l, "req/s") {
				seen = append(seen, l)
			}
		case <-timeout:
			t.Fatalf("no live line in 5s; got %q", seen)
		}
	}
	assert.Regexp(t, `\x1b\[K +1\.0s  \d+ done  \d+ req/s \(target 200\)  \d+ in flight  p50 .+  p99 .+  0 errors`, seen[0])
}

// Elsewhere, nothing: not even on /dev/null, a character device.
func TestLiveViewElsewhere(t *testing.T) {
	srv, _ := countingServer(t)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer null.Close()
	a, err := newAttacker(&config{targets: []*target{{method: "GET", url: srv.URL, weight: 1}}, workers: 1, requests: 1, timeout: time.Second, client: clientConfig{keepalive: true, timeout: time.Second}}, nil)
	require.NoError(t, err)
	stop := startLive(null, a)
	stop()
	assert.Nil(t, a.m.recent, "the view did not start")
	_ = a.run(t.Context(), null)
}
