package main

import (
	"context"
	"time"
)

// A pacer waits for the due times of the open model. Go's timers may fire a millisecond late
// when the process has nothing else to do, which at thousands of requests per second would be
// several requests' worth of lateness; the pacer sleeps on its timer only until shortly before a
// due time and the rest of the way with sleepFine. Its zero value is not ready: use newPacer,
// from the goroutine that will wait, and stop it there.
type pacer struct {
	timer  *time.Timer
	fine   bool // wait the last stretch with sleepFine; false: on the timer alone
	unlock func()
}

// newPacer returns a pacer; fine pacing locks the calling goroutine to its thread until stop.
func newPacer(fine bool) *pacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	p := &pacer{timer: t, fine: fine, unlock: func() {}}
	if fine {
		p.unlock = lockPacer()
	}
	return p
}

func (p *pacer) stop() {
	p.timer.Stop()
	p.unlock()
}

// waitUntil returns at t or soon after, or false as soon as ctx ends.
func (p *pacer) waitUntil(ctx context.Context, t time.Time) bool {
	for {
		d := time.Until(t)
		switch {
		case ctx.Err() != nil:
			return false
		case d <= 0:
			return true
		case p.fine && d < finePacing:
			sleepFine(d)
			continue
		case p.fine:
			d -= finePacing
		}
		p.timer.Reset(d)
		select {
		case <-p.timer.C:
		case <-ctx.Done():
			p.timer.Stop()
			return false
		}
	}
}
