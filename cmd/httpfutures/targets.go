package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// maxWeights bounds the sum of the targets' weights, the length of the cycle they are sent in.
const maxWeights = 1 << 20

// A target is one kind of request of an attack: method, URL, headers and body, and its weight
// among the others.
type target struct {
	method string
	url    string
	header http.Header
	host   string // sent as the request's Host; empty: the URL's
	body   []byte // nil: no body
	weight int
}

// targetDefaults are what the command line gives every target: -m, -H, -d or -D.
type targetDefaults struct {
	method string
	header http.Header
	host   string
	body   []byte
}

// target is the target of url with the defaults.
func (d targetDefaults) target(url string) *target {
	return &target{method: d.method, url: url, header: d.header.Clone(), host: d.host, body: d.body, weight: 1}
}

// readTargetsFile reads the targets of path ("-": standard input) in format ("http", "json" or
// empty to tell by the first character that is not a space: '{' is json).
func readTargetsFile(path, format string, d targetDefaults) ([]*target, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if format == "" {
		format = "http"
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
			format = "json"
		}
	}
	var ts []*target
	if format == "json" {
		ts, err = parseJSONTargets(data, d)
	} else {
		ts, err = parseHTTPTargets(data, d)
	}
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, errors.New("no target in the file")
	}
	return ts, nil
}

// parseHTTPTargets reads vegeta's http format: blocks separated by blank lines, each "METHOD URL",
// then "Name: value" header lines, then optionally "@path" naming a file that is the body. Lines
// starting with # are comments, but "# weight: N" in a block gives its target a weight.
func parseHTTPTargets(data []byte, d targetDefaults) ([]*target, error) {
	var ts []*target
	var cur *target
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", lineNo, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			cur = nil
		case strings.HasPrefix(line, "#"):
			if w, ok := strings.CutPrefix(strings.TrimSpace(line[1:]), "weight:"); ok && cur != nil {
				n, err := strconv.Atoi(strings.TrimSpace(w))
				if err != nil || n < 1 {
					return nil, fail("weight %q is not a positive integer", strings.TrimSpace(w))
				}
				cur.weight = n
			}
		case cur == nil:
			method, rawURL, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fail("%q is not of the form \"METHOD URL\"", line)
			}
			method = strings.ToUpper(method)
			if !validMethod(method) {
				return nil, fail("invalid method %q", method)
			}
			u, err := validateURL(strings.TrimSpace(rawURL))
			if err != nil {
				return nil, fail("%v", err)
			}
			cur = d.target(u.String())
			cur.method = method
			ts = append(ts, cur)
		case strings.HasPrefix(line, "@"):
			body, err := os.ReadFile(line[1:])
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.body = body
		default:
			name, value, err := parseHeaderLine(line)
			if err != nil {
				return nil, fail("%v", err)
			}
			if strings.EqualFold(name, "Host") {
				cur.host = value
			} else {
				cur.header.Add(name, value)
			}
		}
	}
	return ts, sc.Err()
}

// jsonTarget is a line of the JSON format: vegeta's (the body in base64), with a weight.
type jsonTarget struct {
	Method string              `json:"method"`
	URL    string              `json:"url"`
	Header map[string][]string `json:"header"`
	Body   []byte              `json:"body"`
	Weight *int                `json:"weight"`
}

// parseJSONTargets reads one JSON object per line.
func parseJSONTargets(data []byte, d targetDefaults) ([]*target, error) {
	var ts []*target
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	for n := 1; ; n++ {
		var jt jsonTarget
		if err := dec.Decode(&jt); errors.Is(err, io.EOF) {
			return ts, nil
		} else if err != nil {
			return nil, fmt.Errorf("target %d: %v", n, err)
		}
		u, err := validateURL(jt.URL)
		if err != nil {
			return nil, fmt.Errorf("target %d: %v", n, err)
		}
		t := d.target(u.String())
		if jt.Method != "" {
			t.method = strings.ToUpper(jt.Method)
			if !validMethod(t.method) {
				return nil, fmt.Errorf("target %d: invalid method %q", n, jt.Method)
			}
		}
		for name, values := range jt.Header {
			for _, v := range values {
				name, value, err := checkHeader(name, v)
				if err != nil {
					return nil, fmt.Errorf("target %d: %v", n, err)
				}
				if strings.EqualFold(name, "Host") {
					t.host = value
				} else {
					t.header.Add(name, value)
				}
			}
		}
		if jt.Body != nil {
			t.body = jt.Body
		}
		if jt.Weight != nil {
			if *jt.Weight < 1 {
				return nil, fmt.Errorf("target %d: weight %d is not positive", n, *jt.Weight)
			}
			t.weight = *jt.Weight
		}
		ts = append(ts, t)
	}
}

// A targeter makes the requests of an attack: request i is of the target at place i of a cycle
// in which each target appears as often as its weight, spread out (smooth weighted
// round-robin, as nginx's), so that equal weights are plain round-robin. Its zero value has no
// targets: use newTargeter. It is safe for concurrent use.
type targeter struct {
	targets []*target
	tmpls   []*http.Request // one per target, with context.Background()
	cycle   []int32         // indexes into targets
}

func newTargeter(ts []*target) (*targeter, error) {
	tg := &targeter{targets: ts}
	sum := 0
	for _, t := range ts {
		sum += t.weight
		if sum > maxWeights {
			return nil, fmt.Errorf("the targets' weights add up to more than %d", maxWeights)
		}
		req, err := http.NewRequestWithContext(context.Background(), t.method, t.url, nil)
		if err != nil {
			return nil, err
		}
		req.Header = t.header
		req.Host = t.host
		if t.body != nil {
			body := t.body
			req.ContentLength = int64(len(body))
			req.GetBody = func() (io.ReadCloser, error) {
				if len(body) == 0 {
					return http.NoBody, nil
				}
				return io.NopCloser(bytes.NewReader(body)), nil
			}
		}
		tg.tmpls = append(tg.tmpls, req)
	}
	current := make([]int, len(ts))
	tg.cycle = make([]int32, 0, sum)
	for range sum {
		best := 0
		for k, t := range ts {
			current[k] += t.weight
			if current[k] > current[best] {
				best = k
			}
		}
		current[best] -= sum
		tg.cycle = append(tg.cycle, int32(best))
	}
	return tg, nil
}

// target returns the target of request i.
func (tg *targeter) target(i uint64) (*target, int32) {
	k := tg.cycle[i%uint64(len(tg.cycle))]
	return tg.targets[k], k
}

// request returns request i, with ctx as its context, and its target. The request is a shallow
// copy of the target's template: the header is shared and must not be changed, and the body is
// its own.
func (tg *targeter) request(i uint64, ctx context.Context) (*http.Request, *target) {
	t, k := tg.target(i)
	req := tg.tmpls[k].WithContext(ctx)
	if req.GetBody != nil {
		req.Body, _ = req.GetBody() // never fails
	}
	return req, t
}
