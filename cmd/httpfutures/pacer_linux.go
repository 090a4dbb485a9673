package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// finePacing is below how long a wait the pacer leaves the Go timers, whose wake-ups may come a
// millisecond late when the process is idle (the runtime's poller waits in whole milliseconds),
// for a timerfd: a file that the kernel makes readable at the time set, to the nanosecond, and
// that the runtime's poller waits on with the connections, so that it wakes the pacer on time.
const finePacing = 2 * time.Millisecond

// fineTimer is a timerfd read through the runtime's poller. Its zero value is not ready: use
// newFineTimer.
type fineTimer struct {
	f   *os.File
	fd  int
	buf [8]byte
}

func newFineTimer() (*fineTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &fineTimer{f: os.NewFile(uintptr(fd), "timerfd"), fd: fd}, nil
}

// sleep waits d, which is less than finePacing.
func (t *fineTimer) sleep(d time.Duration) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		time.Sleep(d)
		return
	}
	_, _ = t.f.Read(t.buf[:]) // the count of expirations; an error ends the wait early
}

func (t *fineTimer) close() { _ = t.f.Close() }
