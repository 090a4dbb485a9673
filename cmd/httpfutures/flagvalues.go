package main

import (
	"os"
	"strings"

	"github.com/httpfutures/httpfutures/loadgen"
)

// headerFlag collects repeated -H "Name: value" flags, checked as they are given.
type headerFlag struct{ lines []string }

func (h *headerFlag) String() string { return strings.Join(h.lines, ", ") }

func (h *headerFlag) Set(v string) error {
	if _, _, err := loadgen.ParseHeader(v); err != nil {
		return err
	}
	h.lines = append(h.lines, v)
	return nil
}

// bodyFileFlag reads the file named by -D when the flag is parsed.
type bodyFileFlag struct {
	path string
	data []byte
}

func (b *bodyFileFlag) String() string { return b.path }

func (b *bodyFileFlag) Set(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	b.path, b.data = path, data
	return nil
}

// rateFlag parses -rate as it is given.
type rateFlag struct{ s *loadgen.Rate }

func (r *rateFlag) String() string {
	if r.s == nil {
		return "0"
	}
	return r.s.String()
}

func (r *rateFlag) Set(v string) error {
	s, err := loadgen.ParseRate(v)
	if err != nil {
		return err
	}
	r.s = s
	return nil
}

// thresholdFlag collects -threshold lists, checked as they are given.
type thresholdFlag struct{ list []loadgen.Threshold }

func (t *thresholdFlag) String() string { return "" }

func (t *thresholdFlag) Set(v string) error {
	ts, err := loadgen.ParseThresholds(v)
	if err != nil {
		return err
	}
	t.list = append(t.list, ts...)
	return nil
}
