package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// A Result is the outcome of one request, as vegeta's results format has it, so that vegeta's
// report and plot read the results of -output, and the report and plot subcommands read
// vegeta's. Timestamp is when the request was due (open model) or queued (closed model), and
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

// A resultWriter writes results as JSON lines. It is safe for concurrent use. Its zero value is
// not ready: use newResultWriter.
type resultWriter struct {
	mu  sync.Mutex // guards the fields below and the writer
	bw  *bufio.Writer
	enc *json.Encoder
	err error // the first write error; later writes are skipped
}

func newResultWriter(w io.Writer) *resultWriter {
	bw := bufio.NewWriterSize(w, 64*1024)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &resultWriter{bw: bw, enc: enc}
}

func (w *resultWriter) write(r *Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = w.enc.Encode(r)
	}
}

// flush writes what is buffered and returns the first error of any write.
func (w *resultWriter) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}

// readResults calls fn with each result of r, JSON lines as -output writes them (or vegeta's
// JSON encoding). name labels r in errors.
func readResults(r io.Reader, name string, fn func(*Result)) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64*1024))
	for n := 1; ; n++ {
		var res Result
		err := dec.Decode(&res)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: result %d: %w (results must be JSON, as -output and vegeta encode -output json write them)", name, n, err)
		}
		fn(&res)
	}
}
