package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/httpfutures/httpfutures/loadgen"
)

// Exit statuses.
const (
	exitOK        = 0
	exitFail      = 1 // the run failed: nothing sent, or no request succeeded (no 2xx or 3xx)
	exitUsage     = 2 // bad flags, URL or file
	exitThreshold = 3 // a -threshold was missed
)

// run is the whole program: it runs the subcommand or the attack args name, writes the report to
// stdout and errors and the live view to stderr, and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "report":
			return runReport(args[1:], os.Stdin, stdout, stderr)
		case "plot":
			return runPlot(args[1:], os.Stdin, stdout, stderr)
		case "tour":
			return runTour(ctx, args[1:], stdout, stderr)
		}
	}
	return runAttack(ctx, args, stdout, stderr)
}

// runAttack sends the requests. ctx ending (a signal) stops the sending; the requests in flight
// finish and the report is still written.
func runAttack(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: %v\n", err)
		return exitUsage
	}
	defer cfg.shared.close()

	if cfg.demo {
		srv, err := startDemoServer()
		if err != nil {
			fmt.Fprintf(stderr, "httpfutures: %v\n", err)
			return exitFail
		}
		defer srv.Close()
		d := cfg.defaults()
		for _, path := range []string{"/get", "/delay/5"} {
			t, _ := newTarget(d, srv.URL+path) // a loopback URL: valid
			cfg.Targets = append(cfg.Targets, t)
		}
		fmt.Fprintf(stderr, "demo: no URL given, so this loads an embedded server at %s (%s); "+
			"point it at a real server with: httpfutures [flags] URL; for a tour of the library: httpfutures tour\n",
			srv.URL, describeLoad(cfg, "/get and /delay/5"))
	}

	report := stdout
	switch {
	case cfg.format == "csv":
		cfg.Results = loadgen.NewResultWriter(stdout, loadgen.CSVResults)
		report = stderr // the results take stdout
	case cfg.output == "":
	case cfg.output == "-":
		cfg.Results = loadgen.NewResultWriter(stdout, cfg.resultsFormat)
		report = stderr
	default:
		f, err := os.Create(cfg.output)
		if err != nil {
			fmt.Fprintf(stderr, "httpfutures: -output: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		cfg.Results = loadgen.NewResultWriter(f, cfg.resultsFormat)
	}
	cfg.Options = append(cfg.Options, cfg.shared.options()...)

	live := newLiveView(stderr)
	var prom *promExporter
	if cfg.prometheus != "" {
		if prom, err = startPrometheus(cfg.prometheus, cfg.Config); err != nil {
			fmt.Fprintf(stderr, "httpfutures: -prometheus: %v\n", err)
			return exitUsage
		}
		defer prom.close()
	}
	cfg.OnResult = joinObservers(live.observer(), prom.observer())

	a, err := loadgen.New(cfg.Config)
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: %v\n", err)
		return exitUsage
	}
	prom.watch(a)
	// The demo's server runs in this process: it keeps all the processors it has.
	stopProcs := startProcs(cfg.procs, cfg.Rate != nil && !cfg.demo)
	defer stopProcs() // if the run panics
	stopLive := live.start(a)
	defer stopLive()
	r := a.Run(ctx)
	stopLive()
	stopProcs()
	if cfg.Results != nil {
		if err := cfg.Results.Flush(); err != nil {
			fmt.Fprintf(stderr, "httpfutures: writing the results: %v\n", err)
			return exitFail
		}
	}
	if cfg.format == "json" {
		err = r.WriteJSON(report)
	} else {
		err = r.WriteText(report)
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: writing the report: %v\n", err)
		return exitFail
	}
	if r.Bottleneck != "" {
		fmt.Fprintf(stderr, "httpfutures: warning: the generator, not the server, limited the run: %s\n", r.Bottleneck)
	}
	return verdict(r, cfg.thresholds, stderr)
}

// joinObservers returns a function that calls each of fns that is not nil, or nil if none is.
func joinObservers(fns ...func(*loadgen.Result)) func(*loadgen.Result) {
	var live []func(*loadgen.Result)
	for _, fn := range fns {
		if fn != nil {
			live = append(live, fn)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return func(r *loadgen.Result) {
		for _, fn := range live {
			fn(r)
		}
	}
}

// verdict is the exit status a report earns: exitFail when nothing was sent or nothing
// succeeded, exitThreshold when a threshold was missed.
func verdict(r *loadgen.Report, ts []loadgen.Threshold, stderr io.Writer) int {
	switch {
	case r.Requests == 0:
		fmt.Fprintln(stderr, "httpfutures: no request was sent")
		return exitFail
	case r.Successes == 0:
		what := "got no 2xx or 3xx response"
		if len(r.Failures) > 0 && r.Failures[0].Count == r.Requests && r.Failures[0].Kind != r.Failures[0].Example {
			e := r.Failures[0]
			what = fmt.Sprintf("failed: %s (%s)", e.Kind, e.Example)
		} else if codes := r.CodesText(); codes != "" {
			what += " (status codes " + codes + ")"
		}
		fmt.Fprintf(stderr, "httpfutures: all %d requests %s\n", r.Requests, what)
		return exitFail
	}
	if missed := loadgen.CheckThresholds(ts, r); len(missed) > 0 {
		for _, m := range missed {
			fmt.Fprintf(stderr, "httpfutures: %s\n", m)
		}
		return exitThreshold
	}
	return exitOK
}

// describeLoad says in a few words what the run will send.
func describeLoad(cfg *config, what string) string {
	var parts []string
	parts = append(parts, cfg.method+" "+what)
	if cfg.Rate != nil {
		parts = append(parts, cfg.Rate.String()+" req/s")
	} else {
		parts = append(parts, fmt.Sprintf("%d workers", cfg.Workers))
	}
	if cfg.Requests > 0 {
		parts = append(parts, fmt.Sprintf("up to %d requests", cfg.Requests))
	}
	if cfg.Duration > 0 {
		parts = append(parts, "for "+cfg.Duration.String())
	}
	return strings.Join(parts, ", ")
}
