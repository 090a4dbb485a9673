package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults, as in hey where hey has the same flag.
const (
	defaultRequests   = 200
	defaultWorkers    = 8
	defaultMaxWorkers = 1024
	defaultTimeout    = 20 * time.Second
	defaultRedirects  = 10
)

// maxConcurrency bounds -c and -max-workers: the transport starts its workers with the run, a
// few kilobytes each, and a million of them would take gigabytes before the first request.
const maxConcurrency = 100_000

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

// config is the parsed command line of an attack.
type config struct {
	targets    []*target // from the URLs given or -targets; empty for the demo until it starts
	requests   int       // -n; 0 means no bound on the count
	workers    int       // -c
	maxWorkers int       // -max-workers: the open model's bound on requests in flight
	rate       *rateSchedule
	duration   time.Duration
	method     string
	header     http.Header
	host       string // a Host header given with -H, sent as the request's Host
	body       []byte
	hostRate   float64
	timeout    time.Duration
	format     string // -o: text or json
	output     string // -output: the results file, "-" for stdout; empty for none
	name       string // -name: the attack's name in the results
	thresholds []threshold
	honorWait  bool // -backpressure: let 429/503 with Retry-After pause the target host
	precise    bool // -precise: the open model waits for each due time on a fine timer
	procs      int  // -procs: the Go processors (GOMAXPROCS); 0: the open model's one until it needs more
	demo       bool // no URL given: load the embedded server
	client     clientConfig
	shared     *sharedFlags // -redis, -shared-rate, -shared-key (shared.go): a rate shared through Redis
}

// clientConfig is how connections are made: the transport flags.
type clientConfig struct {
	http2       bool // negotiate HTTP/2 over TLS
	h2c         bool // HTTP/2 over cleartext, with prior knowledge
	insecure    bool
	certFile    string
	keyFile     string
	keepalive   bool
	connections int // idle connections kept per host; 0: one per worker
	redirects   int // redirects followed; 0: none (a 3xx is the result)
	timeout     time.Duration
}

// parseArgs parses the command line (without the program name). Flags may come before or after
// the URLs. Errors are *usageError, or errHelp after the usage was written to usage.
// rawFlags are the flags that parseArgs reads into a config only once all are parsed.
type rawFlags struct {
	headers     headerFlag
	bodyStr     string
	bodyFile    bodyFileFlag
	rate        rateFlag
	thresholds  thresholdFlag
	targetsFile string
	targetsFmt  string
	shared      *sharedFlags
	positional  []string        // the URLs given
	set         map[string]bool // the flags given
}

// parseArgs parses the command line of an attack: the flags, checked, and the targets.
func parseArgs(args []string, usage io.Writer) (*config, error) {
	cfg := &config{}
	raw := &rawFlags{}
	fs := newFlagSet(cfg, raw)
	if err := parseFlags(fs, args, raw, usage); err != nil {
		return nil, err
	}
	cfg.rate = raw.rate.s
	cfg.thresholds = raw.thresholds.list
	if err := checkFlags(cfg, raw); err != nil {
		return nil, err
	}
	if err := settle(cfg, raw); err != nil {
		return nil, err
	}
	first := ""
	if len(cfg.targets) > 0 {
		first = cfg.targets[0].url
	}
	var err error
	if cfg.shared, err = raw.shared.check(first); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newFlagSet defines the flags, into cfg and raw.
func newFlagSet(cfg *config, raw *rawFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("httpfutures", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported on one line by the caller
	fs.IntVar(&cfg.requests, "n", 0, fmt.Sprintf("total number of requests (default %d when neither -n nor -duration is given)", defaultRequests))
	fs.IntVar(&cfg.workers, "c", defaultWorkers, "closed model: number of users, each with one request in flight (with -rate and no -max-workers: the bound on requests in flight)")
	fs.IntVar(&cfg.maxWorkers, "max-workers", defaultMaxWorkers, "open model: at most this many requests in flight (-c, if given, when this is not); a worker waits parked until a request needs it")
	fs.Var(&raw.rate, "rate", "requests per second, open model: R, a ramp R1:R2 over -duration, or stages R@D,R1:R2@D,... (0: closed model)")
	fs.DurationVar(&cfg.duration, "duration", 0, "end the run after this long (with -n, whichever comes first)")
	fs.StringVar(&cfg.method, "m", http.MethodGet, "HTTP method")
	fs.Var(&raw.headers, "H", `request header "Name: value" (repeatable)`)
	fs.StringVar(&raw.bodyStr, "d", "", "request body")
	fs.Var(&raw.bodyFile, "D", "file whose content is the request body")
	fs.StringVar(&raw.targetsFile, "targets", "", "file of targets: vegeta's http format or JSON lines; - for stdin")
	fs.StringVar(&raw.targetsFmt, "format", "", "format of -targets: http or json (default: from its first character)")
	fs.Float64Var(&cfg.hostRate, "host-rate", 0, "per-host rate limit in requests per second (0: none)")
	fs.DurationVar(&cfg.timeout, "timeout", defaultTimeout, "timeout of each request's dial, TLS handshake and response header, from when it is sent")
	fs.StringVar(&cfg.format, "o", "text", "report format: text or json")
	fs.StringVar(&cfg.output, "output", "", "write each result to this file in vegeta's JSON results format (- for stdout)")
	fs.StringVar(&cfg.name, "name", "", "the attack's name, in each result")
	fs.Var(&raw.thresholds, "threshold", "pass criteria, e.g. 'p99<50ms,success>=99.9%': exit status 3 when one is missed (repeatable)")
	fs.IntVar(&cfg.procs, "procs", 0, "the Go processors the generator runs on (GOMAXPROCS); 0: in the open model one, and all once the generator uses most of that core; in the closed model all")
	fs.BoolVar(&cfg.precise, "precise", true, "open model: wait for each due time on a fine timer (false: on Go's timers alone, which costs less CPU and may send up to a millisecond late)")
	fs.BoolVar(&cfg.honorWait, "backpressure", false, "let 429/503 responses with Retry-After pause the host, as a client would")
	fs.BoolVar(&cfg.client.http2, "http2", true, "negotiate HTTP/2 with https servers")
	fs.BoolVar(&cfg.client.h2c, "h2c", false, "HTTP/2 without TLS, with prior knowledge, for http URLs")
	fs.BoolVar(&cfg.client.insecure, "insecure", false, "do not verify the server's certificate")
	fs.StringVar(&cfg.client.certFile, "cert", "", "client certificate file (PEM), with -key")
	fs.StringVar(&cfg.client.keyFile, "key", "", "client private key file (PEM), with -cert")
	fs.BoolVar(&cfg.client.keepalive, "keepalive", true, "reuse connections between requests")
	fs.IntVar(&cfg.client.connections, "connections", 0, "idle connections kept open per host (default: one per worker)")
	fs.IntVar(&cfg.client.redirects, "redirects", defaultRedirects, "redirects followed per request; 0: none, the 3xx is the result")
	raw.shared = addSharedFlags(fs)
	return fs
}

// parseFlags parses args into fs, the URLs among them into raw, and notes the flags given. It
// returns errHelp once the usage is printed.
func parseFlags(fs *flag.FlagSet, args []string, raw *rawFlags, usage io.Writer) error {
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(usage, usageText)
				fs.SetOutput(usage)
				fs.PrintDefaults()
				fmt.Fprint(usage, examplesText)
				return errHelp
			}
			return usagef("%v", err)
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		// Go's flag package stops at the first argument that is not a flag: take it and go on,
		// so that "httpfutures URL -n 10" works as well.
		raw.positional = append(raw.positional, rest[0])
		rest = rest[1:]
	}

	raw.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { raw.set[f.Name] = true })
	return nil
}

// checkFlags checks the flags' values and how they combine.
func checkFlags(cfg *config, raw *rawFlags) error {
	set := raw.set
	switch {
	case cfg.requests < 0:
		return usagef("-n must not be negative, got %d", cfg.requests)
	case cfg.workers < 1:
		return usagef("-c must be at least 1, got %d", cfg.workers)
	case cfg.workers > maxConcurrency:
		return usagef("-c must be at most %d, got %d: each user is a goroutine with a connection", maxConcurrency, cfg.workers)
	case cfg.maxWorkers < 1:
		return usagef("-max-workers must be at least 1, got %d", cfg.maxWorkers)
	case cfg.maxWorkers > maxConcurrency:
		return usagef("-max-workers must be at most %d, got %d: each worker is a goroutine with a connection", maxConcurrency, cfg.maxWorkers)
	case cfg.procs < 0:
		return usagef("-procs must be at least 0, got %d", cfg.procs)
	case cfg.hostRate < 0 || isNaNOrInf(cfg.hostRate):
		return usagef("-host-rate must be a non-negative number, got %v", cfg.hostRate)
	case cfg.duration < 0:
		return usagef("-duration must not be negative, got %v", cfg.duration)
	case cfg.timeout <= 0:
		return usagef("-timeout must be positive, got %v", cfg.timeout)
	case cfg.format != "text" && cfg.format != "json":
		return usagef("-o must be text or json, got %q", cfg.format)
	case set["d"] && set["D"]:
		return usagef("-d and -D cannot be used together")
	case set["n"] && cfg.requests == 0:
		return usagef("-n must be at least 1, got 0")
	case cfg.client.connections < 0:
		return usagef("-connections must not be negative, got %d", cfg.client.connections)
	case cfg.client.redirects < 0:
		return usagef("-redirects must not be negative, got %d", cfg.client.redirects)
	case (cfg.client.certFile == "") != (cfg.client.keyFile == ""):
		return usagef("-cert and -key go together")
	case raw.targetsFmt != "" && raw.targetsFmt != "http" && raw.targetsFmt != "json":
		return usagef("-format must be http or json, got %q", raw.targetsFmt)
	case raw.targetsFile != "" && len(raw.positional) > 0:
		return usagef("give URLs or -targets, not both")
	}
	return nil
}

// settle fills in what follows from the flags: the method, the rate's duration, connections,
// headers, body and targets, and the demo's defaults.
func settle(cfg *config, raw *rawFlags) error {
	set := raw.set
	cfg.method = strings.ToUpper(cfg.method)
	if !validMethod(cfg.method) {
		return usagef("-m: invalid method %q", cfg.method)
	}
	if cfg.rate != nil {
		if err := cfg.rate.fit(&cfg.duration, set["duration"]); err != nil {
			return usagef("-rate: %v", err)
		}
	}
	if cfg.rate != nil && set["c"] && !set["max-workers"] {
		cfg.maxWorkers = cfg.workers // -c with -rate: at most that many in flight
	}
	cfg.client.timeout = cfg.timeout
	if cfg.client.connections == 0 {
		cfg.client.connections = cfg.workers
		if cfg.rate != nil {
			cfg.client.connections = cfg.maxWorkers
		}
	}

	cfg.header = http.Header{}
	for _, line := range raw.headers.lines {
		name, value, _ := parseHeaderLine(line) // checked by Set
		if strings.EqualFold(name, "Host") {
			cfg.host = value
			continue
		}
		cfg.header.Add(name, value)
	}
	switch {
	case set["d"]:
		cfg.body = []byte(raw.bodyStr)
	case set["D"]:
		cfg.body = raw.bodyFile.data
	}

	if err := settleTargets(cfg, raw); err != nil {
		return err
	}
	if cfg.demo {
		if !set["rate"] {
			cfg.rate = constantRate(demoRate)
		}
		if !set["duration"] && cfg.duration == 0 {
			cfg.duration = demoDuration
		}
	}
	if cfg.requests == 0 && cfg.duration == 0 {
		cfg.requests = defaultRequests
	}
	return nil
}

// settleTargets makes the targets: from -targets, the URLs given, or none for the demo.
func settleTargets(cfg *config, raw *rawFlags) error {
	defaults := targetDefaults{method: cfg.method, header: cfg.header, host: cfg.host, body: cfg.body}
	switch {
	case raw.targetsFile != "":
		ts, err := readTargetsFile(raw.targetsFile, raw.targetsFmt, defaults)
		if err != nil {
			return usagef("-targets: %v", err)
		}
		cfg.targets = ts
	case len(raw.positional) == 0:
		cfg.demo = true
	default:
		for _, p := range raw.positional {
			u, err := validateURL(p)
			if err != nil {
				return err
			}
			cfg.targets = append(cfg.targets, defaults.target(u.String()))
		}
	}

	return nil
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
		if !httpguts.IsTokenRune(r) {
			return false
		}
	}
	return true
}

func isNaNOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
