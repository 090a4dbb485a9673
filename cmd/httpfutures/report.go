package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the summary of a run. Its JSON has the fields of vegeta's JSON report (vegeta report
// -type=json), computed as vegeta does: rate is requests over duration, throughput successes
// over duration plus wait, duration the span of the timestamps. The fields after Errors are
// additions. Reports are made by metrics.report.
type report struct {
	Latencies   latencyReport     `json:"latencies"`
	BytesIn     byteReport        `json:"bytes_in"`
	BytesOut    byteReport        `json:"bytes_out"`
	Earliest    time.Time         `json:"earliest"`
	Latest      time.Time         `json:"latest"`
	End         time.Time         `json:"end"`
	Duration    time.Duration     `json:"duration"` // Latest - Earliest
	Wait        time.Duration     `json:"wait"`     // End - Latest: waiting for the last responses
	Requests    uint64            `json:"requests"`
	Rate        float64           `json:"rate"`       // Requests / Duration
	Throughput  float64           `json:"throughput"` // successes / (Duration + Wait)
	Success     float64           `json:"success"`    // ratio of 2xx and 3xx responses
	StatusCodes map[string]uint64 `json:"status_codes"`
	Errors      []string          `json:"errors"` // the distinct error messages, or one "kind: example" per kind

	Model       string            `json:"model,omitempty"`       // "open" (-rate) or "closed"; empty read from files
	TargetRate  string            `json:"target_rate,omitempty"` // -rate
	Sent        sentReport        `json:"sent"`
	ErrorKinds  map[string]uint64 `json:"error_kinds"` // failed requests by kind
	Interrupted bool              `json:"interrupted,omitempty"`

	successes  uint64
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

// sentReport is how well the generator kept its timetable: the real send rate (requests over
// the span of the real send times), the send lag, and what fell due and was not sent.
type sentReport struct {
	Rate    float64       `json:"rate"`
	LagP50  time.Duration `json:"lag_50th"`
	LagP99  time.Duration `json:"lag_99th"`
	LagMax  time.Duration `json:"lag_max"`
	Late    uint64        `json:"late"`    // sent lateAfter or more after due
	Dropped uint64        `json:"dropped"` // fell due and were not sent before the end
}

type errorKindCount struct {
	kind    string
	count   uint64
	example string
}

// report computes the summary of what was recorded.
func (m *metrics) report() *report {
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
		successes:   m.successes,
	}
	r.Sent.Dropped, r.Sent.Late = m.dropped, m.late
	for code, n := range m.codes {
		r.StatusCodes[strconv.Itoa(int(code))] = n
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
		if e.kind == e.example {
			r.Errors = append(r.Errors, e.kind)
		} else {
			r.Errors = append(r.Errors, e.kind+": "+e.example)
		}
	}
	if r.Requests == 0 {
		return r
	}
	n := float64(r.Requests)
	r.Duration = m.latest.Sub(m.earliest)
	r.Wait = max(m.end.Sub(m.latest), 0)
	if secs := r.Duration.Seconds(); secs > 0 {
		r.Rate = n / secs
		r.Throughput = float64(m.successes) / (r.Duration + r.Wait).Seconds()
	}
	if secs := m.lastSent.Sub(m.firstSent).Seconds(); secs > 0 {
		r.Sent.Rate = n / secs
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
	if m.lags.TotalCount() > 0 {
		lq := m.lags.ValueAtPercentilesSlice([]float64{50, 99})
		r.Sent.LagP50 = min(time.Duration(lq[0]), m.lagMax)
		r.Sent.LagP99 = min(time.Duration(lq[1]), m.lagMax)
		r.Sent.LagMax = m.lagMax
	}
	return r
}

// writeJSON writes the report as one JSON object followed by a newline.
func (r *report) writeJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// writeText writes the report as a table in the layout of vegeta's text report, with the model,
// the 99.9th percentile, how well the timetable was kept and error counts added.
func (r *report) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Requests\t[total, rate, throughput]\t%d, %.2f, %.2f\n", r.Requests, r.Rate, r.Throughput)
	switch r.Model {
	case "open":
		fmt.Fprintf(tw, "Target\t[model, rate]\topen, %s req/s (latency from each request's due time)\n", r.TargetRate)
	case "closed":
		fmt.Fprintf(tw, "Target\t[model, rate]\tclosed, as fast as the workers go (latency from queueing)\n")
	}
	fmt.Fprintf(tw, "Duration\t[total, attack, wait]\t%s, %s, %s\n",
		fmtDuration(r.Duration+r.Wait), fmtDuration(r.Duration), fmtDuration(r.Wait))
	l := r.Latencies
	fmt.Fprintf(tw, "Latencies\t[min, mean, 50, 90, 95, 99, 99.9, max]\t%s\n", joinDurations(
		l.Min, l.Mean, l.P50, l.P90, l.P95, l.P99, l.P999, l.Max))
	if r.Model == "open" || r.Sent.LagMax > 0 {
		s := r.Sent
		fmt.Fprintf(tw, "Sent\t[rate, lag 50, 99, max, late, dropped]\t%.2f, %s, %d, %d\n",
			s.Rate, joinDurations(s.LagP50, s.LagP99, s.LagMax), s.Late, s.Dropped)
	}
	fmt.Fprintf(tw, "Bytes In\t[total, mean]\t%d, %.2f\n", r.BytesIn.Total, r.BytesIn.Mean)
	fmt.Fprintf(tw, "Bytes Out\t[total, mean]\t%d, %.2f\n", r.BytesOut.Total, r.BytesOut.Mean)
	fmt.Fprintf(tw, "Success\t[ratio]\t%.2f%%\n", r.Success*100)
	fmt.Fprintf(tw, "Status Codes\t[code:count]\t%s\n", r.codesText())
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	if r.Interrupted {
		b.WriteString("Interrupted: sending stopped early on a signal\n")
	}
	b.WriteString("Error Set:\n")
	for _, e := range r.errorKinds {
		if e.kind == e.example {
			fmt.Fprintf(&b, "%s: %d\n", e.kind, e.count)
		} else {
			fmt.Fprintf(&b, "%s: %d (e.g. %s)\n", e.kind, e.count, e.example)
		}
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
