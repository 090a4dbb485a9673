//go:build !unix

package main

import "time"

// processCPU is the CPU time the process has spent; this system does not tell it.
func processCPU() (cpu time.Duration, ok bool) { return 0, false }
