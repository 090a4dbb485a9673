package httpfutures

import "time"

// The clock: the instants a Scheduler stamps its Futures with, and the Timing they show.

// An instant is a reading of the monotonic clock: one plus the nanoseconds since its
// Scheduler's epoch, so that zero means unset. Reading it costs half of time.Now, which also reads the wall clock.
type instant int64

// now returns the current instant.
func (s *Scheduler) now() instant { return instant(time.Since(s.epoch)) + 1 }

// at returns i as a time.Time, or the zero time if i is unset.
func (s *Scheduler) at(i instant) time.Time {
	if i == 0 {
		return time.Time{}
	}
	return s.epoch.Add(time.Duration(i - 1))
}

// Timing tells when a Future went through each stage. A time is zero until the stage is reached.
// The times are read from the monotonic clock: their differences are exact, and as wall-clock
// times they follow the clock the program started with.
type Timing struct {
	Queued   time.Time // when the request was submitted
	Started  time.Time // when a worker started the round trip
	Finished time.Time // when the Future resolved
}

// QueueWait is the time between Queued and Started, or zero if the request did not start.
func (t Timing) QueueWait() time.Duration {
	if t.Started.IsZero() {
		return 0
	}
	return t.Started.Sub(t.Queued)
}

// RoundTrip is the time between Started and Finished: the round trip, the body read and the
// response hooks. It is zero until the Future resolves, and if the request never started.
func (t Timing) RoundTrip() time.Duration {
	if t.Started.IsZero() || t.Finished.IsZero() {
		return 0
	}
	return t.Finished.Sub(t.Started)
}

// Total is the time between Queued and Finished, or zero until the Future resolves.
func (t Timing) Total() time.Duration {
	if t.Finished.IsZero() {
		return 0
	}
	return t.Finished.Sub(t.Queued)
}
