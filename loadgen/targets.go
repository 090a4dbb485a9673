package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// maxWeights bounds the sum of the targets' weights, the length of the cycle they are sent in.
const maxWeights = 1 << 20

// A Target is one kind of request of an attack: method, URL, headers and body, and its weight
// among the others. Its URL may hold placeholders, filled in for each request: {{seq}}, the
// request's number from 0, and {{rand N}}, a random integer from 0 to N-1 (see NewTarget).
// Its zero value is not a request: use NewTarget, or ReadTargets.
type Target struct {
	Method string
	URL    string      // absolute http or https, maybe with placeholders
	Header http.Header // shared by the requests: not changed once the attack starts
	Host   string      // sent as the request's Host; empty: the URL's
	Body   []byte      // nil: no body
	Weight int         // how often it comes in a cycle of the targets; at least 1

	tmpl *urlTemplate // the URL's placeholders; nil when it has none
}

// NewTarget returns a GET of rawURL with weight 1, after checking that the URL, its
// placeholders filled in, is an absolute http or https URL with a host.
func NewTarget(rawURL string) (*Target, error) {
	t := &Target{Method: http.MethodGet, URL: rawURL, Header: http.Header{}, Weight: 1}
	if err := t.parseURL(); err != nil {
		return nil, err
	}
	return t, nil
}

// parseURL checks t.URL and compiles its placeholders.
func (t *Target) parseURL() error {
	tmpl, err := parseURLTemplate(t.URL)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", t.URL, err)
	}
	sample := t.URL
	if tmpl != nil {
		sample = tmpl.fill(0, func(uint64) uint64 { return 0 })
	}
	u, err := ValidateURL(sample)
	if err != nil {
		return err
	}
	if tmpl == nil {
		t.URL = u.String()
	}
	t.tmpl = tmpl
	return nil
}

// with returns a copy of t for rawURL: its method, headers, Host and body, weight 1.
func (t *Target) with(rawURL string) (*Target, error) {
	c := &Target{Method: t.Method, URL: rawURL, Header: t.Header.Clone(), Host: t.Host, Body: t.Body, Weight: 1}
	if c.Header == nil {
		c.Header = http.Header{}
	}
	if err := c.parseURL(); err != nil {
		return nil, err
	}
	return c, nil
}

// ReadTargets reads targets in format: "http" (vegeta's http format) or "json" (JSON lines as
// vegeta's, with a weight), or empty to tell by the first character that is not a space ('{'
// is json). Each target starts as a copy of defaults (its method, headers, Host and body); a
// nil defaults is a GET.
func ReadTargets(data []byte, format string, defaults *Target) ([]*Target, error) {
	if defaults == nil {
		defaults = &Target{Method: http.MethodGet}
	}
	if format == "" {
		format = "http"
		if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
			format = "json"
		}
	}
	var ts []*Target
	var err error
	switch format {
	case "json":
		ts, err = parseJSONTargets(data, defaults)
	case "http":
		ts, err = parseHTTPTargets(data, defaults)
	default:
		return nil, fmt.Errorf("unknown targets format %q: http or json", format)
	}
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, errors.New("no target in the file")
	}
	return ts, nil
}

// ReadTargetsFile is ReadTargets of the file at path ("-": stdin).
func ReadTargetsFile(path, format string, defaults *Target, stdin io.Reader) ([]*Target, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	return ReadTargets(data, format, defaults)
}

// parseHTTPTargets reads vegeta's http format: blocks separated by blank lines, each "METHOD URL",
// then "Name: value" header lines, then optionally "@path" naming a file that is the body. Lines
// starting with # are comments, but "# weight: N" gives a target a weight: in its block, or on
// the lines just above its "METHOD URL". A weight given twice to one target, or above no
// target, is an error with its line number: a weight is never ignored.
func parseHTTPTargets(data []byte, d *Target) ([]*Target, error) {
	var ts []*Target
	var cur *Target
	pending, pendingLine := 0, 0 // a weight above the next target, and its line
	weightLine := map[*Target]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", lineNo, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			cur = nil
		case strings.HasPrefix(line, "#"):
			w, ok := strings.CutPrefix(strings.TrimSpace(line[1:]), "weight:")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil || n < 1 {
				return nil, fail("weight %q is not a positive integer", strings.TrimSpace(w))
			}
			switch {
			case cur == nil && pending != 0:
				return nil, fail("a second weight above one target (the first on line %d)", pendingLine)
			case cur == nil:
				pending, pendingLine = n, lineNo
			case weightLine[cur] != 0:
				return nil, fail("a second weight for the target of line %d (the first on line %d)", lineNo, weightLine[cur])
			default:
				cur.Weight, weightLine[cur] = n, lineNo
			}
		case cur == nil:
			method, rawURL, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fail("%q is not of the form \"METHOD URL\"", line)
			}
			method = strings.ToUpper(method)
			if !ValidMethod(method) {
				return nil, fail("invalid method %q", method)
			}
			t, err := d.with(strings.TrimSpace(rawURL))
			if err != nil {
				return nil, fail("%v", err)
			}
			t.Method = method
			if pending != 0 {
				t.Weight, weightLine[t] = pending, pendingLine
				pending = 0
			}
			cur = t
			ts = append(ts, cur)
		case strings.HasPrefix(line, "@"):
			body, err := os.ReadFile(line[1:])
			if err != nil {
				return nil, fail("%v", err)
			}
			cur.Body = body
		default:
			name, value, err := ParseHeader(line)
			if err != nil {
				return nil, fail("%v", err)
			}
			if strings.EqualFold(name, "Host") {
				cur.Host = value
			} else {
				cur.Header.Add(name, value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if pending != 0 {
		return nil, fmt.Errorf("line %d: a weight above no target", pendingLine)
	}
	return ts, nil
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
func parseJSONTargets(data []byte, d *Target) ([]*Target, error) {
	var ts []*Target
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	for n := 1; ; n++ {
		var jt jsonTarget
		if err := dec.Decode(&jt); errors.Is(err, io.EOF) {
			return ts, nil
		} else if err != nil {
			return nil, fmt.Errorf("target %d: %v", n, err)
		}
		t, err := d.with(jt.URL)
		if err != nil {
			return nil, fmt.Errorf("target %d: %v", n, err)
		}
		if jt.Method != "" {
			t.Method = strings.ToUpper(jt.Method)
			if !ValidMethod(t.Method) {
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
					t.Host = value
				} else {
					t.Header.Add(name, value)
				}
			}
		}
		if jt.Body != nil {
			t.Body = jt.Body
		}
		if jt.Weight != nil {
			if *jt.Weight < 1 {
				return nil, fmt.Errorf("target %d: weight %d is not positive", n, *jt.Weight)
			}
			t.Weight = *jt.Weight
		}
		ts = append(ts, t)
	}
}

// ValidateURL parses raw and accepts an absolute http or https URL with a host.
func ValidateURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %v", raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("invalid URL %q: the scheme must be http or https", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("invalid URL %q: no host", raw)
	}
	return u, nil
}

// ValidMethod reports whether m is an HTTP token, as net/http requires of a method.
func ValidMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if !httpguts.IsTokenRune(r) {
			return false
		}
	}
	return true
}

// ParseHeader splits "Name: value" and checks both parts as HTTP requires.
func ParseHeader(line string) (name, value string, err error) {
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
