//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has spent, in user and system mode; ok is false if the
// system does not tell.
func processCPU() (cpu time.Duration, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
