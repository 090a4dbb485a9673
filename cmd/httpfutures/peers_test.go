package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promdto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A response that is not a success is written to the results, and reported, as vegeta's attack
// does: its error is the status line, so that vegeta's report and plot count it as an error.
func TestResultsErrorIsTheStatusLine(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%5 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	path := attackTo(t, dir, "r.json", "-n", "50", "-c", "1", srv.URL)

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	errs := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r struct {
			Code  int    `json:"code"`
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		errs[strconv.Itoa(r.Code)+" "+r.Error]++
	}
	assert.Equal(t, map[string]int{"200 ": 40, "500 500 Internal Server Error": 10}, errs)

	var out, errb bytes.Buffer
	require.Equal(t, exitOK, run(t.Context(), []string{"report", path}, &out, &errb), errb.String())
	assert.Regexp(t, `(?m)^Error Set:\n500 Internal Server Error: 10\n`, out.String())
}

// -timeout covers the whole request, the body too: a server that drips its body for 3s
// fails it; -header-timeout bounds only the wait for the header.
func TestTimeoutCoversTheBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for range 10 {
			_, _ = io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer srv.Close()

	start := time.Now()
	code, rep, stderr := runJSON(t, t.Context(), "-n", "2", "-c", "2", "-timeout", "1s", srv.URL)
	elapsed := time.Since(start)
	assert.Equal(t, exitFail, code, stderr)
	assert.Equal(t, map[string]any{"timeout": float64(2)}, rep["error_kinds"])
	assert.Less(t, elapsed, 2500*time.Millisecond, "ended at the timeout, not the 3s body")
	assert.GreaterOrEqual(t, latency(t, rep, "min"), time.Second)
	assert.Contains(t, rep["errors"].([]any)[0], "no whole response within the timeout of 1s")

	code, rep, stderr = runJSON(t, t.Context(), "-n", "2", "-c", "2", "-header-timeout", "1s", "-timeout", "10s", srv.URL)
	assert.Equal(t, exitOK, code, stderr)
	assert.Equal(t, float64(1), rep["success"], "the header came at once: the 3s body is within -timeout")
}

// -max-connections caps the connections to a host: 8 users share 2.
func TestMaxConnections(t *testing.T) {
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns[c.RemoteAddr().String()] = true
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()

	for _, tt := range []struct {
		args []string
		want func(int) bool
	}{
		{[]string{"-max-connections", "2"}, func(n int) bool { return n <= 2 }},
		{nil, func(n int) bool { return n > 2 }},
	} {
		mu.Lock()
		clear(conns)
		mu.Unlock()
		code, rep, stderr := runJSON(t, t.Context(), append(tt.args, "-n", "80", "-c", "8", srv.URL)...)
		require.Equal(t, exitOK, code, stderr)
		assert.Equal(t, float64(1), rep["success"])
		mu.Lock()
		n := len(conns)
		mu.Unlock()
		assert.True(t, tt.want(n), "%v: %d connections", tt.args, n)
	}
}

// -unix-socket sends every request to the socket, with the URL's host as the Host.
func TestRunUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	var hosts sync.Map
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, true)
	})}}
	srv.Start()
	defer srv.Close()

	code, rep, stderr := runJSON(t, t.Context(), "-n", "5", "-unix-socket", sock, "http://app.internal/health")
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, float64(5), rep["requests"])
	_, ok := hosts.Load("app.internal")
	assert.True(t, ok)
}

// A URL's {{seq}} and {{rand N}} are filled in for each request, on the wire and in the results.
func TestRunURLPlaceholders(t *testing.T) {
	srv, got := recordingServer(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")

	code, _, stderr := runJSON(t, t.Context(), "-n", "30", "-c", "1", "-output", path, srv.URL+"/item/{{seq}}/{{rand 3}}")

	require.Equal(t, exitOK, code, stderr)
	paths := got()
	require.Len(t, paths, 30)
	re := regexp.MustCompile(`^GET /item/(\d+)/([012])$`)
	for i, p := range paths {
		m := re.FindStringSubmatch(p)
		require.NotNil(t, m, p)
		assert.Equal(t, strconv.Itoa(i), m[1], "one user: in order")
	}
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Regexp(t, `"url":"http://127\.0\.0\.1:\d+/item/7/[012]"`, string(data), "the result has the URL sent")
}

// -o csv writes every result in CSV on stdout, as hey's, and the report on stderr; the report
// and plot subcommands read it.
func TestRunCSV(t *testing.T) {
	srv, _ := countingServer(t)
	var out, errb bytes.Buffer

	code := run(t.Context(), []string{"-n", "12", "-o", "csv", srv.URL}, &out, &errb)

	require.Equal(t, exitOK, code, errb.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 12)
	assert.Regexp(t, `^\d{19},200,\d+,0,2,,,,\d+,GET,http://127\.0\.0\.1:\d+,$`, lines[0])
	assert.Regexp(t, `(?m)^Requests +\[total, rate, throughput\] +12, `, errb.String())

	path := filepath.Join(t.TempDir(), "r.csv")
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o600))
	var rep bytes.Buffer
	require.Equal(t, exitOK, run(t.Context(), []string{"report", "-type", "json", path}, &rep, &errb))
	assert.Contains(t, rep.String(), `"requests":12`)
}

// -h says whose convention each flag follows.
func TestHelpNamesConventions(t *testing.T) {
	var usage bytes.Buffer
	_, err := parseArgs([]string{"-h"}, &usage)
	require.ErrorIs(t, err, errHelp)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?s)-c int\n.*\[hey\]`),
		regexp.MustCompile(`(?s)-o string\n\s+output type: text or json.*\[hey\]`),
		regexp.MustCompile(`(?s)-output string\n.*\[vegeta\]`),
		regexp.MustCompile(`(?s)-rate value\n.*50/1s.*\[vegeta\]`),
		regexp.MustCompile(`(?s)-host-rate float\n.*\[httpfutures\]`),
	} {
		assert.Regexp(t, want, usage.String())
	}
	fs := newFlagSet(&config{}, &rawFlags{})
	fs.VisitAll(func(f *flagFlag) {
		assert.Regexp(t, `\[(hey|vegeta|httpfutures)\]$`, f.Usage, "-%s says whose convention it follows", f.Name)
	})
}

// -prometheus serves the run's figures while it runs: scraped during the run and parsed as
// Prometheus does.
func TestRunPrometheus(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	addr, done, errb := runPrometheus(t, "200", srv.URL)

	var fams map[string]*dto
	require.Eventually(t, func() bool {
		var err error
		fams, err = scrape(addr)
		if err != nil {
			return false
		}
		c := fams["httpfutures_attack_requests_total"]
		return c != nil && c.sum >= 50
	}, 1800*time.Millisecond, 20*time.Millisecond, "the figures are served during the run")
	require.Equal(t, exitOK, <-done, errb.String())

	reqs := fams["httpfutures_attack_requests_total"]
	assert.Positive(t, reqs.by[`code="200",error=""`])
	assert.Positive(t, reqs.by[`code="502",error="502 Bad Gateway"`])
	assert.InDelta(t, 0.1, reqs.by[`code="502",error="502 Bad Gateway"`]/reqs.sum, 0.05)
	assert.Equal(t, reqs.sum, fams["httpfutures_attack_latency_seconds"].count, "a latency a request")
	assert.Equal(t, reqs.sum, fams["httpfutures_attack_send_lag_seconds"].count, "a send lag a request")
	assert.Equal(t, 200.0, fams["httpfutures_attack_target_rate"].sum)
	assert.Contains(t, fams, "httpfutures_attack_in_flight")

	_, err := http.Get("http://" + addr + "/metrics")
	assert.Error(t, err, "the endpoint is gone with the run")
}

// Each scrape shows a request in every figure it counts in, or in none: the requests by code, the
// latency and the send lag agree in every scrape taken while requests end, many at a time.
func TestRunPrometheusScrapesAgree(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr, done, errb := runPrometheus(t, "1000", srv.URL)
	scrapes, disagree := 0, 0
	var first string
	for {
		select {
		case code := <-done:
			require.Equal(t, exitOK, code, errb.String())
			t.Logf("%d scrapes while requests ended, %d disagreeing", scrapes, disagree)
			require.Positive(t, scrapes, "scrapes while the run lasted (2,000 to 3,000 on a quiet machine, 200 to 300 under the race detector, 4 and more with two busy loops a core besides)")
			assert.Zero(t, disagree, "scrapes whose figures disagree; the first: %s", first)
			return
		default:
		}
		fams, err := scrape(addr)
		if unreachable := (*url.Error)(nil); errors.As(err, &unreachable) { // not listening yet, or no longer
			time.Sleep(5 * time.Millisecond)
			continue
		}
		require.NoError(t, err, "the figures parse")
		reqs, lat, lag := fams["httpfutures_attack_requests_total"], fams["httpfutures_attack_latency_seconds"], fams["httpfutures_attack_send_lag_seconds"]
		if reqs == nil || reqs.sum == 0 {
			continue
		}
		scrapes++
		if lat.count != reqs.sum || lag.count != reqs.sum {
			disagree++
			if first == "" {
				first = fmt.Sprintf("%v requests, %v latencies, %v send lags", reqs.sum, lat.count, lag.count)
			}
		}
	}
}

// runPrometheus starts a run of the program at rate requests a second for 2 s against url, serving
// its figures for Prometheus at addr; done gets its exit code.
func runPrometheus(t *testing.T, rate, url string) (addr string, done <-chan int, errb *bytes.Buffer) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr = ln.Addr().String()
	require.NoError(t, ln.Close())
	codes := make(chan int, 1)
	var out bytes.Buffer
	errb = new(bytes.Buffer)
	go func() {
		codes <- run(t.Context(), []string{"-rate", rate, "-duration", "2s", "-prometheus", addr, url}, &out, errb)
	}()
	return addr, codes, errb
}

// scrape gets the figures served at addr and parses them as Prometheus does.
func scrape(addr string) (map[string]*dto, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	return toDTO(f), nil
}

type flagFlag = flag.Flag

// dto is what the tests read of a metric family: the sum of its values (a histogram's count)
// and each series' value by its labels.
type dto struct {
	sum, count float64
	by         map[string]float64
}

func toDTO(fams map[string]*promdto.MetricFamily) map[string]*dto {
	out := map[string]*dto{}
	for name, f := range fams {
		d := &dto{by: map[string]float64{}}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			v := 0.0
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Histogram != nil:
				v = float64(m.GetHistogram().GetSampleCount())
				d.count += v
			}
			d.sum += v
			d.by[strings.Join(labels, ",")] = v
		}
		out[name] = d
	}
	return out
}
