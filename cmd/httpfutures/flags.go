package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults, as in hey where hey has the same flag.
const (
	defaultRequests = 200
	defaultWorkers  = 8
	defaultTimeout  = 20 * time.Second
)

// The demo's load, used for the flags that are not given when no URL is.
const (
	demoRate     = 500
	demoDuration = 2 * time.Second
)

// errHelp is returned by parseArgs when -h or -help was asked for: the usage has been printed and
// the program should end with status 0.
var errHelp = errors.New("help requested")

// usageError is a mistake on the command line: the program ends with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// config is the parsed command line.
type config struct {
	target    string // the URL as given; empty for the demo
	requests  int    // -n; 0 means no bound on the count
	workers   int    // -c
	rate      float64
	duration  time.Duration
	method    string
	header    http.Header
	host      string // a Host header given with -H, sent as the request's Host
	body      []byte
	hostRate  float64
	timeout   time.Duration
	output    string
	honorWait bool // -backpressure: let 429/503 with Retry-After pause the target host
	demo      bool // no URL given: load the embedded server

	shared *sharedFlags // -redis, -shared-rate, -shared-key (shared.go): a rate shared through Redis
}

// headerFlag collects repeated -H "Name: value" flags.
type headerFlag struct{ lines []string }

func (h *headerFlag) String() string { return strings.Join(h.lines, ", ") }

func (h *headerFlag) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q is not of the form \"Name: value\"", v)
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

const usageText = `usage: httpfutures [flags] [URL]

Sends HTTP requests to URL through an httpfutures.AsyncTransport and reports
latency percentiles, status codes and errors. Without a URL it runs a short
demo against an embedded server on 127.0.0.1.

With -rate the load is an open model: request i is due at t0+i/rate and its
latency runs from that time to the end of its response body, so a stalled
server shows in the percentiles. Without -rate, -c workers send as fast as the
server answers and latency runs from when a request was queued.

Ctrl-C stops sending, lets the requests in flight finish (each within -timeout)
and prints the report; a second Ctrl-C ends the program at once.

flags:
`

const examplesText = `
examples:
  httpfutures                                      # demo against an embedded server
  httpfutures -n 20000 -c 8 http://127.0.0.1:8080/get
  httpfutures -rate 5000 -duration 30s -o json http://127.0.0.1:8080/get
  httpfutures -m POST -H "Content-Type: application/json" -d '{"a":1}' http://127.0.0.1:8080/post
`

// parseArgs parses the command line (without the program name). Flags may come before or after
// the URL. Errors are *usageError, or errHelp after the usage was written to usage.
func parseArgs(args []string, usage io.Writer) (*config, error) {
	cfg := &config{}
	var (
		headers  headerFlag
		bodyStr  string
		bodyFile bodyFileFlag
	)
	fs := flag.NewFlagSet("httpfutures", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported on one line by the caller
	fs.IntVar(&cfg.requests, "n", 0, fmt.Sprintf("total number of requests (default %d when neither -n nor -duration is given)", defaultRequests))
	fs.IntVar(&cfg.workers, "c", defaultWorkers, "number of workers: requests in flight at once")
	fs.Float64Var(&cfg.rate, "rate", 0, "requests per second, open model (0: as fast as the workers go)")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop sending after this long (with -n, whichever comes first)")
	fs.StringVar(&cfg.method, "m", http.MethodGet, "HTTP method")
	fs.Var(&headers, "H", `request header "Name: value" (repeatable)`)
	fs.StringVar(&bodyStr, "d", "", "request body")
	fs.Var(&bodyFile, "D", "file whose content is the request body")
	fs.Float64Var(&cfg.hostRate, "host-rate", 0, "per-host rate limit in requests per second (0: none)")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "timeout of each request, from when it is sent")
	fs.StringVar(&cfg.output, "o", "text", "report format: text or json")
	fs.BoolVar(&cfg.honorWait, "backpressure", false, "let 429/503 responses with Retry-After pause the host, as a client would")
	shared := addSharedFlags(fs)

	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(usage, usageText)
				fs.SetOutput(usage)
				fs.PrintDefaults()
				fmt.Fprint(usage, examplesText)
				return nil, errHelp
			}
			return nil, usagef("%v", err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		// Go's flag package stops at the first argument that is not a flag: take it and go on,
		// so that "httpfutures URL -n 10" works as well.
		positional = append(positional, rest[0])
		rest = rest[1:]
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch len(positional) {
	case 0:
		cfg.demo = true
	case 1:
		u, err := validateURL(positional[0])
		if err != nil {
			return nil, err
		}
		cfg.target = u.String()
	default:
		return nil, usagef("expected at most one URL, got %d: %s", len(positional), strings.Join(positional, " "))
	}

	switch {
	case cfg.requests < 0:
		return nil, usagef("-n must not be negative, got %d", cfg.requests)
	case cfg.workers < 1:
		return nil, usagef("-c must be at least 1, got %d", cfg.workers)
	case cfg.rate < 0 || isNaNOrInf(cfg.rate):
		return nil, usagef("-rate must be a non-negative number, got %v", cfg.rate)
	case cfg.hostRate < 0 || isNaNOrInf(cfg.hostRate):
		return nil, usagef("-host-rate must be a non-negative number, got %v", cfg.hostRate)
	case cfg.duration < 0:
		return nil, usagef("-duration must not be negative, got %v", cfg.duration)
	case cfg.timeout <= 0:
		return nil, usagef("-timeout must be positive, got %v", cfg.timeout)
	case cfg.output != "text" && cfg.output != "json":
		return nil, usagef("-o must be text or json, got %q", cfg.output)
	case set["d"] && set["D"]:
		return nil, usagef("-d and -D cannot be used together")
	case set["n"] && cfg.requests == 0:
		return nil, usagef("-n must be at least 1, got 0")
	}
	var err error
	if cfg.shared, err = shared.check(cfg.target); err != nil {
		return nil, err
	}
	cfg.method = strings.ToUpper(cfg.method)
	if !validMethod(cfg.method) {
		return nil, usagef("-m: invalid method %q", cfg.method)
	}

	cfg.header = http.Header{}
	for _, line := range headers.lines {
		name, value, _ := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if strings.EqualFold(name, "Host") {
			cfg.host = value
			continue
		}
		cfg.header.Add(name, value)
	}
	switch {
	case set["d"]:
		cfg.body = []byte(bodyStr)
	case set["D"]:
		cfg.body = bodyFile.data
	}

	if cfg.demo {
		if !set["rate"] {
			cfg.rate = demoRate
		}
		if !set["duration"] {
			cfg.duration = demoDuration
		}
	}
	if cfg.requests == 0 && cfg.duration == 0 {
		cfg.requests = defaultRequests
	}
	return cfg, nil
}

// validateURL accepts absolute http and https URLs with a host.
func validateURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, usagef("invalid URL %q: %v", raw, errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, usagef("invalid URL %q: the scheme must be http or https", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, usagef("invalid URL %q: no host", raw)
	}
	return u, nil
}

// validMethod reports whether m is an HTTP token, as net/http requires of a method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}

func isNaNOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
