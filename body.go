package httpfutures

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// streamBody is a streamed response body that gives back its request's slots and context when it
// is closed or read to the end.
type streamBody struct {
	io.ReadCloser
	s      *Scheduler
	slot   *host // the host whose slot it holds, with a pool slot
	cancel context.CancelFunc
	done   atomic.Bool
}

// Read reads the body, giving back the slots at its end.
func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.release()
	}
	return n, err
}

// Close closes the body and gives back the slots.
func (b *streamBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

func (b *streamBody) release() {
	if b.done.CompareAndSwap(false, true) {
		b.s.release(b.slot)
		b.cancel()
	}
}

func closeBody(req *http.Request) {
	if req != nil && req.Body != nil {
		req.Body.Close()
	}
}
