package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/httpfutures/httpfutures/loadgen"
)

// openResults calls fn with every result of the files named (standard input if none, or "-").
func openResults(files []string, stdin io.Reader, fn func(name string, r *loadgen.Result)) error {
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		if name == "-" {
			if err := loadgen.ReadResults(stdin, "stdin", func(r *loadgen.Result) { fn(name, r) }); err != nil {
				return err
			}
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		err = loadgen.ReadResults(f, name, func(r *loadgen.Result) { fn(name, r) })
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// runReport is "httpfutures report": the report of one or several results files together (the
// parts of a distributed run merged).
func runReport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("httpfutures report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	typ := fs.String("type", "text", "report type: text, json, hist[BUCKETS] (e.g. hist[0,1ms,5ms,20ms]) or hdrplot"+asVegeta)
	output := fs.String("output", "-", "write the report to this file (- for stdout)"+asVegeta)
	var thresholds thresholdFlag
	fs.Var(&thresholds, "threshold", "pass criteria, e.g. 'p99<50ms,success>=99.9%': exit status 3 when one is missed"+asOwn)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: httpfutures report [-type text|json|hist[...]|hdrplot] [-output FILE] [-threshold ...] [FILE...]")
		fmt.Fprintln(stderr, "Reads results files, JSON or CSV (as -output and vegeta encode write them), as one run.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	var buckets []time.Duration
	switch t := *typ; {
	case t == "text", t == "json", t == "hdrplot":
	case strings.HasPrefix(t, "hist"):
		var err error
		if buckets, err = parseBuckets(t); err != nil {
			fmt.Fprintf(stderr, "httpfutures report: -type: %v\n", err)
			return exitUsage
		}
	default:
		fmt.Fprintf(stderr, "httpfutures report: -type must be text, json, hist[...] or hdrplot, got %q\n", t)
		return exitUsage
	}

	m := loadgen.NewMetrics()
	hist := newHistogram(buckets)
	err := openResults(fs.Args(), stdin, func(_ string, r *loadgen.Result) {
		m.Add(r)
		hist.add(r.Latency)
	})
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures report: %v\n", err)
		return exitUsage
	}
	if *output != "-" {
		f, err := os.Create(*output)
		if err != nil {
			fmt.Fprintf(stderr, "httpfutures report: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		stdout = f
	}
	r := m.Report()
	switch {
	case *typ == "json":
		err = r.WriteJSON(stdout)
	case *typ == "hdrplot":
		_, err = m.Latencies().PercentilesPrint(stdout, 5, float64(time.Millisecond))
	case buckets != nil:
		err = hist.write(stdout)
	default:
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures report: %v\n", err)
		return exitFail
	}
	if len(thresholds.list) > 0 {
		if missed := loadgen.CheckThresholds(thresholds.list, r); len(missed) > 0 {
			for _, m := range missed {
				fmt.Fprintf(stderr, "httpfutures report: %s\n", m)
			}
			return exitThreshold
		}
	}
	return exitOK
}

// histogram counts latencies in buckets: bucket i holds [bounds[i], bounds[i+1]), the last one
// up to infinity. Its zero value has no buckets: use newHistogram.
type histogram struct {
	bounds []time.Duration
	counts []uint64
	total  uint64
}

// parseBuckets parses "hist[0,1ms,5ms]": increasing durations.
func parseBuckets(t string) ([]time.Duration, error) {
	inner, ok := strings.CutPrefix(t, "hist[")
	if !ok || !strings.HasSuffix(inner, "]") {
		return nil, fmt.Errorf("%q is not of the form hist[0,1ms,5ms,...]", t)
	}
	inner = strings.TrimSuffix(inner, "]")
	var bs []time.Duration
	for _, p := range strings.Split(inner, ",") {
		p = strings.TrimSpace(p)
		if p == "0" {
			p = "0s"
		}
		d, err := time.ParseDuration(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("bucket %q is not a duration", p)
		}
		if len(bs) > 0 && d <= bs[len(bs)-1] {
			return nil, fmt.Errorf("bucket %v is not after %v: buckets must increase", d, bs[len(bs)-1])
		}
		bs = append(bs, d)
	}
	return bs, nil
}

// newHistogram returns a histogram of the buckets that bounds start. As in vegeta's, a bucket
// from 0 comes first if the first bound is above 0, so that every result is counted.
func newHistogram(bounds []time.Duration) *histogram {
	if len(bounds) > 0 && bounds[0] > 0 {
		bounds = append([]time.Duration{0}, bounds...)
	}
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
}

func (h *histogram) add(d time.Duration) {
	h.total++
	for i := len(h.bounds) - 1; i > 0; i-- {
		if d >= h.bounds[i] {
			h.counts[i]++
			return
		}
	}
	if len(h.counts) > 0 {
		h.counts[0]++ // below every bound but the first: a latency is never negative
	}
}

// write writes the histogram in the layout of vegeta's hist report.
func (h *histogram) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Bucket\t\t#\t%%\tHistogram\n")
	for i, n := range h.counts {
		hi := "+Inf"
		if i+1 < len(h.bounds) {
			hi = h.bounds[i+1].String()
		}
		pct := 0.0
		if h.total > 0 {
			pct = float64(n) / float64(h.total)
		}
		fmt.Fprintf(tw, "[%s,\t%s]\t%d\t%.2f%%\t%s\n", h.bounds[i], hi, n, pct*100, strings.Repeat("#", int(pct*75)))
	}
	return tw.Flush()
}
