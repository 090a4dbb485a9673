package main

import (
	"runtime"
	"syscall"
	"time"
)

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK: the slack, in nanoseconds, that the kernel may
// add to the sleeps of the calling thread (50µs by default).
const prSetTimerSlack = 29

// finePacing is below how long a wait the pacer leaves the Go timers, whose wake-ups may come a
// millisecond late when the process is idle, for a nanosleep of the pacer's own thread, which
// comes within tens of microseconds.
const finePacing = 2 * time.Millisecond

// lockPacer gives the calling goroutine a thread of its own with the least timer slack, for the
// fine waits of sleepUntil. The returned function gives the thread back.
func lockPacer() (unlock func()) {
	runtime.LockOSThread()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1, 0) // best effort
	// The thread is not given back to the runtime's pool with its slack changed: a locked
	// goroutine that ends without unlocking takes its thread with it.
	return func() {}
}

// sleepFine waits d, which is less than finePacing, on the calling thread.
func sleepFine(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil) // EINTR: a little early, which the caller checks
}
