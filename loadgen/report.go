package loadgen

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

// A Report is the summary of a run, or of results files. Its JSON has the fields of vegeta's
// JSON report (vegeta report -type=json), computed as vegeta does, over the real send times:
// rate is requests over duration, throughput successes over duration plus wait, duration the
// span of the send times (the timestamps, but for the open model's send lag). So a rate is what
// was sent, never what was asked: an open model's timetable is AskedRate beside it. The fields
// after Errors are additions. Reports are made by Metrics.Report and Attacker.Run.
type Report struct {
	Latencies   LatencyReport     `json:"latencies"`
	BytesIn     ByteReport        `json:"bytes_in"`
	BytesOut    ByteReport        `json:"bytes_out"`
	Earliest    time.Time         `json:"earliest"` // of the timestamps: due (open model) or queued
	Latest      time.Time         `json:"latest"`
	End         time.Time         `json:"end"`
	Duration    time.Duration     `json:"duration"`   // from the first send to the last
	Wait        time.Duration     `json:"wait"`       // End less the last send: waiting for the last responses
	Requests    uint64            `json:"requests"`   // sent
	Rate        float64           `json:"rate"`       // Requests / Duration: the rate sent at
	Throughput  float64           `json:"throughput"` // Successes / (Duration + Wait)
	Success     float64           `json:"success"`    // ratio of 2xx and 3xx responses
	StatusCodes map[string]uint64 `json:"status_codes"`
	Errors      []string          `json:"errors"` // the distinct error messages, or one "kind: example" per kind

	Model       string            `json:"model,omitempty"`          // "open" (a Rate) or "closed"; empty read from files
	TargetRate  string            `json:"target_rate,omitempty"`    // the Rate, as given
	Asked       uint64            `json:"asked_requests,omitempty"` // open model: the requests that fell due, sent or dropped
	AskedRate   float64           `json:"asked_rate,omitempty"`     // open model: Asked over the timetable's time
	Sent        SentReport        `json:"sent"`
	ErrorKinds  map[string]uint64 `json:"error_kinds"` // failed requests by kind
	Interrupted bool              `json:"interrupted,omitempty"`
	Bottleneck  string            `json:"bottleneck,omitempty"` // what held the open model back, if the generator did

	// Successes counts the 2xx and 3xx responses; Failures the failed requests by kind, most
	// frequent first.
	Successes uint64       `json:"-"`
	Failures  []ErrorCount `json:"-"`
}

// An ErrorCount is how many requests failed with one kind of error, and one message of them.
type ErrorCount struct {
	Kind    string
	Count   uint64
	Example string
}

// A LatencyReport is in nanoseconds, as vegeta's.
type LatencyReport struct {
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

// A ByteReport is a total of bytes and its mean per request.
type ByteReport struct {
	Total uint64  `json:"total"`
	Mean  float64 `json:"mean"`
}

// A SentReport is how well the generator kept its timetable: the real send rate (requests over
// the span of the real send times), the send lag, what fell due and was not sent, and the mean
// time from a send to the end of its response.
type SentReport struct {
	Rate        float64       `json:"rate"`
	ServiceMean time.Duration `json:"service_mean"`
	LagP50      time.Duration `json:"lag_50th"`
	LagP99      time.Duration `json:"lag_99th"`
	LagMax      time.Duration `json:"lag_max"`
	Late        uint64        `json:"late"`    // sent lateAfter or more after due
	Dropped     uint64        `json:"dropped"` // fell due and were not sent before the end
}

// Report computes the summary of what was recorded.
func (m *Metrics) Report() *Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := &Report{
		Requests:    m.done.Load(),
		Earliest:    m.earliest,
		Latest:      m.latest,
		End:         m.end,
		StatusCodes: make(map[string]uint64, len(m.codes)),
		Errors:      []string{},
		ErrorKinds:  make(map[string]uint64, len(m.errs)),
		Successes:   m.successes,
	}
	r.Sent.Dropped, r.Sent.Late = m.dropped, m.late
	for code, n := range m.codes {
		r.StatusCodes[strconv.Itoa(int(code))] = n
	}
	for kind, g := range m.errs {
		r.ErrorKinds[kind] = g.count
		r.Failures = append(r.Failures, ErrorCount{Kind: kind, Count: g.count, Example: g.example})
	}
	// Most frequent first; ties by name so that the order is stable.
	slices.SortFunc(r.Failures, func(a, b ErrorCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Kind, b.Kind))
	})
	for _, e := range r.Failures {
		if e.Kind == e.Example {
			r.Errors = append(r.Errors, e.Kind)
		} else {
			r.Errors = append(r.Errors, e.Kind+": "+e.Example)
		}
	}
	if r.Requests == 0 {
		return r
	}
	n := float64(r.Requests)
	r.Duration = m.lastSent.Sub(m.firstSent)
	r.Wait = max(m.end.Sub(m.lastSent), 0)
	if secs := r.Duration.Seconds(); secs > 0 {
		r.Rate = n / secs
		r.Sent.Rate = r.Rate
	}
	if secs := (r.Duration + r.Wait).Seconds(); secs > 0 {
		r.Throughput = float64(m.successes) / secs
	}
	r.Sent.ServiceMean = time.Duration(float64(m.service) / n)
	r.Success = float64(m.successes) / n
	r.BytesIn = ByteReport{Total: m.bytesIn, Mean: float64(m.bytesIn) / n}
	r.BytesOut = ByteReport{Total: m.bytesOut, Mean: float64(m.bytesOut) / n}
	q := m.hist.ValueAtPercentilesSlice([]float64{50, 90, 95, 99, 99.9})
	// The histogram answers with the highest value equivalent to the percentile's bucket, which
	// may exceed the exact maximum by a little: clamp.
	at := func(i int) time.Duration { return min(time.Duration(q[i]), m.latMax) }
	r.Latencies = LatencyReport{
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

// WriteJSON writes the report as one JSON object followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// WriteText writes the report as a table in the layout of vegeta's text report, with the model,
// the 99.9th percentile, how well the timetable was kept and error counts added.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Requests\t[total, rate, throughput]\t%d, %.2f, %.2f\n", r.Requests, r.Rate, r.Throughput)
	switch r.Model {
	case "open":
		fmt.Fprintf(tw, "Asked\t[total, rate, dropped]\t%d, %.2f, %d (the timetable: -rate %s)\n", r.Asked, r.AskedRate, r.Sent.Dropped, r.TargetRate)
		fmt.Fprintf(tw, "Target\t[model]\topen (latency from each request's due time)\n")
	case "closed":
		fmt.Fprintf(tw, "Target\t[model]\tclosed, as fast as the workers go (latency from queueing)\n")
	}
	fmt.Fprintf(tw, "Duration\t[total, attack, wait]\t%s, %s, %s\n",
		FormatDuration(r.Duration+r.Wait), FormatDuration(r.Duration), FormatDuration(r.Wait))
	l := r.Latencies
	fmt.Fprintf(tw, "Latencies\t[min, mean, 50, 90, 95, 99, 99.9, max]\t%s\n", joinDurations(
		l.Min, l.Mean, l.P50, l.P90, l.P95, l.P99, l.P999, l.Max))
	if r.Model == "open" || r.Sent.LagMax > 0 {
		s := r.Sent
		fmt.Fprintf(tw, "Sent\t[lag 50, 99, max, late, dropped]\t%s, %d, %d\n",
			joinDurations(s.LagP50, s.LagP99, s.LagMax), s.Late, s.Dropped)
	}
	fmt.Fprintf(tw, "Bytes In\t[total, mean]\t%d, %.2f\n", r.BytesIn.Total, r.BytesIn.Mean)
	fmt.Fprintf(tw, "Bytes Out\t[total, mean]\t%d, %.2f\n", r.BytesOut.Total, r.BytesOut.Mean)
	fmt.Fprintf(tw, "Success\t[ratio]\t%.2f%%\n", r.Success*100)
	fmt.Fprintf(tw, "Status Codes\t[code:count]\t%s\n", r.CodesText())
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	if r.Interrupted {
		b.WriteString("Interrupted: sending stopped early on a signal\n")
	}
	b.WriteString("Error Set:\n")
	for _, e := range r.Failures {
		if e.Kind == e.Example {
			fmt.Fprintf(&b, "%s: %d\n", e.Kind, e.Count)
		} else {
			fmt.Fprintf(&b, "%s: %d (e.g. %s)\n", e.Kind, e.Count, e.Example)
		}
	}

	_, err := io.WriteString(w, b.String())
	return err
}

// CodesText lists the status codes in numeric order as "code:count" pairs; 0 counts the requests
// that got no response.
func (r *Report) CodesText() string {
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
		parts[i] = FormatDuration(d)
	}
	return strings.Join(parts, ", ")
}

// FormatDuration rounds d to about four significant figures for reading.
func FormatDuration(d time.Duration) string {
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
