package loadgen

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
	"time"
	"unicode"
)

// A Result is the outcome of one request, as vegeta's results format has it, so that vegeta's
// report and plot read the results a ResultWriter writes, and ReadResults reads vegeta's.
// Error is empty for a 2xx or 3xx response, the status line for another ("500 Internal Server
// Error", as vegeta's attack writes it), and the error's text for a request that got no
// response. Timestamp is when the request was due (open model) or queued (closed model), and
// Latency runs from it to the end of the response body: Timestamp+Latency is when it ended.
// Lag, an addition, is how long after Timestamp a worker sent it.
type Result struct {
	Attack    string        `json:"attack"`
	Seq       uint64        `json:"seq"`
	Code      uint16        `json:"code"`
	Timestamp time.Time     `json:"timestamp"`
	Latency   time.Duration `json:"latency"`
	BytesOut  uint64        `json:"bytes_out"`
	BytesIn   uint64        `json:"bytes_in"`
	Error     string        `json:"error"`
	Body      []byte        `json:"body"`
	Method    string        `json:"method"`
	URL       string        `json:"url"`
	Headers   http.Header   `json:"headers"`
	Lag       time.Duration `json:"lag,omitempty"`
}

// End is when the request ended.
func (r *Result) End() time.Time { return r.Timestamp.Add(r.Latency) }

// A ResultsFormat is how a ResultWriter writes results.
type ResultsFormat int

const (
	// JSONResults is vegeta's JSON results format, a line a result, with the lag added.
	JSONResults ResultsFormat = iota
	// CSVResults is vegeta's CSV (vegeta encode -to csv): the timestamp in Unix nanoseconds,
	// code, latency in nanoseconds, bytes out, bytes in, error, body in base64, attack, seq,
	// method, URL, and the headers in base64, as HTTP writes them. The lag is not kept.
	CSVResults
)

// A ResultWriter writes results as JSON lines or CSV. It is safe for concurrent use. Its zero
// value is not ready: use NewResultWriter.
type ResultWriter struct {
	mu  sync.Mutex // guards the fields below and the writer
	bw  *bufio.Writer
	enc *json.Encoder // JSONResults
	csv *csv.Writer   // CSVResults
	rec []string      // CSVResults: the record being written
	err error         // the first write error; later writes are skipped
}

// NewResultWriter returns a ResultWriter to w in format f.
func NewResultWriter(w io.Writer, f ResultsFormat) *ResultWriter {
	bw := bufio.NewWriterSize(w, 64*1024)
	rw := &ResultWriter{bw: bw}
	if f == CSVResults {
		rw.csv, rw.rec = csv.NewWriter(bw), make([]string, 12)
		return rw
	}
	rw.enc = json.NewEncoder(bw)
	rw.enc.SetEscapeHTML(false)
	return rw
}

// Write writes r.
func (w *ResultWriter) Write(r *Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if w.csv == nil {
		w.err = w.enc.Encode(r)
		return
	}
	rec := w.rec
	rec[0] = strconv.FormatInt(r.Timestamp.UnixNano(), 10)
	rec[1] = strconv.FormatUint(uint64(r.Code), 10)
	rec[2] = strconv.FormatInt(r.Latency.Nanoseconds(), 10)
	rec[3] = strconv.FormatUint(r.BytesOut, 10)
	rec[4] = strconv.FormatUint(r.BytesIn, 10)
	rec[5] = r.Error
	rec[6] = base64.StdEncoding.EncodeToString(r.Body)
	rec[7] = r.Attack
	rec[8] = strconv.FormatUint(r.Seq, 10)
	rec[9] = r.Method
	rec[10] = r.URL
	rec[11] = ""
	if r.Headers != nil {
		var b bytes.Buffer
		_ = r.Headers.Write(&b)
		b.WriteString("\r\n")
		rec[11] = base64.StdEncoding.EncodeToString(b.Bytes())
	}
	w.err = w.csv.Write(rec)
}

// Flush writes what is buffered and returns the first error of any write.
func (w *ResultWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.csv != nil && w.err == nil {
		w.csv.Flush()
		w.err = w.csv.Error()
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}

// ReadResults calls fn with each result of r: JSON lines as a ResultWriter and vegeta (vegeta
// encode -to json) write them, or CSV as both write it, told apart by the first character. name
// labels r in errors.
func ReadResults(r io.Reader, name string, fn func(*Result)) error {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		c, _, err := br.ReadRune()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if !unicode.IsSpace(c) {
			_ = br.UnreadRune()
			if c == '{' {
				return readJSONResults(br, name, fn)
			}
			return readCSVResults(br, name, fn)
		}
	}
}

func readJSONResults(r io.Reader, name string, fn func(*Result)) error {
	dec := json.NewDecoder(r)
	for n := 1; ; n++ {
		var res Result
		err := dec.Decode(&res)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: result %d: %w (results must be JSON or CSV, as -output and vegeta encode write them)", name, n, err)
		}
		fn(&res)
	}
}

func readCSVResults(r io.Reader, name string, fn func(*Result)) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 12
	for n := 1; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			var res Result
			if err = decodeCSVResult(rec, &res); err == nil {
				fn(&res)
				continue
			}
		}
		return fmt.Errorf("%s: result %d: %w (results must be JSON or CSV, as -output and vegeta encode write them)", name, n, err)
	}
}

// decodeCSVResult reads a record of vegeta's CSV into r.
func decodeCSVResult(rec []string, r *Result) error {
	ts, err := strconv.ParseInt(rec[0], 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	r.Timestamp = time.Unix(0, ts)
	code, err := strconv.ParseUint(rec[1], 10, 16)
	if err != nil {
		return fmt.Errorf("code: %w", err)
	}
	r.Code = uint16(code)
	lat, err := strconv.ParseInt(rec[2], 10, 64)
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	r.Latency = time.Duration(lat)
	if r.BytesOut, err = strconv.ParseUint(rec[3], 10, 64); err != nil {
		return fmt.Errorf("bytes out: %w", err)
	}
	if r.BytesIn, err = strconv.ParseUint(rec[4], 10, 64); err != nil {
		return fmt.Errorf("bytes in: %w", err)
	}
	r.Error = rec[5]
	if r.Body, err = base64.StdEncoding.DecodeString(rec[6]); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if len(r.Body) == 0 {
		r.Body = nil
	}
	r.Attack = rec[7]
	if r.Seq, err = strconv.ParseUint(rec[8], 10, 64); err != nil {
		return fmt.Errorf("seq: %w", err)
	}
	r.Method, r.URL = rec[9], rec[10]
	if rec[11] != "" {
		raw, err := base64.StdEncoding.DecodeString(rec[11])
		if err != nil {
			return fmt.Errorf("headers: %w", err)
		}
		h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("headers: %w", err)
		}
		r.Headers = http.Header(h)
	}
	return nil
}
