// Command httpfutures is a load generator built on the httpfutures transport, in the spirit of
// hey and vegeta: a closed model (-c workers as fast as they go) or an open model (-rate
// requests per second, latency measured from each request's scheduled send time, so that a
// stalled server is not hidden by coordinated omission).
//
// Usage:
//
//	httpfutures [flags] [URL]
//
// Without a URL it runs a short demo against an embedded server on 127.0.0.1. The report is
// vegeta-like text, or with -o json vegeta's JSON report fields. Run with -h for the flags.
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
