package main

import (
	"runtime"
	"sync"
	"time"
)

// The open model sends on a timetable, and at the rates one process keeps, one core is enough
// for it. Each Go processor more lets the runtime wake one more thread for the goroutines a
// request readies (the pacer, a worker, the connection's reader and writer), and on a virtual
// machine a thread woken costs tens of microseconds of CPU, about what the request itself costs.
// So the open model starts on one processor (GOMAXPROCS 1) and takes back all it had as soon as
// it uses most of that core: the generator then needs them, and its sends would fall late.
const (
	procsInterval = 100 * time.Millisecond // how often the governor looks at the process's CPU
	procsBusy     = 0.8                    // of one core over an interval: the generator needs more
)

// governProcs lets the open model start on one processor. Tests that run attacks beside their
// servers, in one process, turn it off.
var governProcs = true

// needsProcs reports whether cpu, the CPU time the process spent during wall, is most of one core.
func needsProcs(cpu, wall time.Duration) bool {
	return wall > 0 && float64(cpu) >= procsBusy*float64(wall)
}

// startProcs sets the Go processors a run has: n if it is positive; for the open model (open)
// with n zero, one, until the process uses most of that core, and then all it had. The function
// it returns stops the watch, if any, and sets the count the process had again (as a count set
// by hand: it no longer follows changes of the CPU limit, as the runtime's default does); it
// returns once the watching goroutine has, and may be called more than once.
func startProcs(n int, open bool) (stop func()) {
	had := runtime.GOMAXPROCS(0)
	if n > 0 {
		runtime.GOMAXPROCS(n)
		return func() { runtime.GOMAXPROCS(had) }
	}
	cpu, ok := processCPU()
	if !open || !governProcs || had == 1 || !ok {
		return func() {}
	}
	runtime.GOMAXPROCS(1)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(procsInterval)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-tick.C:
				used, _ := processCPU()
				if needsProcs(used-cpu, now.Sub(last)) {
					runtime.GOMAXPROCS(had)
					return
				}
				cpu, last = used, now
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-done
			runtime.GOMAXPROCS(had)
		})
	}
}
