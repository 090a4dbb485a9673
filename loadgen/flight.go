package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/httpfutures/httpfutures"
)

// errBodyUnread is the error of a response whose body the transport closed before its end.
var errBodyUnread = errors.New("the response body was not read to its end")

// A flight is one request on its way, and the context it is sent with: it carries what its
// result needs from where it was submitted to where it ends (the gate, the body or the
// transport's response hook, all in the worker that runs it), so that no goroutine waits for
// its Future. Its Done channel is nil, as context.Background()'s, so that the transport runs it
// under the Future's own context, with no context made per request. Its zero value has no
// context: flights are made with context.Background() embedded.
type flight struct {
	context.Context // context.Background()

	seq  uint64
	t    *Target
	url  string    // sent to: the target's, its placeholders filled in
	from time.Time // due (open model) or queued (closed model): what latency runs from
	open bool      // from is a due time: the send lag is measured
	slot int       // closed model: the user whose request this is; -1 in the open model

	// Set by the worker that runs it, which alone reads them until recorded.
	started time.Time
	bytesIn uint64
	eof     bool
	watch   *watch // ends it at the attack's timeout; nil until sent

	timedOut atomic.Bool // set by the timer: the request took too long

	recorded atomic.Bool // set by the first to record it

	// For the end of the run: the Future, and whether a worker took it to the gate.
	future atomic.Pointer[httpfutures.Future]
	atGate atomic.Bool
}

type flightKey struct{}

// Value returns the flight for flightKey.
func (fl *flight) Value(key any) any {
	if key == (flightKey{}) {
		return fl
	}
	return fl.Context.Value(key)
}

// flightOf returns the flight req is sent with, or nil.
func flightOf(req *http.Request) *flight {
	if req == nil {
		return nil
	}
	fl, _ := req.Context().Value(flightKey{}).(*flight)
	return fl
}

// gate is the transport's next RoundTripper: it notes when a worker sends each request, refuses
// to send them once the run has ended (they count as dropped), and records the requests that
// fail. Its zero value is not ready: the transport's Attacker sets it up.
type gate struct {
	a    *Attacker
	next http.RoundTripper
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	a := g.a
	fl := flightOf(req)
	if fl != nil {
		fl.atGate.Store(true) // before ended is read: see dropQueued
		if fl.slot < 0 {
			a.waiting.Delete(fl)
		}
	}
	if a.ended.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		a.drop(fl)
		return nil, errNotSent
	}
	busy := a.started.Add(1) - a.finished.Load()
	if busy > a.busyPeak.Load() {
		a.busyPeak.Store(busy) // racy but monotone enough for a warning
	}
	if fl != nil {
		fl.started = time.Now()
		fl.watch = a.watchFor(fl)
	}
	resp, err := g.next.RoundTrip(req)
	a.finished.Add(1)
	if err != nil {
		a.record(fl, 0, "", err)
		return nil, err
	}
	if fl != nil {
		resp.Body = &flightBody{ReadCloser: resp.Body, fl: fl, a: a}
	}
	return resp, nil
}

// flightBody counts the bytes of a response body, and records the request if the body fails.
type flightBody struct {
	io.ReadCloser
	fl *flight
	a  *Attacker
}

func (b *flightBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.fl.bytesIn += uint64(n)
	switch {
	case err == io.EOF:
		b.fl.eof = true
	case err != nil:
		b.a.record(b.fl, 0, "", err)
	}
	return n, err
}

func (b *flightBody) Close() error {
	err := b.ReadCloser.Close()
	if !b.fl.eof {
		b.a.record(b.fl, 0, "", errBodyUnread)
	}
	return err
}

// onResponse is the transport's response hook: the body has been read, and the request is done.
func (a *Attacker) onResponse(resp *http.Response) error {
	a.record(flightOf(resp.Request), resp.StatusCode, resp.Status, nil)
	return nil
}

// drop counts fl as dropped: it fell due and was not sent.
func (a *Attacker) drop(fl *flight) {
	if fl != nil && !fl.recorded.CompareAndSwap(false, true) {
		return
	}
	a.recorded.Add(1)
	a.m.addDropped(1)
	if fl != nil && fl.slot >= 0 {
		a.launch(fl.slot)
	}
}

// expire ends fl, which took longer than the attack's timeout: its Future is canceled, in the
// queue or on its way, and record reports a timeout.
func (fl *flight) expire() {
	fl.timedOut.Store(true)
	if f := fl.future.Load(); f != nil {
		f.Cancel()
	}
}

// A watch ends a flight that takes longer than the attack's timeout: a timer that calls the
// flight's expire. Watches are kept in the attacker's pool and set again for the next flight,
// so that a request costs no timer of its own. A watch is made by watchFor.
type watch struct {
	t  *time.Timer
	fl atomic.Pointer[flight] // the flight watched
}

func (w *watch) fire() {
	if fl := w.fl.Load(); fl != nil {
		fl.expire()
	}
}

// watchFor returns a watch on fl, set to fire at the attack's timeout.
func (a *Attacker) watchFor(fl *flight) *watch {
	w, _ := a.watches.Get().(*watch)
	if w == nil {
		w = &watch{}
		w.fl.Store(fl)
		w.t = time.AfterFunc(a.timeout, w.fire)
		return w
	}
	w.fl.Store(fl)
	w.t.Reset(a.timeout)
	return w
}

// unwatch stops w, and keeps it for another flight unless it fired: its fire may still run,
// and the watch is then left to the collector.
func (a *Attacker) unwatch(w *watch) {
	if w.t.Stop() {
		a.watches.Put(w)
	}
}

// statusError is the error of a response whose code is not a success (below 200, or 400 and
// above): its status line, as vegeta writes it ("500 Internal Server Error").
func statusError(code int, status string) string {
	if status != "" {
		return status
	}
	if text := http.StatusText(code); text != "" {
		return strconv.Itoa(code) + " " + text
	}
	return strconv.Itoa(code)
}

// record adds the result of fl, ended now with code (its status line status) or err, unless it
// was recorded already, and in the closed model sends the next request of its user.
func (a *Attacker) record(fl *flight, code int, status string, err error) {
	if fl == nil || !fl.recorded.CompareAndSwap(false, true) {
		return
	}
	if fl.watch != nil {
		a.unwatch(fl.watch)
	}
	a.recorded.Add(1)
	now := time.Now()
	started := fl.started
	if started.IsZero() {
		started = now
	}
	r := Result{
		Attack:    a.cfg.Name,
		Seq:       fl.seq,
		Code:      uint16(code),
		Timestamp: fl.from,
		Latency:   now.Sub(fl.from),
		BytesOut:  uint64(len(fl.t.Body)),
		BytesIn:   fl.bytesIn,
		Method:    fl.t.Method,
		URL:       fl.url,
	}
	if fl.open {
		r.Lag = max(started.Sub(fl.from), 0)
	}
	kind := ""
	switch {
	case err != nil && fl.timedOut.Load():
		err = fmt.Errorf("%w: no whole response within the timeout of %v", context.DeadlineExceeded, a.timeout)
		fallthrough
	case err != nil:
		r.Code, r.Error, kind = 0, err.Error(), ErrorKind(err)
	case code < 200 || code >= 400:
		r.Error = statusError(code, status)
		kind = r.Error
	}
	a.m.add(&r, kind)
	if a.results != nil {
		w := r // only this copy goes to the heap, and only with Results
		a.results.Write(&w)
	}
	if a.onResult != nil {
		w := r // as above
		a.onResult(&w)
	}
	if fl.slot >= 0 {
		a.launch(fl.slot)
	}
}
