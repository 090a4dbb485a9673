package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// An attempt is one try of a request, in the worker that runs it: its context, the request it
// sends, and what came back. It lives on the worker's stack for the length of the try.
type attempt struct {
	t      *AsyncTransport
	f      *Future
	parent context.Context    // the request's own context, which bounds all its attempts
	ctx    context.Context    // the attempt's: parent's child, or the Future's runCtx
	cancel context.CancelFunc // ends ctx; nil if ctx is the runCtx, which only Cancel and Close end
	ref    *futureRef         // the Session Future, as a streamed attempt's context carries it; nil if not
	req    *http.Request      // what is sent: f's request, or a copy of it
	resp   *http.Response     // what came back, until the attempt hands it on
	handed bool               // req went to the RoundTripper (or client), which closes its body
	obs    observation        // what the round trip says of the host's load (adaptive limits)
	clock  instant            // the clock as the worker last read it, if just before; 0 if not
}

// run performs an attempt of f in a worker, and resolves f unless the attempt is to be tried
// again. No callback it makes can crash the process: a panic in a hook, a RoundTripper, a redirect
// policy or a retry policy resolves f with a *PanicError, and the worker lives on.
// clock is the instant the worker ended its previous attempt at, if it took f right after it
// (0 if not): the start of f's first attempt then costs no reading of the clock.
func (t *AsyncTransport) run(f *Future, clock instant) (out outcome) {
	f.sent = false
	if m := f.more; m != nil {
		m.moved, m.slot = false, nil
	}
	a := attempt{t: t, f: f, clock: clock}
	defer func() {
		if v := recover(); v != nil {
			out = a.fail(newPanicError(v))
		}
	}()
	hedge := f.is(flagHedge)
	if hedge {
		if err := t.hedgeStart(f); err != nil {
			return a.fail(err)
		}
	} else if fn := t.sched.obs.Started; fn != nil {
		tell2(fn, f, int(f.attempts.Load())+1)
	}
	if err := a.start(); err != nil {
		return a.fail(err)
	}
	adaptive := t.sched.adaptive != nil
	var sentAt instant
	if adaptive || hedge {
		sentAt = t.sched.now()
	}
	resp, err := a.roundTrip()
	if adaptive {
		canceled := errors.Is(a.parent.Err(), context.Canceled) || !f.phase.is(stateRunning)
		a.obs = classify(resp, err, sentAt, canceled)
		if h := f.host.adapt; h != nil {
			h.answered.Add(1) // no longer in flight at the server, for the sends until the attempt ends
			a.obs.answered = true
		}
	}
	if t.sched.guarded() {
		t.sched.judged(f, a.judge(resp, err)) // before f resolves: its caller may read HostStats
	}
	if hedge {
		return a.endHedge(resp, err, sentAt)
	}
	a.resp = resp
	if t.retry != nil {
		var v verdict
		v, err = t.retry.after(t, f, a.parent, resp, err)
		if v.retry {
			a.resp = nil // disposed of by the policy
			a.end()
			return outcome{slot: f.slotHost(), retry: true, wait: v.wait, obs: a.obs}
		}
		a.resp = v.resp
	}
	if err != nil {
		return a.fail(err)
	}
	return a.deliver()
}

// start makes the attempt's context and request, and runs the request hooks.
func (a *attempt) start() error {
	f, t := a.f, a.t
	a.parent = (*runCtx)(f).parent() // the request's context, or none for a Session's own
	if err := a.parent.Err(); err != nil {
		return err
	}
	if f.started.Load() == 0 {
		at := a.clock
		if at == 0 {
			at = t.sched.now()
		}
		f.started.Store(int64(max(at, f.queued))) // f may have been queued after the worker's reading
	}
	a.ctx, a.cancel, a.ref = t.attemptContext(f, a.parent)
	if fn := t.sched.obs.Context; fn != nil {
		a.ctx = observedContext(fn, a.ctx, f)
	}
	if a.cancel != nil {
		f.publishCancel(a.cancel) // Cancel and Close cancel runCtx whenever they come, and this
	}

	hooks, reqHooks := t.hooks, f.opts.requestHooks()
	// A hedge's copy is the request as it was sent, its request hooks already run.
	hooked := !f.is(flagHedge) && (hasRequestHook(hooks) || hasRequestHook(reqHooks))
	switch {
	case hooked || f.is(flagClient) && t.client.Jar != nil:
		// The hooks may change the request, and http.Client adds the jar's cookies to the one it
		// is given: they change a copy, and the caller's request stays as it was.
		a.req = f.req.Clone(a.ctx)
	case a.ctx == f.req.Context():
		a.req = f.req // a Session's own request, made with the Future's context
	default:
		a.req = f.req.WithContext(a.ctx)
	}
	if f.more != nil && f.more.nextBody != nil { // a retry: the body again, from GetBody
		a.req.Body, f.more.nextBody = f.more.nextBody, nil
	}
	if !hooked {
		return nil
	}
	err := runRequestHooks(a.req, hooks...)
	if err == nil {
		err = runRequestHooks(a.req, reqHooks...)
	}
	return err
}

// attemptContext returns the context an attempt of f runs under and the function that cancels
// it. The first attempt of a request whose context can never end runs under the Future's runCtx,
// which costs nothing and which Cancel cancels (cancel is nil); other attempts under a child of
// parent, with AttemptTimeout if set. A Session request's context carries its Future.
//
// A streamed attempt never runs under the runCtx, nor under a context that holds its Future:
// the connection that waits for the body holds the request sent, and so its context, which must
// not lead to the response if a body dropped unclosed is to be collected (see streamBody). A
// Session request's streamed attempt carries its Future in a futureRef, which the attempt clears
// once the client is done with it.
func (t *AsyncTransport) attemptContext(f *Future, parent context.Context) (context.Context, context.CancelFunc, *futureRef) {
	timeout := t.attemptTimeout()
	stream := f.is(flagStream)
	if timeout == 0 && f.attempts.Load() == 0 && parent.Done() == nil && !stream {
		return (*runCtx)(f), nil, nil
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(parent, timeout)
	} else {
		ctx, cancel = context.WithCancel(parent)
	}
	var ref *futureRef
	switch {
	case f.is(flagClient) && stream:
		ref = &futureRef{f}
		ctx = context.WithValue(ctx, futureKey{}, ref)
	case f.is(flagClient):
		ctx = context.WithValue(ctx, futureKey{}, f)
	}
	return ctx, cancel, ref
}

// observedContext returns the context fn makes from ctx for an attempt of f; ctx itself if fn
// panics or returns nil.
func observedContext(fn func(context.Context, *Future) context.Context, ctx context.Context, f *Future) (out context.Context) {
	defer func() {
		if recover() != nil || out == nil {
			out = ctx
		}
	}()
	return fn(ctx, f)
}

// attemptTimeout returns the bound of each attempt; zero if none.
func (t *AsyncTransport) attemptTimeout() time.Duration {
	if t.retry == nil {
		return 0
	}
	return t.retry.AttemptTimeout
}

// A futureRef is a Session Future as a streamed attempt's context carries it, for hopTransport:
// f is cleared once the client is done with the attempt's request.
type futureRef struct{ f *Future }

// roundTrip sends the request: through the Session's client, which follows redirects, or on the
// next RoundTripper.
func (a *attempt) roundTrip() (*http.Response, error) {
	a.f.attempts.Add(1)
	a.handed = true
	if a.f.is(flagClient) {
		resp, err := a.t.clientDo(a.f, a.req)
		if a.ref != nil {
			a.ref.f = nil // the client is done: the request's context leads no longer to f
		}
		return resp, err
	}
	return a.t.send(a.f, a.f.host, a.req)
}

// deliver reads the body of the attempt's response (unless it streams), runs the response hooks,
// and resolves the Future with it.
func (a *attempt) deliver() outcome {
	f, t, resp := a.f, a.t, a.resp
	stream := f.is(flagStream)
	if !stream {
		if err := readBody(resp, t.maxBody); err != nil {
			a.resp = nil // closed by readBody
			return a.fail(err)
		}
	}
	if err := a.responseHooks(); err != nil {
		return a.fail(err)
	}
	if !f.is(flagClient) {
		resp.Request = f.req // the hooks saw the request sent, under the attempt's context
	}
	if !stream {
		a.end()
		end := f.resolve(resp, nil)
		return outcome{slot: f.slotHost(), obs: a.obs, end: end}
	}
	watch := a.parent.Done() != nil || t.attemptTimeout() > 0 // the context may end otherwise than by cancel
	resp = streamed(resp, t, f.slotHost(), a.ctx, a.cancel, watch)
	end := f.resolve(resp, nil)
	return outcome{slot: f.slotHost(), kept: true, obs: a.obs, end: end}
}

// responseHooks runs the transport's hooks, the request's, and a decoder's, in that order, with
// the attempt's context still alive: Cancel and Close reach a hook that waits on it.
func (a *attempt) responseHooks() error {
	hooks, opts := a.t.hooks, a.f.opts
	if len(hooks) == 0 && (opts == nil || len(opts.hooks) == 0 && opts.decode == nil) {
		return nil
	}
	resp := a.resp
	err := runResponseHooks(resp, hooks...)
	if err == nil && opts != nil {
		err = runResponseHooks(resp, opts.hooks...)
		if err == nil && opts.decode != nil {
			err = runResponseHooks(resp, Hooks{Response: opts.decode})
		}
	}
	rewind(resp) // the caller reads the body from the start
	return err
}

// end ends the attempt's context.
func (a *attempt) end() {
	if a.cancel != nil {
		a.cancel()
	}
}

// fail ends the attempt and resolves its Future with err, closing what it would have sent and
// what it received.
func (a *attempt) fail(err error) outcome {
	a.end()
	if a.resp != nil {
		a.resp.Body.Close()
	}
	switch {
	case !a.handed && a.req != nil:
		closeBody(a.req)
	case !a.handed:
		a.f.closePendingBody()
	}
	if r := a.f.more; r != nil && r.nextBody != nil { // made for a retry that will not be
		r.nextBody.Close()
		r.nextBody = nil
	}
	end := a.f.resolve(nil, err)
	return outcome{slot: a.f.slotHost(), obs: a.obs, end: end}
}

func hasRequestHook(hooks []Hooks) bool {
	for _, h := range hooks {
		if h.Request != nil {
			return true
		}
	}
	return false
}

// send is one round trip of f to h on the next RoundTripper, hedged if the transport hedges it,
// with the backpressure its response asks for.
func (t *AsyncTransport) send(f *Future, h *host, req *http.Request) (*http.Response, error) {
	var resp *http.Response
	var err error
	if t.hedge != nil && t.hedge.hedges(f, req) {
		resp, err = t.hedgedSend(f, h, req)
	} else {
		resp, err = t.nextRoundTrip(req)
	}
	if err != nil {
		return nil, err
	}
	if err := t.sched.observe(h, resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// nextRoundTrip calls the next RoundTripper, and holds it to the RoundTripper contract: a panic
// becomes a *PanicError, a nil response with a nil error an error (as http.Client does), a
// response beside an error is closed, and a nil body of no length is an empty one.
func (t *AsyncTransport) nextRoundTrip(req *http.Request) (resp *http.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			closeBody(req)
			resp, err = nil, newPanicError(v)
		}
	}()
	resp, err = t.next.RoundTrip(req)
	switch {
	case err != nil:
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return nil, err
	case resp == nil:
		closeBody(req)
		return nil, fmt.Errorf("httpfutures: RoundTripper %T returned a nil *Response with a nil error", t.next)
	case resp.Body == nil:
		if resp.ContentLength > 0 && req.Method != http.MethodHead {
			return nil, fmt.Errorf("httpfutures: RoundTripper %T returned a *Response with content length %d but a nil Body", t.next, resp.ContentLength)
		}
		resp.Body = http.NoBody
	}
	return resp, nil
}
