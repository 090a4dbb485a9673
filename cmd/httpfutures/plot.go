package main

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"time"
)

// The plot's size, in SVG units, and the most points drawn: past it, points that would fall on
// the same spot are drawn once.
const (
	plotWidth     = 900
	plotHeight    = 320
	plotMargin    = 56
	maxPlotPoints = 20000
)

//go:embed plot.html.tmpl
var plotTemplateText string

var plotTemplate = template.Must(template.New("plot").Funcs(template.FuncMap{
	"subtract": func(a, b float64) float64 { return a - b },
	"half":     func(a float64) float64 { return a / 2 },
}).Parse(plotTemplateText))

// plotPoint is a point of a chart, in SVG coordinates.
type plotPoint struct {
	X, Y float64
}

// plotTick is an axis label.
type plotTick struct {
	Pos   float64
	Label string
}

// plotChart is one chart of the page.
type plotChart struct {
	ID, Title, XLabel, YLabel string
	Width, Height, Margin     float64
	XTicks, YTicks            []plotTick
	Series                    []plotSeries
	Line                      string // SVG points of a polyline through the first series; empty for none
}

type plotSeries struct {
	Class, Label string
	Points       []plotPoint
	Count        int // results in the series, drawn or not
}

type plotPage struct {
	Title  string
	Charts []plotChart
	Total  int
}

// runPlot is "httpfutures plot": a self-contained HTML page, no network needed, of the latency
// of each request over time and of the latency distribution, from results files.
func runPlot(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("httpfutures plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	title := fs.String("title", "httpfutures results", "the page's title")
	output := fs.String("o", "-", "write the page to this file (- for stdout)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	var results []Result
	err := openResults(fs.Args(), stdin, func(r *Result) {
		results = append(results, Result{Timestamp: r.Timestamp, Latency: r.Latency, Code: r.Code, Error: r.Error})
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

// writePlot writes the page for results.
func writePlot(w io.Writer, title string, results []Result) error {
	page := plotPage{Title: title, Total: len(results)}
	page.Charts = append(page.Charts, timeChart(results), distributionChart(results))
	return plotTemplate.Execute(w, page)
}

func newChart(id, title, xl, yl string) plotChart {
	return plotChart{ID: id, Title: title, XLabel: xl, YLabel: yl, Width: plotWidth, Height: plotHeight, Margin: plotMargin}
}

// scale maps [0, hi] onto [0, span].
func scale(v, hi, span float64) float64 {
	if hi <= 0 {
		return 0
	}
	return v / hi * span
}

// niceTicks returns about n round values from 0 to the first at or above hi.
func niceTicks(hi float64, n int) []float64 {
	if hi <= 0 {
		return []float64{0}
	}
	raw := hi / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ts []float64
	for k := 0; ; k++ {
		v := float64(k) * step
		ts = append(ts, v)
		if v >= hi*0.9999 {
			return ts
		}
	}
}

func formatTick(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// timeChart is each request's latency at its time into the run, successes and failures apart.
func timeChart(results []Result) plotChart {
	c := newChart("time", "Latency over time", "time into the run (s)", "latency (ms)")
	var t0 time.Time
	var tMax, latMax float64
	for i, r := range results {
		if i == 0 || r.Timestamp.Before(t0) {
			t0 = r.Timestamp
		}
	}
	for _, r := range results {
		tMax = max(tMax, r.Timestamp.Sub(t0).Seconds())
		latMax = max(latMax, float64(r.Latency)/float64(time.Millisecond))
	}
	xTicks, yTicks := niceTicks(tMax, 8), niceTicks(latMax, 5)
	xHi, yHi := xTicks[len(xTicks)-1], yTicks[len(yTicks)-1]
	if xHi == 0 {
		xHi = 1
	}
	if yHi == 0 {
		yHi = 1
	}
	iw, ih := c.Width-2*c.Margin, c.Height-2*c.Margin
	for _, v := range xTicks {
		c.XTicks = append(c.XTicks, plotTick{Pos: c.Margin + scale(v, xHi, iw), Label: formatTick(v)})
	}
	for _, v := range yTicks {
		c.YTicks = append(c.YTicks, plotTick{Pos: c.Height - c.Margin - scale(v, yHi, ih), Label: formatTick(v)})
	}
	ok := plotSeries{Class: "ok", Label: "success"}
	bad := plotSeries{Class: "err", Label: "error"}
	seen := map[[2]int]bool{}
	for _, r := range results {
		s := &ok
		if r.Error != "" || r.Code < 200 || r.Code >= 400 {
			s = &bad
		}
		s.Count++
		p := plotPoint{
			X: c.Margin + scale(r.Timestamp.Sub(t0).Seconds(), xHi, iw),
			Y: c.Height - c.Margin - scale(float64(r.Latency)/float64(time.Millisecond), yHi, ih),
		}
		if len(results) > maxPlotPoints {
			key := [2]int{int(p.X * 2), int(p.Y*2) * 2}
			if s == &bad {
				key[1]++
			}
			if seen[key] {
				continue
			}
			seen[key] = true
		}
		s.Points = append(s.Points, p)
	}
	c.Series = []plotSeries{ok, bad}
	return c
}

// distributionChart is the latency at each percentile, on the log scale of 1/(1-p) that
// HdrHistogram plots use, so that the tail is spread out.
func distributionChart(results []Result) plotChart {
	c := newChart("dist", "Latency distribution", "percentile", "latency (ms)")
	lats := make([]float64, len(results))
	for i, r := range results {
		lats[i] = float64(r.Latency) / float64(time.Millisecond)
	}
	slices.Sort(lats)
	pcts := []float64{0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999}
	type q struct{ x, lat float64 }
	var qs []q
	var latMax float64
	xOf := func(p float64) float64 { return math.Log10(1 / (1 - p/100)) }
	const xHi = 5.0 // 99.999%
	for _, p := range pcts {
		if len(lats) == 0 {
			break
		}
		i := int(math.Ceil(p/100*float64(len(lats)))) - 1
		i = min(max(i, 0), len(lats)-1)
		qs = append(qs, q{xOf(p), lats[i]})
		latMax = max(latMax, lats[i])
	}
	yTicks := niceTicks(latMax, 5)
	yHi := yTicks[len(yTicks)-1]
	if yHi == 0 {
		yHi = 1
	}
	iw, ih := c.Width-2*c.Margin, c.Height-2*c.Margin
	for _, p := range []float64{0, 90, 99, 99.9, 99.99, 99.999} {
		c.XTicks = append(c.XTicks, plotTick{Pos: c.Margin + scale(xOf(p), xHi, iw), Label: strconv.FormatFloat(p, 'g', -1, 64) + "%"})
	}
	for _, v := range yTicks {
		c.YTicks = append(c.YTicks, plotTick{Pos: c.Height - c.Margin - scale(v, yHi, ih), Label: formatTick(v)})
	}
	s := plotSeries{Class: "q", Label: "percentile", Count: len(qs)}
	for _, v := range qs {
		p := plotPoint{X: c.Margin + scale(v.x, xHi, iw), Y: c.Height - c.Margin - scale(v.lat, yHi, ih)}
		s.Points = append(s.Points, p)
		if c.Line != "" {
			c.Line += " "
		}
		c.Line += fmt.Sprintf("%.1f,%.1f", p.X, p.Y)
	}
	c.Series = []plotSeries{s}
	return c
}
