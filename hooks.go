package httpfutures

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
)

// Hooks are functions called around each round trip, in the worker goroutine that runs it. Any
// hook may be nil. Hooks should be quick and must not wait for other requests of the same
// Scheduler: while a hook runs, its worker runs nothing else.
//
// Hooks can be set for a transport or session (WithHooks) and for one request
// (ContextWithHooks). Both run, the transport's first.
type Hooks struct {
	// Request is called before the round trip with the request about to be sent: a copy of the
	// submitted request, which the hook may change (add a header, sign it).
	Request func(*http.Request)

	// Response is called after the round trip, before the Future resolves, with the response.
	// Unless the request streams, the body has been read into memory: the hook may read it (to
	// decode JSON in the background, say), and the next hook and the caller read it again from
	// the start. An error returned, or a panic, becomes the Future's error and the response is
	// discarded; a panic is returned as a *PanicError with its value and stack, and the worker
	// lives on. resp.Request is the request sent, whose context Cancel, Close and a Shutdown
	// whose context ended cancel: a hook that waits should wait on it.
	Response func(*http.Response) error
}

// PanicError is the error of a Future whose callback panicked: a hook, the next RoundTripper, a
// Limiter, a redirect or retry policy. The worker that ran it lives on.
type PanicError struct {
	Value any    // the value given to panic
	Stack []byte // the stack of the goroutine that panicked, as runtime/debug.Stack reports it
}

// Error reports the panic value, in one line; StackTrace, or the %+v verb, adds the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("httpfutures: callback panicked: %v", e.Value)
}

// StackTrace returns the stack of the goroutine that panicked, as runtime/debug.Stack reports it.
func (e *PanicError) StackTrace() string { return string(e.Stack) }

// Format formats the error as Error does, and with the %+v verb adds a new line and the stack.
func (e *PanicError) Format(s fmt.State, verb rune) {
	switch {
	case verb == 'v' && s.Flag('+'):
		fmt.Fprintf(s, "%s\n%s", e.Error(), e.Stack)
	case verb == 'q':
		fmt.Fprintf(s, "%q", e.Error())
	default:
		io.WriteString(s, e.Error())
	}
}

// newPanicError returns the error of a panic with value v, recovered by the caller. A
// *PanicError is returned as it is: it was made where the panic was recovered first, cleaned up
// after and raised again.
func newPanicError(v any) *PanicError {
	if pe, ok := v.(*PanicError); ok {
		return pe
	}
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// recoverInto, deferred, turns a panic into a *PanicError in *err.
func recoverInto(err *error) {
	if v := recover(); v != nil {
		*err = newPanicError(v)
	}
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// requestOptions are the per-request settings carried by a request's context.
type requestOptions struct {
	hooks    []Hooks
	priority int
	stream   bool
	decode   func(*http.Response) error // Decode's, run after the hooks; set on a copy, by the Session
}

// requestHooks returns the request's own hooks; o may be nil.
func (o *requestOptions) requestHooks() []Hooks {
	if o == nil {
		return nil
	}
	return o.hooks
}

// withDecode returns a copy of o, which may be nil, with decode set: o may be shared by the
// requests of one context.
func (o *requestOptions) withDecode(decode func(*http.Response) error) *requestOptions {
	var c requestOptions
	if o != nil {
		c = *o
	}
	c.decode = decode
	return &c
}

type optionsKey struct{}

func optionsFrom(ctx context.Context) *requestOptions {
	o, _ := ctx.Value(optionsKey{}).(*requestOptions)
	return o
}

// withOptions returns a context whose request options are a copy of ctx's, changed by f.
func withOptions(ctx context.Context, f func(*requestOptions)) context.Context {
	o := requestOptions{}
	if old := optionsFrom(ctx); old != nil {
		o = *old
		o.hooks = append([]Hooks(nil), old.hooks...)
	}
	f(&o)
	return context.WithValue(ctx, optionsKey{}, &o)
}

// ContextWithHooks returns a context that adds h to the hooks of any request made with it. Hooks
// added to a context that has some already run after them.
func ContextWithHooks(ctx context.Context, h Hooks) context.Context {
	return withOptions(ctx, func(o *requestOptions) { o.hooks = append(o.hooks, h) })
}

// ContextWithPriority returns a context whose requests have priority p. A request of higher
// priority is sent before any queued request of lower priority to the same host; requests of
// equal priority leave in the order they were submitted; a full queue sheds the lowest first
// (WithQueueLimit). The default priority is 0; negative priorities are allowed.
func ContextWithPriority(ctx context.Context, p int) context.Context {
	return withOptions(ctx, func(o *requestOptions) { o.priority = p })
}

// ContextWithStreaming returns a context whose requests stream: their Futures resolve as soon as
// the response headers arrive, and the caller reads and closes the body. A streamed response
// keeps its worker slot and host slot until its body is closed or read to the end, or the
// request's context ends (see AsyncTransport.RoundTrip).
func ContextWithStreaming(ctx context.Context) context.Context {
	return withOptions(ctx, func(o *requestOptions) { o.stream = true })
}

// runResponseHooks calls each response hook in turn, turning a panic into a *PanicError.
func runResponseHooks(resp *http.Response, hooks ...Hooks) (err error) {
	defer recoverInto(&err)
	for _, h := range hooks {
		if h.Response != nil {
			rewind(resp) // each hook reads the body from the start
			if err := h.Response(resp); err != nil {
				return err
			}
		}
	}
	return nil
}

// runRequestHooks calls each request hook in turn, turning a panic into a *PanicError.
func runRequestHooks(req *http.Request, hooks ...Hooks) (err error) {
	defer recoverInto(&err)
	for _, h := range hooks {
		if h.Request != nil {
			h.Request(req)
		}
	}
	return nil
}
