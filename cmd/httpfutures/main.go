// Command httpfutures is a load generator built on the httpfutures transport, in the spirit of
// hey and vegeta: a closed model (-c users as fast as the server answers) or an open model
// (-rate: a constant rate, steps or ramps; latency measured from each request's due time, so
// that a stalled server is not hidden by coordinated omission, and the generator's own send lag
// reported apart). A run ends at its -duration; what fell due and was not sent is counted as
// dropped. Its engine is the package loadgen, for Go programs; this command holds the flags,
// the live view, the report and plot subcommands, -prometheus and the tour.
//
// Usage:
//
//	httpfutures [flags] [URL...]
//	httpfutures report [-type text|json|hist[...]|hdrplot] [-output FILE] [-threshold ...] [FILE...]
//	httpfutures plot [-title T] [-output FILE] [FILE...]
//	httpfutures tour
//
// Without a URL it runs a short demo against an embedded server on 127.0.0.1; tour shows the
// library at work, a line a feature. The report is vegeta's text layout, or with -o json
// vegeta's JSON report fields; -output FILE keeps every result in vegeta's JSON results format
// (or CSV), which the report and plot subcommands (and vegeta's) read. Each flag's -h says
// whose convention it follows. See README.md beside this file.
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
