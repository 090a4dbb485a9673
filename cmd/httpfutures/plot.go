package main

import (
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"slices"
	"time"

	"github.com/httpfutures/httpfutures/loadgen"
)

// maxPlotPoints bounds the points of the latency chart: past it, the points of a series that
// fall in one cell of a fine grid of time and log latency are drawn once (the errors are all
// kept up to the bound), so that a page of a long run stays small enough for a browser.
const maxPlotPoints = 40000

// plotPalette colours the attacks; red is kept for errors.
var plotPalette = []string{"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"}

const plotErrorColor = "#d62728"

// plotPercentiles are the points of the latency distribution, those that a series has
// enough results for.
var plotPercentiles = []float64{0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999}

//go:embed plot.html.tmpl
var plotTemplateText string

var plotTemplate = template.Must(template.New("plot").Parse(plotTemplateText))

// plotData is what the page draws, embedded in it as JSON.
type plotData struct {
	Title     string       `json:"title"`
	Start     int64        `json:"start"` // the earliest timestamp, Unix milliseconds
	Series    []plotSeries `json:"series"`
	Quantiles []plotCurve  `json:"quantiles"`
	Errors    []string     `json:"errors"` // the error messages the points refer to
	Attacks   []plotAttack `json:"attacks"`
}

// plotSeries is the points of one attack's successes or errors in the latency chart: each
// [seconds into the run, latency in ms, status code, seq, error index or -1].
type plotSeries struct {
	Name   string       `json:"name"`
	Attack string       `json:"attack"`
	Color  string       `json:"color"`
	Errors bool         `json:"errors"`
	Count  int          `json:"count"` // results, drawn or not
	Points [][5]float64 `json:"points"`
}

// plotCurve is one attack's latency distribution: each [percentile, latency in ms].
type plotCurve struct {
	Name   string       `json:"name"`
	Color  string       `json:"color"`
	Points [][2]float64 `json:"points"`
}

// plotAttack is a line of the page's summary table.
type plotAttack struct {
	Name     string  `json:"name"`
	Color    string  `json:"color"`
	Requests int     `json:"requests"`
	Success  float64 `json:"success"` // ratio
	P50      float64 `json:"p50"`     // ms
	P99      float64 `json:"p99"`
	Max      float64 `json:"max"`
}

// plotPage is the template's data.
type plotPage struct {
	Title string
	Data  template.JS
}

// runPlot is "httpfutures plot": a self-contained HTML page, no network needed, of the latency
// of each request over time and of the latency distribution, a series per attack, from results
// files. The attack is each result's name (-name), or its file's name.
func runPlot(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("httpfutures plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	title := fs.String("title", "httpfutures results", "the page's title"+asVegeta)
	output := fs.String("output", "-", "write the page to this file (- for stdout)"+asVegeta)
	format := fs.String("o", "", "output type: html, the only one (the page's file is -output FILE)"+asHey)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: httpfutures plot [-title T] [-output FILE] [FILE...]")
		fmt.Fprintln(stderr, "Reads results files, JSON or CSV, and writes a page that needs no network:")
		fmt.Fprintln(stderr, "latency over time (hover for a point, drag to zoom) and its distribution,")
		fmt.Fprintln(stderr, "a series per attack, on a linear or log scale.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *format != "" && *format != "html" {
		fmt.Fprintf(stderr, "httpfutures plot: -o is the output type, and a plot is html; to write the page to %s, give -output %s\n", *format, *format)
		return exitUsage
	}
	var results []plotResult
	err := openResults(fs.Args(), stdin, func(name string, r *loadgen.Result) {
		attack := r.Attack
		if attack == "" && len(fs.Args()) > 1 {
			attack = name
		}
		results = append(results, plotResult{attack: attack, ts: r.Timestamp, lat: r.Latency, code: r.Code, err: r.Error, seq: r.Seq})
	})
	if err != nil {
		fmt.Fprintf(stderr, "httpfutures plot: %v\n", err)
		return exitUsage
	}
	w := stdout
	if *output != "-" {
		f, err := os.Create(*output)
		if err != nil {
			fmt.Fprintf(stderr, "httpfutures plot: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		w = f
	}
	if err := writePlot(w, *title, results); err != nil {
		fmt.Fprintf(stderr, "httpfutures plot: %v\n", err)
		return exitFail
	}
	return exitOK
}

// plotResult is what the plot keeps of a result.
type plotResult struct {
	attack string
	ts     time.Time
	lat    time.Duration
	code   uint16
	err    string
	seq    uint64
}

func (r plotResult) ok() bool { return r.err == "" && r.code >= 200 && r.code < 400 }

// writePlot writes the page for results.
func writePlot(w io.Writer, title string, results []plotResult) error {
	data, err := json.Marshal(plotDataOf(title, results)) // escapes <, > and &: safe in a script
	if err != nil {
		return err
	}
	return plotTemplate.Execute(w, plotPage{Title: title, Data: template.JS(data)})
}

// plotDataOf groups results by attack, in the order they first come.
func plotDataOf(title string, results []plotResult) plotData {
	d := plotData{Title: title, Errors: []string{}, Series: []plotSeries{}, Quantiles: []plotCurve{}, Attacks: []plotAttack{}}
	var t0 time.Time
	var names []string
	byName := map[string][]plotResult{}
	for _, r := range results {
		if t0.IsZero() || r.ts.Before(t0) {
			t0 = r.ts
		}
		if _, ok := byName[r.attack]; !ok {
			names = append(names, r.attack)
		}
		byName[r.attack] = append(byName[r.attack], r)
	}
	d.Start = t0.UnixMilli()
	var span float64 // seconds from the first timestamp to the last
	for _, r := range results {
		span = max(span, r.ts.Sub(t0).Seconds())
	}
	errIndex := map[string]int{}
	thin := len(results) > maxPlotPoints
	for i, name := range names {
		rs := byName[name]
		color := plotPalette[i%len(plotPalette)]
		label := name
		if label == "" {
			label = "requests"
		}
		ok := plotSeries{Name: label, Attack: name, Color: color, Points: [][5]float64{}}
		bad := plotSeries{Name: label + ": errors", Attack: name, Color: plotErrorColor, Errors: true, Points: [][5]float64{}}
		if len(names) == 1 {
			ok.Name, bad.Name = "success", "errors"
		}
		seen := map[[2]int]bool{}
		lats := make([]float64, 0, len(rs))
		var successes int
		for _, r := range rs {
			ms := float64(r.lat) / float64(time.Millisecond)
			lats = append(lats, ms)
			p := [5]float64{r.ts.Sub(t0).Seconds(), ms, float64(r.code), float64(r.seq), -1}
			s := &ok
			if r.ok() {
				successes++
			} else {
				s = &bad
				k, found := errIndex[r.err]
				if !found {
					k = len(d.Errors)
					errIndex[r.err] = k
					d.Errors = append(d.Errors, r.err)
				}
				p[4] = float64(k)
			}
			s.Count++
			if thin {
				// A grid of 1,000 columns over the run, 100 rows a decade of latency.
				cell := [2]int{int(p[0] / max(span, 1e-9) * 1000), int(math.Log10(max(ms, 1e-3)) * 100)}
				if s.Errors {
					cell[1] = -cell[1] - 1 // errors apart
				}
				if seen[cell] {
					continue
				}
				seen[cell] = true
			}
			s.Points = append(s.Points, p)
		}
		d.Series = append(d.Series, ok)
		if bad.Count > 0 {
			d.Series = append(d.Series, bad)
		}
		slices.Sort(lats)
		curve := plotCurve{Name: label, Color: color}
		n := float64(len(lats))
		for _, p := range plotPercentiles {
			if p > 0 && n < 1/(1-p/100) {
				break // too few results for this percentile to mean anything
			}
			curve.Points = append(curve.Points, [2]float64{p, quantileOf(lats, p)})
		}
		d.Quantiles = append(d.Quantiles, curve)
		d.Attacks = append(d.Attacks, plotAttack{
			Name: label, Color: color, Requests: len(rs), Success: float64(successes) / n,
			P50: quantileOf(lats, 50), P99: quantileOf(lats, 99), Max: lats[len(lats)-1],
		})
	}
	return d
}

// quantileOf is the latency at percentile p of sorted: the least value that at least p% of
// them do not exceed.
func quantileOf(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
