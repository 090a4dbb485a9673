//go:build !unix

package otelfutures_test

import "time"

// cpuTime is zero where the process's CPU time is not read: the benchmarks report no CPU time.
func cpuTime() time.Duration { return 0 }
