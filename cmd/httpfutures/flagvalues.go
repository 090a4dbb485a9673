package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// headerFlag collects repeated -H "Name: value" flags, checked as they are given.
type headerFlag struct{ lines []string }

func (h *headerFlag) String() string { return strings.Join(h.lines, ", ") }

func (h *headerFlag) Set(v string) error {
	if _, _, err := parseHeaderLine(v); err != nil {
		return err
	}
	h.lines = append(h.lines, v)
	return nil
}

// parseHeaderLine splits "Name: value" and checks both parts as HTTP requires.
func parseHeaderLine(line string) (name, value string, err error) {
	name, value, ok := strings.Cut(line, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return "", "", fmt.Errorf("header %q is not of the form \"Name: value\"", line)
	}
	return checkHeader(name, value)
}

// checkHeader returns the header field name: value, trimmed, or an error if HTTP does not allow
// it: a JSON target gives the name and the value apart, and a colon in its name is an error,
// not the start of the value.
func checkHeader(name, value string) (string, string, error) {
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !httpguts.ValidHeaderFieldName(name) {
		return "", "", fmt.Errorf("header %q: %q is not a valid header name", name+": "+value, name)
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		return "", "", fmt.Errorf("header %q: the value has a character HTTP does not allow", name+": "+value)
	}
	return name, value, nil
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
type rateFlag struct{ s *rateSchedule }

func (r *rateFlag) String() string {
	if r.s == nil {
		return "0"
	}
	return r.s.String()
}

func (r *rateFlag) Set(v string) error {
	s, err := parseRate(v)
	if err != nil {
		return err
	}
	r.s = s
	return nil
}

// thresholdFlag collects -threshold lists, checked as they are given.
type thresholdFlag struct{ list []threshold }

func (t *thresholdFlag) String() string { return "" }

func (t *thresholdFlag) Set(v string) error {
	ts, err := parseThresholds(v)
	if err != nil {
		return err
	}
	t.list = append(t.list, ts...)
	return nil
}
