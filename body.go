package httpfutures

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// ErrBodyTooLarge is the error of a request whose response body was larger than WithMaxBodySize
// allows.
var ErrBodyTooLarge = errors.New("httpfutures: response body too large")

// unknownLengthBuffer is the buffer a body of unknown length is first read into, beside its
// reader in 512 bytes; it grows as needed.
const unknownLengthBuffer = 512 - memReaderSize

// readBody reads the whole body into memory, at most max bytes, and closes it.
func readBody(resp *http.Response, max int64) error {
	body := resp.Body
	if _, read := body.(*memBody); read || body == http.NoBody {
		return nil
	}
	defer body.Close()
	if resp.ContentLength > max {
		return fmt.Errorf("%w: Content-Length %d is over the limit of %d bytes (raise WithMaxBodySize, or stream the body)", ErrBodyTooLarge, resp.ContentLength, max)
	}
	size := int64(unknownLengthBuffer)
	if resp.ContentLength >= 0 {
		size = resp.ContentLength + 1 // room to read the EOF without growing
	}
	mem, buf := newMemBody(size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return fmt.Errorf("%w: over the limit of %d bytes (raise WithMaxBodySize, or stream the body)", ErrBodyTooLarge, max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return &bodyReadError{err}
		}
	}
	if len(buf) == 0 {
		resp.Body = http.NoBody
		return nil
	}
	mem.Reset(buf)
	resp.Body = mem
	return nil
}

// bodyReadError is the error of a response whose body could not be read whole: a connection
// reset or a truncated body.
type bodyReadError struct{ err error }

// Error tells what the read failed with.
func (e *bodyReadError) Error() string { return "httpfutures: reading response body: " + e.err.Error() }

// Unwrap returns the read's error.
func (e *bodyReadError) Unwrap() error { return e.err }

// memBody is a response body read into memory.
type memBody struct{ bytes.Reader }

// A small body is read into a buffer beside its reader, in one allocation of a size class of
// the allocator: an inlineBody whose buf is an array of bytes.
type inlineBody[B any] struct {
	memBody
	buf B
}

// memReaderSize is the size of a memBody without its buffer.
const memReaderSize = unsafe.Sizeof(memBody{})

// newInline returns the memBody of a new inlineBody[B], and its buffer, empty.
func newInline[B any]() (*memBody, []byte) {
	b := new(inlineBody[B])
	return &b.memBody, unsafe.Slice((*byte)(unsafe.Pointer(&b.buf)), unsafe.Sizeof(b.buf))[:0]
}

// inlineBodies are the inlineBody sizes, smallest first: the allocator's size classes up to a
// kilobyte, less the reader.
var inlineBodies = [...]struct {
	size uintptr
	make func() (*memBody, []byte)
}{
	{64 - memReaderSize, newInline[[64 - memReaderSize]byte]},
	{80 - memReaderSize, newInline[[80 - memReaderSize]byte]},
	{96 - memReaderSize, newInline[[96 - memReaderSize]byte]},
	{112 - memReaderSize, newInline[[112 - memReaderSize]byte]},
	{128 - memReaderSize, newInline[[128 - memReaderSize]byte]},
	{160 - memReaderSize, newInline[[160 - memReaderSize]byte]},
	{192 - memReaderSize, newInline[[192 - memReaderSize]byte]},
	{256 - memReaderSize, newInline[[256 - memReaderSize]byte]},
	{320 - memReaderSize, newInline[[320 - memReaderSize]byte]},
	{384 - memReaderSize, newInline[[384 - memReaderSize]byte]},
	{512 - memReaderSize, newInline[[512 - memReaderSize]byte]},
	{640 - memReaderSize, newInline[[640 - memReaderSize]byte]},
	{768 - memReaderSize, newInline[[768 - memReaderSize]byte]},
	{1024 - memReaderSize, newInline[[1024 - memReaderSize]byte]},
}

// newMemBody returns a memBody and an empty buffer of at least size bytes to read its body
// into: beside it in one allocation if the body is small.
func newMemBody(size int64) (*memBody, []byte) {
	for _, b := range inlineBodies {
		if size <= int64(b.size) {
			return b.make()
		}
	}
	return new(memBody), make([]byte, 0, size)
}

// Close does nothing: the connection was released when the body was read.
func (*memBody) Close() error { return nil }

// rewind makes the next reader of resp's body read it from the start, if it is in memory.
func rewind(resp *http.Response) {
	if b, ok := resp.Body.(*memBody); ok {
		b.Seek(0, io.SeekStart)
	}
}

// A streamBody is a streamed response body. It holds its request's worker slot and host slot
// until it is closed or read to the end, its request's context ends, or the collector finds it
// unclosed. What it holds is apart from it, in a bodyHold, so that a cleanup can give the slots
// back once the body is garbage; see streamed for what must not lead back to it.
type streamBody struct {
	hold    *bodyHold
	cleanup runtime.Cleanup // ends the hold if the body is collected unclosed
}

// A bodyHold is what a streamed body holds: the body as the RoundTripper returned it, its
// request's slots, and the attempt's context. The caller's goroutine, the watch on that context
// and the collector's cleanup may each end it: closed and released make each step happen once.
type bodyHold struct {
	rc     io.ReadCloser
	t      *AsyncTransport
	slot   *host              // the host whose slot it holds, with a pool slot
	cancel context.CancelFunc // ends the attempt's context
	stop   func() bool        // stops the watch on that context; nil if unwatched. Set before the body is handed on

	closed   atomic.Bool // rc was closed
	released atomic.Bool // the slots went back
}

// streamed returns the response that a streamed attempt of t hands on: a copy of resp, whose
// body holds slot until it ends. ctx is the attempt's context, which cancel ends; watch tells
// that ctx may end otherwise (its request's context can, or the attempt has a timeout), which
// then ends the body.
//
// The response is a copy so that nothing the RoundTripper keeps leads to the body handed on, and
// a body dropped unclosed can be collected: net/http keeps the response it made while the body
// is open (its HTTP/2 stream does, and its chunked reader, to set the trailers), and so would
// keep a body set in it. The copy shares its Trailer with the original, made if it is nil, so
// that the trailers read at the end of the body show in it.
func streamed(resp *http.Response, t *AsyncTransport, slot *host, ctx context.Context, cancel context.CancelFunc, watch bool) *http.Response {
	if resp.Trailer == nil {
		resp.Trailer = make(http.Header)
	}
	h := &bodyHold{rc: resp.Body, t: t, slot: slot, cancel: cancel}
	if watch {
		h.stop = context.AfterFunc(ctx, h.abandon)
	}
	t.countBodies(1)
	b := &streamBody{hold: h}
	b.cleanup = runtime.AddCleanup(b, (*bodyHold).collected, h)
	out := *resp
	out.Body = b
	return &out
}

// Read reads the body, giving back the slots at its end.
func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.hold.rc.Read(p)
	if err == io.EOF {
		b.hold.release(byCaller)
	}
	return n, err
}

// Close closes the body, once, and gives back the slots.
func (b *streamBody) Close() error {
	b.cleanup.Stop()
	err := b.hold.close()
	b.hold.release(byCaller)
	return err
}

// close closes the body the first time it is called, and returns what its Close returned.
func (h *bodyHold) close() error {
	if h.closed.CompareAndSwap(false, true) {
		return h.rc.Close()
	}
	return nil
}

// How a body's slots go back: from its caller (closed, or read to the end), from the watch on
// its context, or from the collector.
const (
	byCaller = iota
	byWatch
	byCollector
)

// release gives back the slots and ends the attempt's context, the first time it is called. by
// tells who calls it: the collector's release counts the body as leaked, before the body is
// counted out, so that Stats never show it gone and not leaked.
func (h *bodyHold) release(by int) {
	if !h.released.CompareAndSwap(false, true) {
		return
	}
	if h.stop != nil && by != byWatch {
		h.stop() // before cancel, which would set the watch off
	}
	if by == byCollector {
		h.t.countLeak()
	}
	h.t.sched.releaseBody(h.slot)
	h.t.countBodies(-1)
	h.cancel()
}

// abandon ends the body of a request whose context ended: it is closed (a Read in progress
// fails) and its slots go back at once, as net/http gives back a connection.
func (h *bodyHold) abandon() {
	h.close()
	h.release(byWatch)
}

// collected ends a body that was collected unclosed: it is closed, which ends its connection's
// wait for it, and its slots go back. It counts as leaked if it still held them.
func (h *bodyHold) collected() {
	h.close()
	h.release(byCollector)
}

func closeBody(req *http.Request) {
	if req != nil && req.Body != nil {
		req.Body.Close()
	}
}
