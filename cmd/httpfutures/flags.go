package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/httpfutures/httpfutures/loadgen"
)

// Defaults, as in hey where hey has the same flag.
const (
	defaultRequests   = 200
	defaultWorkers    = loadgen.DefaultWorkers
	defaultMaxWorkers = loadgen.DefaultMaxWorkers
	defaultTimeout    = loadgen.DefaultTimeout
	defaultRedirects  = 10
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

// config is the parsed command line of an attack: the attack itself, and what the command
// does around it.
type config struct {
	loadgen.Config

	// The defaults of every target: -m, -H (a Host header is sent as the request's Host), -d
	// or -D.
	method string
	header http.Header
	host   string
	body   []byte

	format        string // -o: text, json or csv
	output        string // -output: the results file, "-" for stdout; empty for none
	thresholds    []loadgen.Threshold
	precise       bool                  // -precise: the open model waits for each due time on a fine timer
	procs         int                   // -procs: the Go processors (GOMAXPROCS); 0: the open model's one until it needs more
	prometheus    string                // -prometheus: the address to serve live metrics on; empty for none
	resultsFormat loadgen.ResultsFormat // of -output, or of -o csv
	demo          bool                  // no URL given: load the embedded server
	shared        *sharedFlags          // -redis, -shared-rate, -shared-key (shared.go): a rate shared through Redis
}

// rawFlags are the flags that parseArgs reads into a config only once all are parsed.
type rawFlags struct {
	headers     headerFlag
	bodyStr     string
	bodyFile    bodyFileFlag
	rate        rateFlag
	thresholds  thresholdFlag
	targetsFile string
	targetsFmt  string
	http2       bool
	keepalive   bool
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
	cfg.Rate = raw.rate.s
	cfg.thresholds = raw.thresholds.list
	if err := checkFlags(cfg, raw); err != nil {
		return nil, err
	}
	if err := settle(cfg, raw); err != nil {
		return nil, err
	}
	first := ""
	if len(cfg.Targets) > 0 {
		first = cfg.Targets[0].URL
	}
	var err error
	if cfg.shared, err = raw.shared.check(first); err != nil {
		return nil, err
	}
	if strings.HasSuffix(cfg.output, ".csv") || cfg.format == "csv" {
		cfg.resultsFormat = loadgen.CSVResults
	}
	return cfg, nil
}

// Whose convention a flag follows, as its -h says.
const (
	asHey    = " [hey]"
	asVegeta = " [vegeta]"
	asOwn    = " [httpfutures]"
)

// newFlagSet defines the flags, into cfg and raw. Each flag's usage ends with whose convention
// it follows: hey's, vegeta's, or this command's own.
func newFlagSet(cfg *config, raw *rawFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("httpfutures", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported on one line by the caller
	c := &cfg.Config
	fs.IntVar(&c.Requests, "n", 0, fmt.Sprintf("total number of requests (default %d when neither -n nor -duration is given)", defaultRequests)+asHey)
	fs.IntVar(&c.Workers, "c", defaultWorkers, "closed model: number of users, each with one request in flight (with -rate and no -max-workers: the bound on requests in flight)"+asHey)
	fs.IntVar(&c.MaxWorkers, "max-workers", defaultMaxWorkers, "open model: at most this many requests in flight (-c, if given, when this is not); a worker waits parked until a request needs it"+asVegeta)
	fs.Var(&raw.rate, "rate", "requests per second, open model: R or N/D (50/1s, 3000/1m), a ramp R1:R2 over -duration, or stages R@D,R1:R2@D,... (0: closed model)"+asVegeta)
	fs.DurationVar(&c.Duration, "duration", 0, "end the run after this long (with -n, whichever comes first)"+asVegeta)
	fs.StringVar(&cfg.method, "m", http.MethodGet, "HTTP method"+asHey)
	fs.Var(&raw.headers, "H", `request header "Name: value" (repeatable)`+asHey)
	fs.StringVar(&raw.bodyStr, "d", "", "request body"+asHey)
	fs.Var(&raw.bodyFile, "D", "file whose content is the request body"+asHey)
	fs.StringVar(&raw.targetsFile, "targets", "", "file of targets: vegeta's http format or JSON lines; - for stdin; a URL may hold {{seq}} and {{rand N}}"+asVegeta)
	fs.StringVar(&raw.targetsFmt, "format", "", "format of -targets: http or json (default: from its first character)"+asVegeta)
	fs.Float64Var(&c.HostRate, "host-rate", 0, "per-host rate limit in requests per second (0: none)"+asOwn)
	fs.DurationVar(&c.Client.Timeout, "timeout", defaultTimeout, "timeout of each request, from when it is sent to the end of its response body"+asVegeta)
	fs.DurationVar(&c.Client.HeaderTimeout, "header-timeout", 0, "timeout of each request's dial, TLS handshake and response header (0: -timeout alone)"+asOwn)
	fs.StringVar(&cfg.format, "o", "text", "output type: text or json, the report on stdout; csv, every result on stdout in CSV and the report on stderr"+asHey)
	fs.StringVar(&cfg.output, "output", "", "write every result to this file (- for stdout), vegeta's JSON results format, or CSV for a name ending in .csv"+asVegeta)
	fs.StringVar(&c.Name, "name", "", "the attack's name, in each result"+asVegeta)
	fs.Var(&raw.thresholds, "threshold", "pass criteria, e.g. 'p99<50ms,success>=99.9%': exit status 3 when one is missed (repeatable)"+asOwn)
	fs.StringVar(&cfg.prometheus, "prometheus", "", "serve live metrics for Prometheus on this address (host:port) at /metrics while the run lasts"+asOwn)
	fs.IntVar(&cfg.procs, "procs", 0, "the Go processors the generator runs on (GOMAXPROCS); 0: in the open model one, and all once the generator uses most of that core; in the closed model all"+asOwn)
	fs.BoolVar(&cfg.precise, "precise", true, "open model: wait for each due time on a fine timer (false: on Go's timers alone, which costs less CPU and may send up to a millisecond late)"+asOwn)
	fs.BoolVar(&c.HonorWait, "backpressure", false, "let 429/503 responses with Retry-After pause the host, as a client would"+asOwn)
	fs.BoolVar(&raw.http2, "http2", true, "negotiate HTTP/2 with https servers"+asVegeta)
	fs.BoolVar(&c.Client.H2C, "h2c", false, "HTTP/2 without TLS, with prior knowledge, for http URLs"+asVegeta)
	fs.BoolVar(&c.Client.Insecure, "insecure", false, "do not verify the server's certificate"+asVegeta)
	fs.StringVar(&c.Client.CertFile, "cert", "", "client certificate file (PEM), with -key"+asVegeta)
	fs.StringVar(&c.Client.KeyFile, "key", "", "client private key file (PEM), with -cert"+asVegeta)
	fs.BoolVar(&raw.keepalive, "keepalive", true, "reuse connections between requests"+asVegeta)
	fs.IntVar(&c.Client.Connections, "connections", 0, "idle connections kept open per host (default: one per worker)"+asVegeta)
	fs.IntVar(&c.Client.MaxConnections, "max-connections", 0, "at most this many connections per host, dialing, in use or idle (0: no cap)"+asVegeta)
	fs.StringVar(&c.Client.UnixSocket, "unix-socket", "", "connect to this Unix socket, whatever the URL's host (sent as the Host)"+asVegeta)
	fs.IntVar(&c.Client.Redirects, "redirects", defaultRedirects, "redirects followed per request; 0: none, the 3xx is the result"+asVegeta)
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
	c := &cfg.Config
	switch {
	case c.Requests < 0:
		return usagef("-n must not be negative, got %d", c.Requests)
	case c.Workers < 1:
		return usagef("-c must be at least 1, got %d", c.Workers)
	case c.Workers > loadgen.MaxConcurrency:
		return usagef("-c must be at most %d, got %d: each user is a goroutine with a connection", loadgen.MaxConcurrency, c.Workers)
	case c.MaxWorkers < 1:
		return usagef("-max-workers must be at least 1, got %d", c.MaxWorkers)
	case c.MaxWorkers > loadgen.MaxConcurrency:
		return usagef("-max-workers must be at most %d, got %d: each worker is a goroutine with a connection", loadgen.MaxConcurrency, c.MaxWorkers)
	case cfg.procs < 0:
		return usagef("-procs must be at least 0, got %d", cfg.procs)
	case c.HostRate < 0 || isNaNOrInf(c.HostRate):
		return usagef("-host-rate must be a non-negative number, got %v", c.HostRate)
	case c.Duration < 0:
		return usagef("-duration must not be negative, got %v", c.Duration)
	case c.Client.Timeout <= 0:
		return usagef("-timeout must be positive, got %v", c.Client.Timeout)
	case c.Client.HeaderTimeout < 0:
		return usagef("-header-timeout must not be negative, got %v", c.Client.HeaderTimeout)
	case cfg.format != "text" && cfg.format != "json" && cfg.format != "csv":
		return usagef("-o is the output type, text, json or csv (as hey's), got %q; the results file is -output FILE (as vegeta's)", cfg.format)
	case cfg.format == "csv" && cfg.output != "":
		return usagef("-o csv writes every result to stdout: give it or -output, not both")
	case set["d"] && set["D"]:
		return usagef("-d and -D cannot be used together")
	case set["n"] && c.Requests == 0:
		return usagef("-n must be at least 1, got 0")
	case c.Client.Connections < 0:
		return usagef("-connections must not be negative, got %d", c.Client.Connections)
	case c.Client.MaxConnections < 0:
		return usagef("-max-connections must not be negative, got %d", c.Client.MaxConnections)
	case c.Client.Redirects < 0:
		return usagef("-redirects must not be negative, got %d", c.Client.Redirects)
	case (c.Client.CertFile == "") != (c.Client.KeyFile == ""):
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
	c := &cfg.Config
	cfg.method = strings.ToUpper(cfg.method)
	if !loadgen.ValidMethod(cfg.method) {
		return usagef("-m: invalid method %q", cfg.method)
	}
	c.Client.NoHTTP2, c.Client.DisableKeepAlives, c.CoarseTimer = !raw.http2, !raw.keepalive, !cfg.precise
	if c.Rate != nil {
		if err := c.Rate.Fit(&c.Duration, set["duration"]); err != nil {
			return usagef("-rate: %v", err)
		}
	}
	if c.Rate != nil && set["c"] && !set["max-workers"] {
		c.MaxWorkers = c.Workers // -c with -rate: at most that many in flight
	}
	if c.Client.Connections == 0 {
		c.Client.Connections = c.Workers
		if c.Rate != nil {
			c.Client.Connections = c.MaxWorkers
		}
	}

	cfg.header = http.Header{}
	for _, line := range raw.headers.lines {
		name, value, _ := loadgen.ParseHeader(line) // checked by Set
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
			c.Rate = loadgen.ConstantRate(demoRate)
		}
		if !set["duration"] && c.Duration == 0 {
			c.Duration = demoDuration
		}
	}
	if c.Requests == 0 && c.Duration == 0 {
		c.Requests = defaultRequests
	}
	return nil
}

// defaults is the target that the command line makes of a URL: -m, -H, -d or -D.
func (cfg *config) defaults() *loadgen.Target {
	return &loadgen.Target{Method: cfg.method, Header: cfg.header, Host: cfg.host, Body: cfg.body, Weight: 1}
}

// settleTargets makes the targets: from -targets, the URLs given, or none for the demo.
func settleTargets(cfg *config, raw *rawFlags) error {
	d := cfg.defaults()
	switch {
	case raw.targetsFile != "":
		ts, err := loadgen.ReadTargetsFile(raw.targetsFile, raw.targetsFmt, d, os.Stdin)
		if err != nil {
			return usagef("-targets: %v", err)
		}
		cfg.Targets = ts
	case len(raw.positional) == 0:
		cfg.demo = true
	default:
		for _, p := range raw.positional {
			t, err := newTarget(d, p)
			if err != nil {
				return err
			}
			cfg.Targets = append(cfg.Targets, t)
		}
	}
	return nil
}

// newTarget is the target of rawURL with the defaults d.
func newTarget(d *loadgen.Target, rawURL string) (*loadgen.Target, error) {
	t, err := loadgen.NewTarget(rawURL)
	if err != nil {
		return nil, usagef("%v", err)
	}
	t.Method, t.Header, t.Host, t.Body = d.Method, d.Header.Clone(), d.Host, d.Body
	return t, nil
}

func isNaNOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
