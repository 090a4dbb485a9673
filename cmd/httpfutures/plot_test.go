package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plotResults is two attacks of 200 results each, 10ms apart: a's latency rises 1..100ms,
// every tenth a failure; b's is 5ms but for a spike of 400ms from 1s to 1.2s.
func plotResults() []plotResult {
	t0 := time.Date(2025, 3, 15, 14, 30, 0, 0, time.UTC)
	var rs []plotResult
	for i := range 200 {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		r := plotResult{attack: "a", seq: uint64(i), code: 200, ts: at, lat: time.Duration(1+i/2) * time.Millisecond}
		if i%10 == 9 {
			r.code, r.err = 0, "timeout"
		}
		rs = append(rs, r)
		lat := 5 * time.Millisecond
		if i >= 100 && i < 120 {
			lat = 400 * time.Millisecond
		}
		rs = append(rs, plotResult{attack: "b", seq: uint64(i), code: 200, ts: at, lat: lat})
	}
	return rs
}

var dataRE = regexp.MustCompile(`(?s)<script type="application/json" id="data">(.*?)</script>`)

// pageData decodes the data a page embeds.
func pageData(t *testing.T, page string) plotData {
	t.Helper()
	m := dataRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the page embeds its data")
	var d plotData
	require.NoError(t, json.Unmarshal([]byte(m[1]), &d))
	return d
}

func TestPlotPage(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, writePlot(&buf, "a <title>", plotResults()))
	page := buf.String()
	d := pageData(t, page)

	// A series per attack, its errors apart, each with its colour.
	var names []string
	counts := map[string]int{}
	for _, s := range d.Series {
		names = append(names, s.Name)
		counts[s.Name] = len(s.Points)
		assert.Equal(t, s.Count, len(s.Points), "no point left out at this size")
	}
	assert.Equal(t, []string{"a", "a: errors", "b"}, names, "b has no errors: no series for them")
	assert.Equal(t, map[string]int{"a": 180, "a: errors": 20, "b": 200}, counts)
	assert.NotEqual(t, d.Series[0].Color, d.Series[2].Color, "the attacks have their own colours")
	assert.Equal(t, plotErrorColor, d.Series[1].Color)
	assert.Equal(t, []string{"timeout"}, d.Errors)

	// The distribution: percentiles, labelled as such, only as far as 200 results reach.
	require.Len(t, d.Quantiles, 2)
	var ps []float64
	for _, p := range d.Quantiles[1].Points {
		ps = append(ps, p[0])
	}
	assert.Equal(t, []float64{0, 50, 75, 90, 95, 99, 99.5}, ps)
	assert.Equal(t, 400.0, d.Quantiles[1].Points[len(ps)-1][1], "b's spike is its tail")
	assert.Equal(t, 0.9, d.Attacks[0].Success)

	assert.Contains(t, page, "<title>a &lt;title&gt;</title>", "the title is escaped")
	for _, u := range regexp.MustCompile(`https?://[^"\s]*`).FindAllString(page, -1) {
		assert.Equal(t, "http://www.w3.org/2000/svg", u, "the page needs no network: only SVG's namespace is a URL")
	}
	for _, external := range []string{"<script src", "<link", "@import"} {
		assert.NotContains(t, page, external, "the page needs no network")
	}
}

// Many results are thinned to what a browser draws well, errors kept apart.
func TestPlotThinsManyPoints(t *testing.T) {
	t0 := time.Now()
	var rs []plotResult
	for i := range 3 * maxPlotPoints {
		rs = append(rs, plotResult{ts: t0.Add(time.Duration(i) * time.Millisecond), lat: time.Duration(1+i%7) * time.Millisecond, code: 200})
	}
	d := plotDataOf("many", rs)
	assert.Equal(t, 3*maxPlotPoints, d.Series[0].Count)
	assert.Less(t, len(d.Series[0].Points), maxPlotPoints)
	assert.Positive(t, len(d.Series[0].Points))
}

func TestPlotSubcommand(t *testing.T) {
	srv, _ := countingServer(t)
	dir := t.TempDir()
	a := attackTo(t, dir, "a.json", "-n", "25", "-name", "first", srv.URL)
	b := attackTo(t, dir, "b.csv", "-n", "15", "-name", "second", srv.URL)
	out := filepath.Join(dir, "plot.html")
	var stdout, stderr bytes.Buffer

	code := run(t.Context(), []string{"plot", "-title", "run", "-output", out, a, b}, &stdout, &stderr)

	require.Equal(t, exitOK, code, stderr.String())
	page, err := os.ReadFile(out)
	require.NoError(t, err)
	d := pageData(t, string(page))
	require.Len(t, d.Series, 2, "a series per attack, named by -name, JSON and CSV alike")
	assert.Equal(t, "first", d.Series[0].Name)
	assert.Equal(t, 25, d.Series[0].Count)
	assert.Equal(t, "second", d.Series[1].Name)
	assert.Equal(t, 15, d.Series[1].Count)

	// -o is the output type everywhere: a file name there is refused with the flag to use.
	stderr.Reset()
	code = run(t.Context(), []string{"plot", "-o", out, a}, &stdout, &stderr)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr.String(), "give -output "+out)
}

// The page in a real browser: headless Chromium draws it, and a pointer uses it as a person
// would: the legend is coloured, a hover shows a point's values, a drag zooms on a time range,
// the log scale changes the axis, and the screenshot has each series' colour. Without
// Chromium the test is skipped, except in CI, where it must run.
func TestPlotInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed: .ci/run installs it")
		}
		t.Skip("chromium is not installed")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "plot.html")
	f, err := os.Create(page)
	require.NoError(t, err)
	require.NoError(t, writePlot(f, "in chromium", plotResults()))
	require.NoError(t, f.Close())

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 1100))
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(sel)+`).length`))
		require.NoError(t, err)
		return n
	}
	strs := func(js string) []string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
		require.NoError(t, err, js)
		return v
	}
	str := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		require.NoError(t, err, js)
		return v
	}
	nums := func(js string) []float64 {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](js))
		require.NoError(t, err, js)
		return v
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("file://"+page)))
	require.Eventually(t, func() bool { return count("#time circle") > 0 }, 30*time.Second, 50*time.Millisecond, "the page draws its points")

	// Every point drawn, a series a class; the legend coloured as its series.
	assert.Equal(t, 180, count("#time circle.s0"))
	assert.Equal(t, 20, count("#time circle.s1"))
	assert.Equal(t, 200, count("#time circle.s2"))
	legend := strs(`[...document.querySelectorAll("#legend-time .item")].map(e => e.textContent + " " + getComputedStyle(e.firstChild).backgroundColor)`)
	assert.Equal(t, []string{"a: 180 rgb(31, 119, 180)", "a: errors: 20 rgb(214, 39, 40)", "b: 200 rgb(44, 160, 44)"}, legend)
	ticks := strs(`[...document.querySelectorAll("#dist .xtick")].map(e => e.textContent)`)
	assert.Equal(t, []string{"p0 (min)", "p90", "p99"}, ticks, "the distribution's axis is in percentiles")

	// Hover: the tooltip gives the point's values.
	at := nums(`(() => { const r = document.querySelectorAll("#time circle.s1")[4].getBoundingClientRect(); return [r.x + r.width/2, r.y + r.height/2]; })()`)
	require.NoError(t, chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, at[0], at[1])))
	tipText := str(`getComputedStyle(document.getElementById("tip")).display === "block" ? document.getElementById("tip").textContent : ""`)
	assert.Contains(t, tipText, "attack a\nseq 49\n")
	assert.Contains(t, tipText, "latency 25.00 ms")
	assert.Contains(t, tipText, "error timeout")

	// The screenshot, before zooming: each series' colour is on it.
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	if p := os.Getenv("HTTPFUTURES_PLOT_SCREENSHOT"); p != "" { // to look at
		require.NoError(t, os.WriteFile(p, shot, 0o600))
	}
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	pixels := colourCounts(img, map[string]color.RGBA{"a": {0x1f, 0x77, 0xb4, 0xff}, "err": {0xd6, 0x27, 0x28, 0xff}, "b": {0x2c, 0xa0, 0x2c, 0xff}})
	t.Logf("pixels of each series: %v", pixels)
	assert.Greater(t, pixels["a"], 180*5, "a's successes are drawn")
	assert.Greater(t, pixels["err"], 20*5, "the failures are drawn")
	assert.Greater(t, pixels["b"], 200*5, "b is drawn")

	// Zoom: a drag over the middle third of the time axis keeps the points of that time.
	box := nums(`(() => { const r = document.getElementById("time").getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()`)
	plotW := box[2] - 64 - 18
	x1, x2, y := box[0]+64+plotW/3, box[0]+64+2*plotW/3, box[1]+box[3]/2
	require.NoError(t, chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x1, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, (x1+x2)/2, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x2, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
	))
	rangeText := str(`document.getElementById("range").textContent`)
	assert.Regexp(t, `^showing 0\.66\d s to 1\.3\d\d s of the run$`, rangeText)
	zoomed := count("#time circle.s2")
	assert.InDelta(t, 67, zoomed, 3, "b's points of that third of the run")

	// The log scale: the latency axis goes by powers of ten.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#log"))))
	yTicks := strs(`[...document.querySelectorAll("#time text[text-anchor=end]")].map(e => e.textContent)`)
	assert.Contains(t, yTicks, "1")
	assert.Contains(t, yTicks, "10")
	assert.Contains(t, yTicks, "100")
	assert.Equal(t, zoomed, count("#time circle.s2"), "the zoom is kept")
	if p := os.Getenv("HTTPFUTURES_PLOT_SCREENSHOT"); p != "" {
		zoomedShot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(strings.TrimSuffix(p, ".png")+"-zoomed-log.png", zoomedShot, 0o600))
	}

	// A double-click zooms out.
	require.NoError(t, chromedp.Do(ctx, chromedp.MouseClickXY((x1+x2)/2, y, chromedp.ClickCount(2))))
	assert.Equal(t, 200, count("#time circle.s2"))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// colourCounts counts the pixels of img near each colour.
func colourCounts(img image.Image, colours map[string]color.RGBA) map[string]int {
	counts := map[string]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			for name, c := range colours {
				if near(img, x, y, c) {
					counts[name]++
				}
			}
		}
	}
	return counts
}

func near(img image.Image, x, y int, c color.RGBA) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	d := func(a uint32, b uint8) int { return int(a>>8) - int(b) }
	abs := func(v int) int { return max(v, -v) }
	return abs(d(r, c.R))+abs(d(g, c.G))+abs(d(b, c.B)) < 24
}
