package loadgen

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A Threshold is a pass criterion on a report, as k6's: a metric, a comparison and a value.
// Thresholds are made by ParseThresholds.
type Threshold struct {
	text   string
	metric string
	op     string
	value  float64 // nanoseconds for latencies, a ratio for success, per second for rates
}

// thresholdMetrics are the metrics a threshold may name, and whether each is a latency.
var thresholdMetrics = map[string]bool{
	"min": true, "mean": true, "p50": true, "p90": true, "p95": true, "p99": true, "p99.9": true, "max": true,
	"lag_p50": true, "lag_p99": true, "lag_max": true,
	"success": false, "rate": false, "throughput": false, "requests": false, "dropped": false, "late": false,
}

// ParseThresholds parses a comma-separated list such as "p99<50ms,success>=99.9%".
func ParseThresholds(v string) ([]Threshold, error) {
	var ts []Threshold
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		i := strings.IndexAny(part, "<>=!")
		if i <= 0 {
			return nil, fmt.Errorf("threshold %q is not of the form METRIC<VALUE (<, <=, >, >=, ==, !=)", part)
		}
		metric := part[:i]
		rest := part[i:]
		var op string
		for _, o := range []string{"<=", ">=", "==", "!=", "<", ">"} {
			if strings.HasPrefix(rest, o) {
				op = o
				break
			}
		}
		if op == "" {
			return nil, fmt.Errorf("threshold %q: unknown comparison", part)
		}
		latency, ok := thresholdMetrics[metric]
		if !ok {
			return nil, fmt.Errorf("threshold %q: unknown metric %q (p50, p90, p95, p99, p99.9, min, mean, max, lag_p50, lag_p99, lag_max, success, rate, throughput, requests, dropped, late)", part, metric)
		}
		text := strings.TrimSpace(rest[len(op):])
		t := Threshold{text: part, metric: metric, op: op}
		switch {
		case latency:
			d, err := time.ParseDuration(text)
			if err != nil {
				return nil, fmt.Errorf("threshold %q: %q is not a duration", part, text)
			}
			t.value = float64(d)
		case metric == "success" && strings.HasSuffix(text, "%"):
			// As a ratio, rounded once: 99.9% is 0.999 exactly as a float64 can be.
			f, err := strconv.ParseFloat(strings.TrimSuffix(text, "%")+"e-2", 64)
			if err != nil || isNaNOrInf(f) {
				return nil, fmt.Errorf("threshold %q: %q is not a percentage", part, text)
			}
			t.value = f
		default:
			f, err := strconv.ParseFloat(text, 64)
			if err != nil || isNaNOrInf(f) {
				return nil, fmt.Errorf("threshold %q: %q is not a number", part, text)
			}
			if metric == "success" && (f < 0 || f > 1) {
				return nil, fmt.Errorf("threshold %q: success is a ratio from 0 to 1, or a percentage (%s%%)", part, text)
			}
			t.value = f
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// actual returns the threshold's metric in r, and its text for a message.
func (t Threshold) actual(r *Report) (float64, string) {
	d := func(v time.Duration) (float64, string) { return float64(v), FormatDuration(v) }
	l := r.Latencies
	switch t.metric {
	case "min":
		return d(l.Min)
	case "mean":
		return d(l.Mean)
	case "p50":
		return d(l.P50)
	case "p90":
		return d(l.P90)
	case "p95":
		return d(l.P95)
	case "p99":
		return d(l.P99)
	case "p99.9":
		return d(l.P999)
	case "max":
		return d(l.Max)
	case "lag_p50":
		return d(r.Sent.LagP50)
	case "lag_p99":
		return d(r.Sent.LagP99)
	case "lag_max":
		return d(r.Sent.LagMax)
	case "success":
		return r.Success, fmt.Sprintf("%.3f%%", r.Success*100)
	case "rate":
		return r.Rate, fmt.Sprintf("%.2f", r.Rate)
	case "throughput":
		return r.Throughput, fmt.Sprintf("%.2f", r.Throughput)
	case "requests":
		return float64(r.Requests), strconv.FormatUint(r.Requests, 10)
	case "dropped":
		return float64(r.Sent.Dropped), strconv.FormatUint(r.Sent.Dropped, 10)
	default: // late
		return float64(r.Sent.Late), strconv.FormatUint(r.Sent.Late, 10)
	}
}

// check returns a message for each Threshold that r misses.
func CheckThresholds(ts []Threshold, r *Report) []string {
	var missed []string
	for _, t := range ts {
		v, text := t.actual(r)
		var ok bool
		switch t.op {
		case "<":
			ok = v < t.value
		case "<=":
			ok = v <= t.value
		case ">":
			ok = v > t.value
		case ">=":
			ok = v >= t.value
		case "==":
			ok = v == t.value
		case "!=":
			ok = v != t.value
		}
		if !ok || r.Requests == 0 {
			missed = append(missed, fmt.Sprintf("threshold %s missed: %s is %s", t.text, t.metric, text))
		}
	}
	return missed
}
