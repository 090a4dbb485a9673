package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in nanoseconds with 3 significant figures, up to a day; a longer one is
// recorded as a day (the exact maximum is kept apart).
const (
	histLowest  = 1
	histHighest = int64(24 * time.Hour)
	histSigFigs = 3
)

// result is the outcome of one request that was sent.
type result struct {
	sent     time.Time     // when a worker started the round trip
	latency  time.Duration // from the scheduled send time (open model) or queue time (closed) to done
	end      time.Time     // when the response body had been read, or the request failed
	code     int           // 0 if err is set
	bytesIn  int64
	bytesOut int64
	err      error
}

// errorGroup counts the failures of one kind and keeps the first message as an example.
type errorGroup struct {
	count   uint64
	example string
}

// metrics accumulates results. It is safe for concurrent use; the counters that the progress line
// reads are atomic so that it never waits for the lock.
type metrics struct {
	done   atomic.Uint64 // requests recorded
	failed atomic.Uint64 // of which failed without a response

	mu         sync.Mutex
	hist       *hdrhistogram.Histogram
	latTotal   time.Duration
	latMin     time.Duration
	latMax     time.Duration
	successes  uint64
	codes      map[int]uint64
	errs       map[string]*errorGroup
	bytesIn    uint64
	bytesOut   uint64
	earliest   time.Time
	latest     time.Time
	end        time.Time
	notStarted uint64 // futures that ended without being sent (shutdown)
}

func newMetrics() *metrics {
	return &metrics{
		hist:  hdrhistogram.New(histLowest, histHighest, histSigFigs),
		codes: map[int]uint64{},
		errs:  map[string]*errorGroup{},
	}
}

func (m *metrics) add(r result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.done.Load()
	lat := max(r.latency, 0)
	_ = m.hist.RecordValue(min(max(int64(lat), histLowest), histHighest)) // in range by construction
	m.latTotal += lat
	if n == 0 || lat < m.latMin {
		m.latMin = lat
	}
	m.latMax = max(m.latMax, lat)
	m.codes[r.code]++
	if r.err != nil {
		kind := errorKind(r.err)
		g := m.errs[kind]
		if g == nil {
			g = &errorGroup{example: oneLine(r.err.Error())}
			m.errs[kind] = g
		}
		g.count++
		m.failed.Add(1)
	} else if r.code >= 200 && r.code < 400 {
		m.successes++
	}
	m.bytesIn += uint64(r.bytesIn)
	m.bytesOut += uint64(r.bytesOut)
	if n == 0 || r.sent.Before(m.earliest) {
		m.earliest = r.sent
	}
	if r.sent.After(m.latest) {
		m.latest = r.sent
	}
	if r.end.After(m.end) {
		m.end = r.end
	}
	m.done.Add(1)
}

// addNotStarted counts a request that was queued but never sent.
func (m *metrics) addNotStarted() {
	m.mu.Lock()
	m.notStarted++
	m.mu.Unlock()
}

// report is the summary of a run. Its JSON has the field names of vegeta's JSON report
// (vegeta report -type=json), so that tools reading those read it too; the fields after Errors
// are additions.
type report struct {
	Latencies   latencyReport     `json:"latencies"`
	BytesIn     byteReport        `json:"bytes_in"`
	BytesOut    byteReport        `json:"bytes_out"`
	Earliest    time.Time         `json:"earliest"`
	Latest      time.Time         `json:"latest"`
	End         time.Time         `json:"end"`
	Duration    time.Duration     `json:"duration"` // Latest - Earliest: the time spent sending
	Wait        time.Duration     `json:"wait"`     // End - Latest: waiting for the last responses
	Requests    uint64            `json:"requests"`
	Rate        float64           `json:"rate"`       // achieved send rate, requests/s
	Throughput  float64           `json:"throughput"` // successes/s over Duration + Wait
	Success     float64           `json:"success"`    // ratio of 2xx and 3xx responses
	StatusCodes map[string]uint64 `json:"status_codes"`
	Errors      []string          `json:"errors"` // one "kind: example" per kind of error

	Model       string            `json:"model"`                 // "open" (-rate) or "closed"
	TargetRate  float64           `json:"target_rate,omitempty"` // -rate
	ErrorKinds  map[string]uint64 `json:"error_kinds"`           // failed requests by kind
	NotSent     uint64            `json:"not_sent,omitempty"`    // queued, then dropped at shutdown
	Interrupted bool              `json:"interrupted,omitempty"` // stopped by a signal

	responses  uint64 // requests that got a response, whatever its status
	errorKinds []errorKindCount
}

// latencyReport is in nanoseconds, as vegeta's.
type latencyReport struct {
	Total time.Duration `json:"total"`
	Mean  time.Duration `json:"mean"`
	P50   time.Duration `json:"50th"`
	P90   time.Duration `json:"90th"`
	P95   time.Duration `json:"95th"`
	P99   time.Duration `json:"99th"`
	P999  time.Duration `json:"99.9th"`
	Max   time.Duration `json:"max"`
	Min   time.Duration `json:"min"`
}

type byteReport struct {
	Total uint64  `json:"total"`
	Mean  float64 `json:"mean"`
}

type errorKindCount struct {
	kind    string
	count   uint64
	example string
}

// report computes the summary of what was recorded. targetRate is 0 in the closed model.
func (m *metrics) report(targetRate float64) *report {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := &report{
		Requests:    m.done.Load(),
		Earliest:    m.earliest,
		Latest:      m.latest,
		End:         m.end,
		StatusCodes: make(map[string]uint64, len(m.codes)),
		Errors:      []string{},
		ErrorKinds:  make(map[string]uint64, len(m.errs)),
		Model:       "closed",
		TargetRate:  targetRate,
		NotSent:     m.notStarted,
	}
	if targetRate > 0 {
		r.Model = "open"
	}
	for code, n := range m.codes {
		r.StatusCodes[strconv.Itoa(code)] = n
	}
	for kind, g := range m.errs {
		r.ErrorKinds[kind] = g.count
		r.errorKinds = append(r.errorKinds, errorKindCount{kind: kind, count: g.count, example: g.example})
	}
	// Most frequent first; ties by name so that the order is stable.
	slices.SortFunc(r.errorKinds, func(a, b errorKindCount) int {
		return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(a.kind, b.kind))
	})
	for _, e := range r.errorKinds {
		r.Errors = append(r.Errors, e.kind+": "+e.example)
	}
	if r.Requests == 0 {
		return r
	}
	r.responses = r.Requests - m.failed.Load()
	n := float64(r.Requests)
	r.Duration = m.latest.Sub(m.earliest)
	r.Wait = max(m.end.Sub(m.latest), 0)
	if secs := r.Duration.Seconds(); secs > 0 && r.Requests > 1 {
		// Requests-1 intervals separate the first send from the last.
		r.Rate = float64(r.Requests-1) / secs
	}
	if secs := (r.Duration + r.Wait).Seconds(); secs > 0 {
		r.Throughput = float64(m.successes) / secs
	}
	r.Success = float64(m.successes) / n
	r.BytesIn = byteReport{Total: m.bytesIn, Mean: float64(m.bytesIn) / n}
	r.BytesOut = byteReport{Total: m.bytesOut, Mean: float64(m.bytesOut) / n}
	q := m.hist.ValueAtPercentilesSlice([]float64{50, 90, 95, 99, 99.9})
	// The histogram answers with the highest value equivalent to the percentile's bucket, which
	// may exceed the exact maximum by a little: clamp.
	at := func(i int) time.Duration { return min(time.Duration(q[i]), m.latMax) }
	r.Latencies = latencyReport{
		Total: m.latTotal,
		Mean:  time.Duration(float64(m.latTotal) / n),
		P50:   at(0),
		P90:   at(1),
		P95:   at(2),
		P99:   at(3),
		P999:  at(4),
		Max:   m.latMax,
		Min:   m.latMin,
	}
	return r
}

// writeJSON writes the report as one JSON object followed by a newline.
func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

// writeText writes the report as a table in the layout of vegeta's text report, with the target
// rate and model, the 99.9th percentile and error counts added.
func (r *report) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Requests\t[total, rate, throughput]\t%d, %.2f, %.2f\n", r.Requests, r.Rate, r.Throughput)
	if r.Model == "open" {
		fmt.Fprintf(tw, "Target\t[model, rate]\topen, %.2f/s (latency from each request's scheduled send time)\n", r.TargetRate)
	} else {
		fmt.Fprintf(tw, "Target\t[model, rate]\tclosed, as fast as the workers go (latency from queueing)\n")
	}
	fmt.Fprintf(tw, "Duration\t[total, attack, wait]\t%s, %s, %s\n",
		fmtDuration(r.Duration+r.Wait), fmtDuration(r.Duration), fmtDuration(r.Wait))
	l := r.Latencies
	fmt.Fprintf(tw, "Latencies\t[min, mean, 50, 90, 95, 99, 99.9, max]\t%s\n", joinDurations(
		l.Min, l.Mean, l.P50, l.P90, l.P95, l.P99, l.P999, l.Max))
	fmt.Fprintf(tw, "Bytes In\t[total, mean]\t%d, %.2f\n", r.BytesIn.Total, r.BytesIn.Mean)
	fmt.Fprintf(tw, "Bytes Out\t[total, mean]\t%d, %.2f\n", r.BytesOut.Total, r.BytesOut.Mean)
	fmt.Fprintf(tw, "Success\t[ratio]\t%.2f%%\n", r.Success*100)
	fmt.Fprintf(tw, "Status Codes\t[code:count]\t%s\n", r.codesText())
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	if r.NotSent > 0 {
		fmt.Fprintf(&b, "Not sent: %d queued requests were dropped at shutdown\n", r.NotSent)
	}
	if r.Interrupted {
		b.WriteString("Interrupted: sending stopped early on a signal\n")
	}
	b.WriteString("Error Set:\n")
	for _, e := range r.errorKinds {
		fmt.Fprintf(&b, "%s: %d (e.g. %s)\n", e.kind, e.count, e.example)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// codesText lists the status codes in numeric order as "code:count" pairs; 0 counts the requests
// that got no response.
func (r *report) codesText() string {
	codes := make([]int, 0, len(r.StatusCodes))
	for c := range r.StatusCodes {
		n, _ := strconv.Atoi(c)
		codes = append(codes, n)
	}
	slices.Sort(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d:%d", c, r.StatusCodes[strconv.Itoa(c)])
	}
	return strings.Join(parts, "  ")
}

func joinDurations(ds ...time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmtDuration(d)
	}
	return strings.Join(parts, ", ")
}

// fmtDuration rounds d to about four significant figures for reading.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= 100*time.Second:
		return d.Round(time.Second / 10).String()
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d >= time.Microsecond:
		return d.Round(time.Microsecond / 100).String()
	default:
		return d.String()
	}
}

// oneLine keeps an error message on one line of the report.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	s, _, _ = strings.Cut(s, "\n")
	return s
}
