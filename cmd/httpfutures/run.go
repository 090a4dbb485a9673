package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
		d := targetDefaults{method: cfg.method, header: cfg.header, host: cfg.host, body: cfg.body}
		cfg.targets = []*target{d.target(srv.URL + "/get"), d.target(srv.URL + "/delay/5")}
		fmt.Fprintf(stderr, "demo: no URL given, so this loads an embedded server at %s (%s); "+
			"point it at a real server with: httpfutures [flags] URL\n", srv.URL, describeLoad(cfg, "/get and /delay/5"))
	}

	var results *resultWriter
	report := stdout
	switch cfg.output {
	case "":
	case "-":
		results = newResultWriter(stdout)
		report = stderr // the results take stdout
	default:
		f, err := os.Create(cfg.output)
		if err != nil {
			fmt.Fprintf(stderr, "httpfutures: -output: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		results = newResultWriter(f)
	}

	a, err := newAttacker(cfg, results)
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: %v\n", err)
		return exitUsage
	}
	// The demo's server runs in this process: it keeps all the processors it has.
	stopProcs := startProcs(cfg.procs, cfg.rate != nil && !cfg.demo)
	defer stopProcs() // if the run panics
	o := a.run(ctx, stderr)
	stopProcs()
	r := o.report
	if results != nil {
		if err := results.flush(); err != nil {
			fmt.Fprintf(stderr, "httpfutures: writing the results: %v\n", err)
			return exitFail
		}
	}
	if cfg.format == "json" {
		err = r.writeJSON(report)
	} else {
		err = r.writeText(report)
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: writing the report: %v\n", err)
		return exitFail
	}
	if o.bottleneck != "" {
		fmt.Fprintf(stderr, "httpfutures: warning: the generator, not the server, limited the run: %s\n", o.bottleneck)
	}
	return verdict(r, cfg.thresholds, stderr)
}

// verdict is the exit status a report earns: exitFail when nothing was sent or nothing
// succeeded, exitThreshold when a threshold was missed.
func verdict(r *report, ts []threshold, stderr io.Writer) int {
	switch {
	case r.Requests == 0:
		fmt.Fprintln(stderr, "httpfutures: no request was sent")
		return exitFail
	case r.successes == 0:
		what := "got no 2xx or 3xx response"
		if len(r.errorKinds) > 0 && r.errorKinds[0].count == r.Requests {
			e := r.errorKinds[0]
			what = fmt.Sprintf("failed: %s (%s)", e.kind, e.example)
		} else if codes := r.codesText(); codes != "" {
			what += " (status codes " + codes + ")"
		}
		fmt.Fprintf(stderr, "httpfutures: all %d requests %s\n", r.Requests, what)
		return exitFail
	}
	if missed := checkThresholds(ts, r); len(missed) > 0 {
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
	if cfg.rate != nil {
		parts = append(parts, cfg.rate.String()+" req/s")
	} else {
		parts = append(parts, fmt.Sprintf("%d workers", cfg.workers))
	}
	if cfg.requests > 0 {
		parts = append(parts, fmt.Sprintf("up to %d requests", cfg.requests))
	}
	if cfg.duration > 0 {
		parts = append(parts, "for "+cfg.duration.String())
	}
	return strings.Join(parts, ", ")
}
