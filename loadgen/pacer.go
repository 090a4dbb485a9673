package loadgen

import (
	"context"
	"time"
)

// A pacer waits for the due times of the open model. Go's timers may fire a millisecond late
// when the process has nothing else to do, which at thousands of requests per second would be
// several requests' worth of lateness; the pacer sleeps on its timer only until shortly before a
// due time and the rest of the way on a fineTimer. Its zero value is not ready: use newPacer,
// and stop it when done.
type pacer struct {
	timer *time.Timer
	fine  *fineTimer // nil: the Go timer alone
}

// newPacer returns a pacer, with fine waits if asked for and the system has them.
func newPacer(fine bool) *pacer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	p := &pacer{timer: t}
	if fine {
		p.fine, _ = newFineTimer() // without one, the Go timer alone
	}
	return p
}

func (p *pacer) stop() {
	p.timer.Stop()
	if p.fine != nil {
		p.fine.close()
	}
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
		case p.fine != nil && d < finePacing:
			p.fine.sleep(d)
			continue
		case p.fine != nil:
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
