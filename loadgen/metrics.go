package loadgen

import (
	"sync"
	"sync/atomic"
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

// lateAfter is the send lag from which a request counts as late.
const lateAfter = time.Millisecond

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histSigFigs)
}

func recordHist(h *hdrhistogram.Histogram, d time.Duration) {
	_ = h.RecordValue(min(max(int64(d), histLowest), histHighest)) // in range by construction
}

// errorGroup counts the failures of one kind and keeps the first message as an example.
type errorGroup struct {
	count   uint64
	example string
}

// Metrics accumulates results, of a run or read from files, for a Report. It is safe for
// concurrent use; the counters that Progress reads are atomic so that it never waits for the
// lock. Its zero value is not ready: use NewMetrics.
type Metrics struct {
	done   atomic.Uint64 // results recorded
	failed atomic.Uint64 // of which not a success

	mu        sync.Mutex // guards the fields below
	hist      *hdrhistogram.Histogram
	lags      *hdrhistogram.Histogram // send lags, of the results that have one
	latTotal  time.Duration
	latMin    time.Duration
	latMax    time.Duration
	service   time.Duration // the total of latency less lag: from the send to the end
	lagMax    time.Duration
	late      uint64
	successes uint64
	responses uint64 // results with a status code
	codes     map[uint16]uint64
	errs      map[string]*errorGroup
	bytesIn   uint64
	bytesOut  uint64
	earliest  time.Time // of the timestamps
	latest    time.Time
	end       time.Time
	firstSent time.Time // of the real send times: timestamp + lag
	lastSent  time.Time
	dropped   uint64 // fell due and were not sent
}

// NewMetrics returns Metrics with nothing recorded.
func NewMetrics() *Metrics {
	return &Metrics{
		hist:  newHist(),
		lags:  newHist(),
		codes: map[uint16]uint64{},
		errs:  map[string]*errorGroup{},
	}
}

// Add records r, a result read from a file: its error is grouped in the report by the kind
// ErrorKindOf reads in its message.
func (m *Metrics) Add(r *Result) {
	kind := ""
	if r.Error != "" {
		kind = ErrorKindOf(r.Error)
	}
	m.add(r, kind)
}

// add records r. kind groups its error in the report; empty, the error's text does.
func (m *Metrics) add(r *Result, kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := m.done.Load() == 0
	lat := max(r.Latency, 0)
	recordHist(m.hist, lat)
	m.latTotal += lat
	if first || lat < m.latMin {
		m.latMin = lat
	}
	m.latMax = max(m.latMax, lat)
	m.service += max(lat-max(r.Lag, 0), 0)
	if r.Lag > 0 {
		recordHist(m.lags, r.Lag)
		m.lagMax = max(m.lagMax, r.Lag)
		if r.Lag >= lateAfter {
			m.late++
		}
	}
	m.codes[r.Code]++
	if r.Code != 0 {
		m.responses++
	}
	success := r.Error == "" && r.Code >= 200 && r.Code < 400
	if success {
		m.successes++
	} else {
		m.failed.Add(1)
	}
	if r.Error != "" {
		if kind == "" {
			kind = oneLine(r.Error)
		}
		g := m.errs[kind]
		if g == nil {
			g = &errorGroup{example: oneLine(r.Error)}
			m.errs[kind] = g
		}
		g.count++
	}
	m.bytesIn += r.BytesIn
	m.bytesOut += r.BytesOut
	ts, sent, end := r.Timestamp, r.Timestamp.Add(r.Lag), r.End()
	if first || ts.Before(m.earliest) {
		m.earliest = ts
	}
	if first || ts.After(m.latest) {
		m.latest = ts
	}
	if end.After(m.end) {
		m.end = end
	}
	if first || sent.Before(m.firstSent) {
		m.firstSent = sent
	}
	if first || sent.After(m.lastSent) {
		m.lastSent = sent
	}
	m.done.Add(1)
}

// addDropped counts n requests that fell due and were not sent.
func (m *Metrics) addDropped(n uint64) {
	m.mu.Lock()
	m.dropped += n
	m.mu.Unlock()
}

// Latencies returns a copy of the latency histogram.
func (m *Metrics) Latencies() *hdrhistogram.Histogram {
	m.mu.Lock()
	defer m.mu.Unlock()
	return hdrhistogram.Import(m.hist.Export())
}
