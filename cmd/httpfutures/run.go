package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the run failed: nothing sent, or no response at all
	exitUsage = 2 // bad flags or URL
)

// run is the whole program: it parses args, sends the requests, writes the report to stdout and
// errors and progress to stderr, and returns the exit status. ctx ending (a signal) stops the
// sending; the requests in flight finish and the report is still written.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: %v\n", err)
		return exitUsage
	}
	defer cfg.shared.close()

	targets := []string{cfg.target}
	if cfg.demo {
		srv, err := startDemoServer()
		if err != nil {
			fmt.Fprintf(stderr, "httpfutures: %v\n", err)
			return exitFail
		}
		defer srv.Close()
		targets = []string{srv.URL + "/get", srv.URL + "/delay/5"}
		fmt.Fprintf(stderr, "demo: no URL given, so this loads an embedded server at %s (%s); "+
			"point it at a real server with: httpfutures [flags] URL\n", srv.URL, describeLoad(cfg, "/get and /delay/5"))
	}

	a, err := newAttacker(cfg, targets)
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: %v\n", err)
		return exitFail
	}
	r := a.run(ctx, stderr)

	if cfg.output == "json" {
		err = r.writeJSON(stdout)
	} else {
		err = r.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures: writing the report: %v\n", err)
		return exitFail
	}

	switch {
	case r.Requests == 0:
		fmt.Fprintln(stderr, "httpfutures: no request was sent")
		return exitFail
	case r.responses == 0:
		e := r.errorKinds[0]
		fmt.Fprintf(stderr, "httpfutures: all %d requests failed: %s (%s)\n", r.Requests, e.kind, e.example)
		return exitFail
	}
	return exitOK
}

// describeLoad says in a few words what the run will send.
func describeLoad(cfg *config, what string) string {
	var parts []string
	parts = append(parts, cfg.method+" "+what)
	if cfg.rate > 0 {
		parts = append(parts, fmt.Sprintf("%g req/s", cfg.rate))
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
