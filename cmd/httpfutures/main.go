// Command httpfutures is a load generator built on the httpfutures transport, in the spirit of
// hey and vegeta: a closed model (-c users as fast as the server answers) or an open model
// (-rate: a constant rate, steps or ramps; latency measured from each request's due time, so
// that a stalled server is not hidden by coordinated omission, and the generator's own send lag
// reported apart). A run ends at its -duration; what fell due and was not sent is counted as
// dropped.
//
// Usage:
//
//	httpfutures [flags] [URL...]
//	httpfutures report [-type text|json|hist[...]|hdrplot] [-threshold ...] [FILE...]
//	httpfutures plot [-title T] [-o FILE] [FILE...]
//
// Without a URL it runs a short demo against an embedded server on 127.0.0.1. The report is
// vegeta's text layout, or with -o json vegeta's JSON report fields; -output FILE keeps every
// result in vegeta's JSON results format, which the report and plot subcommands (and vegeta's)
// read. Run with -h for the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling: a second one ends the program at
	// once instead of waiting for the requests in flight.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
