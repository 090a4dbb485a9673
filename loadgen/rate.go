package loadgen

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A stage is a part of the open model's timetable: the rate goes linearly from from to to
// (requests per second) over dur. A dur of 0 is the rest of the run.
type stage struct {
	from, to float64
	dur      time.Duration
}

// count returns how many requests fall due in the first t of the stage: the integral of the
// rate from 0 to t.
func (s stage) count(t time.Duration) float64 {
	secs := t.Seconds()
	if s.dur == 0 || s.from == s.to {
		return s.from * secs
	}
	return s.from*secs + (s.to-s.from)*secs*secs/(2*s.dur.Seconds())
}

// at returns when, from the start of the stage, the n-th request of the stage falls due: the t
// where count(t) = n. It is the root of a t² + r0 t - n = 0 in the form that is stable for
// ramps up, ramps down and constant rates alike.
func (s stage) at(n float64) time.Duration {
	if n <= 0 {
		return 0
	}
	a := 0.0
	if s.dur > 0 {
		a = (s.to - s.from) / (2 * s.dur.Seconds())
	}
	secs := 2 * n / (s.from + math.Sqrt(s.from*s.from+4*a*n))
	return time.Duration(secs * float64(time.Second))
}

// A Rate is the open model's timetable: a list of stages, each a constant rate or a
// linear ramp. Request i (from 0) falls due when the integral of the rate reaches i. Its zero
// value has no stages and no requests: use ParseRate or ConstantRate.
type Rate struct {
	stages []stage
	text   string // as given; empty: made by ConstantRate
}

// ConstantRate is the timetable of a single rate for the whole run.
func ConstantRate(r float64) *Rate {
	return &Rate{stages: []stage{{from: r, to: r}}}
}

// ParseRate parses a timetable: "R", "R1:R2" (a ramp over the run's duration), or
// comma-separated stages each of those followed by "@D", the last one's "@D" being optional
// (the rest of the run). A rate is requests per second, or N/D as vegeta's -rate ("50/1s",
// "3000/1m"). "0" is the closed model: it returns nil.
func ParseRate(v string) (*Rate, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 {
		return nil, nil
	}
	s := Rate{text: v}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		spec, durText, hasDur := strings.Cut(strings.TrimSpace(p), "@")
		var st stage
		fromText, toText, ramp := strings.Cut(spec, ":")
		var err error
		if st.from, err = parseRateNumber(fromText); err != nil {
			return nil, err
		}
		st.to = st.from
		if ramp {
			if st.to, err = parseRateNumber(toText); err != nil {
				return nil, err
			}
		}
		if hasDur {
			if st.dur, err = time.ParseDuration(durText); err != nil || st.dur <= 0 {
				return nil, fmt.Errorf("stage %q: %q is not a positive duration", p, durText)
			}
		} else if i < len(parts)-1 {
			return nil, fmt.Errorf("stage %q: only the last stage may leave out its @duration", p)
		}
		s.stages = append(s.stages, st)
	}
	if s.total() == 0 && len(s.stages) == 1 && s.stages[0].from == 0 && s.stages[0].to == 0 {
		return nil, nil
	}
	return &s, nil
}

// parseRateNumber parses a rate: requests per second, or as vegeta writes it, N/D, N requests
// every D ("50/1s", "50/1m", "50/s").
func parseRateNumber(v string) (float64, error) {
	v = strings.TrimSpace(v)
	num, per, hasPer := strings.Cut(v, "/")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || isNaNOrInf(f) {
		return 0, fmt.Errorf("%q is not a non-negative number of requests per second, nor N/D as 50/1s", v)
	}
	if !hasPer {
		return f, nil
	}
	switch per {
	case "ns", "us", "µs", "ms", "s", "m", "h":
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: %q is not a positive duration (N/D, as 50/1s or 3000/1m)", v, per)
	}
	return f / d.Seconds(), nil
}

// total is the sum of the stages' durations.
func (s *Rate) total() time.Duration {
	var d time.Duration
	for _, st := range s.stages {
		d += st.dur
	}
	return d
}

// Fit reconciles the stages with the run's *duration (given: whether one was set): when every
// stage has its duration and none was set, the run lasts their sum; a last stage without one
// lasts the rest of the run, and a ramp needs that duration to be known.
func (s *Rate) Fit(duration *time.Duration, given bool) error {
	last := &s.stages[len(s.stages)-1]
	if last.dur != 0 {
		if !given {
			*duration = s.total()
		}
		return nil
	}
	before := s.total()
	switch {
	case *duration == 0 && last.from != last.to:
		return errors.New("a ramp needs a duration: give -duration, or R1:R2@D")
	case *duration == 0:
		return nil // a constant rate to the end, bound by -n
	case *duration <= before:
		return fmt.Errorf("the stages before the last take %v, -duration %v leaves none for the last", before, *duration)
	}
	last.dur = *duration - before
	return nil
}

// offset returns when request i falls due, from the start of the run, and false if the
// timetable has ended before it.
func (s *Rate) offset(i int) (time.Duration, bool) {
	n := float64(i)
	var start time.Duration
	for k, st := range s.stages {
		c := st.count(st.dur)
		if st.dur == 0 && k == len(s.stages)-1 {
			if st.from == 0 {
				return 0, false
			}
			return start + st.at(n), true
		}
		if n < c {
			return start + st.at(n), true
		}
		n -= c
		start += st.dur
	}
	return 0, false
}

// due returns how many requests fall due before elapsed: those whose offset is less.
func (s *Rate) due(elapsed time.Duration) int {
	var n float64
	for _, st := range s.stages {
		if st.dur == 0 || elapsed < st.dur {
			n += st.count(elapsed)
			break
		}
		n += st.count(st.dur)
		elapsed -= st.dur
	}
	return int(math.Ceil(n - 1e-9))
}

// String gives the timetable back in -rate's syntax.
func (s *Rate) String() string {
	if s.text != "" {
		return s.text
	}
	parts := make([]string, len(s.stages))
	for i, st := range s.stages {
		p := strconv.FormatFloat(st.from, 'g', -1, 64)
		if st.to != st.from {
			p += ":" + strconv.FormatFloat(st.to, 'g', -1, 64)
		}
		if st.dur > 0 {
			p += "@" + st.dur.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// Peak is the highest rate of the timetable, requests per second.
func (s *Rate) Peak() float64 {
	var p float64
	for _, st := range s.stages {
		p = max(p, st.from, st.to)
	}
	return p
}

// meanRate is the timetable's mean rate over its first n requests: n over the time the next
// one falls due. A timetable that ends before gives its requests over its length.
func (s *Rate) meanRate(n int) float64 {
	if n <= 0 {
		return 0
	}
	if off, ok := s.offset(n); ok && off > 0 {
		return float64(n) / off.Seconds()
	}
	if total := s.total(); total > 0 {
		return float64(s.due(total)) / total.Seconds()
	}
	return s.Peak()
}

// At is the timetable's rate at elapsed into the run, requests per second.
func (s *Rate) At(elapsed time.Duration) float64 {
	for _, st := range s.stages {
		if st.dur == 0 || elapsed < st.dur {
			if st.dur == 0 {
				return st.from
			}
			return st.from + (st.to-st.from)*elapsed.Seconds()/st.dur.Seconds()
		}
		elapsed -= st.dur
	}
	return 0
}
