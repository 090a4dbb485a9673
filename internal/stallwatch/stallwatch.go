// Package stallwatch notes the spells in which a process did not run: a machine busy enough may
// give it no core at all for a while, or too seldom, and a test that measures a rate or a round
// trip on such a machine leaves that time out, or takes it for what it is, and says so. A
// ticker's goroutine that wakes a tick late or more sees such a spell. It serves the tests of
// the root package and of redislimit.
package stallwatch

import "time"

// Tick is how often Process looks at the clock, and Ticks calls its look.
const Tick = 5 * time.Millisecond

// A Spell is a span of time, as Unix nanoseconds (so that a report of it crosses processes as
// JSON): its start and its end.
type Spell = [2]int64

// Ticks calls look at every Tick from start until the returned func is called, with the time of
// the tick before (or of the watch's start) and of this one, and notes the spells it reports.
// The func returns them.
func Ticks(start time.Time, look func(last, now time.Time) (spell Spell, ok bool)) func() []Spell {
	stop := make(chan struct{})
	done := make(chan []Spell, 1)
	go func() {
		var spells []Spell
		defer func() { done <- spells }()
		select {
		case <-stop:
			return
		case <-time.After(time.Until(start)):
		}
		tick := time.NewTicker(Tick)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if spell, ok := look(last, now); ok {
					spells = append(spells, spell)
				}
				last = now
			}
		}
	}()
	return func() []Spell {
		close(stop)
		return <-done
	}
}

// Process notes, from start until the returned func is called, the spells in which the process
// did not run for two ticks or more. The func returns them.
func Process(start time.Time) func() []Spell {
	return Ticks(start, func(last, now time.Time) (Spell, bool) {
		return Spell{last.Add(Tick).UnixNano(), now.UnixNano()}, now.Sub(last) > 2*Tick
	})
}
