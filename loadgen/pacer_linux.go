package loadgen

import (
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// finePacing is below how long a wait the pacer leaves the Go timers, whose wake-ups may come a
// millisecond late when the process is idle (the runtime's poller waits in whole milliseconds),
// for a timerfd: a file that the kernel makes readable at the time set, to the nanosecond, and
// that the runtime's poller waits on with the connections, so that it wakes the pacer on time.
const finePacing = 2 * time.Millisecond

// fineTimer is a timerfd read through the runtime's poller. Its zero value is not ready: use
// newFineTimer.
//
// It sets and reads the timer with raw system calls, which the runtime does not see: neither
// blocks, and a system call made the usual way wakes the runtime's monitor thread (sysmon) when
// it sleeps, which then polls every 20 µs for a millisecond. That halves the CPU of a wait
// (BenchmarkPacerWait); in a run, the connections' own system calls wake it anyway.
type fineTimer struct {
	f   *os.File
	rc  syscall.RawConn
	buf [8]byte
}

func newFineTimer() (*fineTimer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &fineTimer{f: f, rc: rc}, nil
}

// sleep waits d, which is less than finePacing.
func (t *fineTimer) sleep(d time.Duration) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	var errno syscall.Errno
	err := t.rc.Control(func(fd uintptr) { // the file stays open meanwhile
		_, _, errno = unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	})
	if err != nil || errno != 0 {
		time.Sleep(d)
		return
	}
	// The count of expirations is read once the poller says the timer fired; an error ends the
	// wait early.
	_ = t.rc.Read(func(fd uintptr) bool {
		_, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
		return errno != unix.EAGAIN
	})
}

func (t *fineTimer) close() { _ = t.f.Close() }
