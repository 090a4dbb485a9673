package loadgen

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPacerWait is the pacer alone on the open model's timetable at 5,000 requests per
// second: the CPU each wait costs the process, and how late it wakes, with fine waits and with
// the Go timer alone (-precise=false). On a virtual machine a wake-up on time is what sending on
// time costs: the Go timer wakes about once a millisecond and lets what fell due meanwhile go in
// a burst, a few requests a wake-up; a fine wait wakes once per request.
func BenchmarkPacerWait(b *testing.B) {
	for _, fine := range []bool{true, false} {
		name := "fine"
		if !fine {
			name = "go-timer"
		}
		b.Run(name, func(b *testing.B) {
			p := newPacer(fine)
			defer p.stop()
			const interval = time.Second / 5000
			lates := make([]time.Duration, 0, b.N)
			cpu0, _ := rusageCPU()
			start := time.Now()
			b.ResetTimer()
			for i := range b.N {
				due := start.Add(time.Duration(i) * interval)
				if !p.waitUntil(b.Context(), due) {
					b.Fatal("the pacer stopped")
				}
				lates = append(lates, time.Since(due))
			}
			b.StopTimer()
			slices.Sort(lates)
			cpu, _ := rusageCPU()
			b.ReportMetric(float64((cpu-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/wait")
			b.ReportMetric(float64(lates[len(lates)/2]), "late-p50-ns")
		})
	}
}

// rusageCPU is the CPU time the process has spent, in user and system mode.
func rusageCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
