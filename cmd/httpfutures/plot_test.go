package main

import (
	"bytes"
	"context"
	"errors"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plotResults is 200 results 10ms apart: latency 1..100ms rising, every tenth a failure.
func plotResults() []Result {
	t0 := time.Date(2025, 3, 15, 14, 30, 0, 0, time.UTC)
	var rs []Result
	for i := range 200 {
		r := Result{Seq: uint64(i), Code: 200, Timestamp: t0.Add(time.Duration(i) * 10 * time.Millisecond),
			Latency: time.Duration(1+i/2) * time.Millisecond}
		if i%10 == 9 {
			r.Code, r.Error = 0, "timeout"
		}
		rs = append(rs, r)
	}
	return rs
}

var circleRE = regexp.MustCompile(`<circle class="pt (ok|err|q)" cx="([0-9.]+)" cy="([0-9.]+)"`)

// countCircles counts the points of each class in a page or a DOM dump.
func countCircles(html string) map[string]int {
	m := map[string]int{}
	for _, c := range circleRE.FindAllStringSubmatch(html, -1) {
		m[c[1]]++
	}
	return m
}

func TestPlotPage(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, writePlot(&buf, "a <title>", plotResults()))
	page := buf.String()

	assert.Equal(t, map[string]int{"ok": 180, "err": 20, "q": 12}, countCircles(page))
	assert.Contains(t, page, "<title>a &lt;title&gt;</title>", "the title is escaped")
	for _, external := range []string{"http://", "https://", "<script src", "<link"} {
		if external == "http://" {
			assert.Equal(t, 2, strings.Count(page, external), "only the two charts' SVG namespace names a URL")
			continue
		}
		assert.NotContains(t, page, external, "the page needs no network")
	}
	// Later points are further right; slower ones higher (smaller y).
	cs := circleRE.FindAllStringSubmatch(page, 2)
	assert.Less(t, cs[0][2], cs[1][2])
}

func TestPlotSubcommand(t *testing.T) {
	srv, _ := countingServer(t)
	dir := t.TempDir()
	results := attackTo(t, dir, "r.json", "-n", "25", srv.URL)
	out := filepath.Join(dir, "plot.html")
	var stdout, stderr bytes.Buffer

	code := run(t.Context(), []string{"plot", "-title", "run", "-o", out, results}, &stdout, &stderr)

	require.Equal(t, exitOK, code, stderr.String())
	page, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, 25, countCircles(string(page))["ok"])
}

// The page is checked in a real browser: headless Chromium draws it, its DOM holds every
// point, and its screenshot has pixels of each series' colour. Without Chromium the test is
// skipped, except in CI, where it must run.
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

	chromium := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		base := []string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1000,900", "--hide-scrollbars",
		}
		cmd := exec.CommandContext(ctx, browser, append(append(base, args...), "file://"+page)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Logf("chromium stderr: %s", stderr.String())
		}
		require.NoError(t, err)
		return out
	}

	dom := chromium("--dump-dom")
	assert.Equal(t, map[string]int{"ok": 180, "err": 20, "q": 12}, countCircles(string(dom)), "the points are in the browser's DOM")

	shot := filepath.Join(dir, "shot.png")
	chromium("--screenshot=" + shot)
	sf, err := os.Open(shot)
	require.NoError(t, err)
	defer sf.Close()
	img, err := png.Decode(sf)
	require.NoError(t, err)
	counts := map[string]int{}
	colours := map[string]color.RGBA{"ok": {0x1f, 0x77, 0xb4, 0xff}, "err": {0xd6, 0x27, 0x28, 0xff}, "q": {0x2c, 0xa0, 0x2c, 0xff}}
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
	t.Logf("pixels of each series: %v", counts)
	// A point of radius 2.5 covers about 15 pixels of its colour, partly overlapped.
	assert.Greater(t, counts["ok"], 180*5, "the successes are drawn")
	assert.Greater(t, counts["err"], 20*5, "the failures are drawn")
	assert.Greater(t, counts["q"], 12*5, "the distribution is drawn")
}

func near(img image.Image, x, y int, c color.RGBA) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	d := func(a uint32, b uint8) int { return int(a>>8) - int(b) }
	abs := func(v int) int { return max(v, -v) }
	return abs(d(r, c.R))+abs(d(g, c.G))+abs(d(b, c.B)) < 24
}
