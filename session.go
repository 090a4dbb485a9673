package httpfutures

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"unicode/utf8"
)

// A Session is http.Client's methods returning Futures, as requests-futures' FuturesSession is
// requests.Session's. It wraps an http.Client (WithClient, or a new one): each request runs that
// client's Do in a worker, so its cookie jar, redirect policy and timeout apply, and every round
// trip, redirects included, passes the Scheduler's limits.
//
// The zero Session is ready to use, as NewSession() makes it. A Session is safe for concurrent
// use. Close it when done.
type Session struct {
	once sync.Once // runs setup: by NewSession, or at the first use of a zero Session

	// Set by setup, read-only after.
	t     *AsyncTransport
	async *http.Client // the wrapped client, run in the workers
	sync  *http.Client // the wrapped client on the AsyncTransport
}

// NewSession returns a Session configured by opts, with 8 workers unless WithWorkers or
// WithScheduler says otherwise.
func NewSession(opts ...Option) *Session {
	s := &Session{}
	c := newConfig(opts)
	s.once.Do(func() { s.setup(c) })
	return s
}

// init sets up a zero Session with the defaults.
func (s *Session) init() {
	s.once.Do(func() { s.setup(newConfig(nil)) })
}

func (s *Session) setup(c *config) {
	base := c.client
	if base == nil {
		base = &http.Client{}
	}
	t := newTransport(base.Transport, c)
	async, sync := *base, *base
	async.Transport = hopTransport{t}
	if check := base.CheckRedirect; check != nil {
		// A policy that panics is an error to the client, which then closes the response it
		// was about to follow; the Future fails with the *PanicError.
		async.CheckRedirect = func(req *http.Request, via []*http.Request) (err error) {
			defer recoverInto(&err)
			return check(req, via)
		}
	}
	sync.Transport = t
	t.client = &async
	s.t, s.async, s.sync = t, &async, &sync
}

// clientFuture makes f run through its transport's client, as a Session's requests do.
func clientFuture(f *Future) { f.flags |= flagClient }

// Get starts a GET of url. The request it makes, like those of Head, Post and PostForm, runs
// under its Future's context: Cancel ends it. To give a request a context, use Do.
func (s *Session) Get(url string) *Future { return s.send(http.MethodGet, url, "", nil) }

// Head starts a HEAD of url.
func (s *Session) Head(url string) *Future { return s.send(http.MethodHead, url, "", nil) }

// Post starts a POST of body to url with the given Content-Type. If body is an io.Closer, it is
// closed once the request is done with it, on every path.
func (s *Session) Post(url, contentType string, body io.Reader) *Future {
	return s.send(http.MethodPost, url, contentType, body)
}

// PostForm starts a POST of data, URL-encoded, to url.
func (s *Session) PostForm(url string, data url.Values) *Future {
	return s.send(http.MethodPost, url, "application/x-www-form-urlencoded", strings.NewReader(data.Encode()))
}

// Do starts req. As with http.Client.Do, a redirect is followed according to the client's
// policy, and the response's Request is the last request sent.
func (s *Session) Do(req *http.Request) *Future { return s.do(req, nil) }

func (s *Session) do(req *http.Request, decode func(*http.Response) error) *Future {
	s.init()
	return s.t.startFunc(req, func(f *Future) {
		f.flags |= flagClient
		if decode != nil {
			f.opts = f.opts.withDecode(decode)
		}
	})
}

// send starts a request of the Session's own. Its context is its Future's, which only Cancel
// ends: the request runs with no copy.
func (s *Session) send(method, url, contentType string, body io.Reader) *Future {
	s.init()
	f := newFuture(s.t, nil)
	req, err := http.NewRequestWithContext((*runCtx)(f), method, url, body)
	if err == nil {
		f.flags |= flagOwnCtx // before anything reads the context
	}
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	} else if err = validate(req); err != nil {
		f.req = req
	}
	if err != nil {
		if c, ok := body.(io.Closer); ok {
			c.Close()
		}
		f.failEarly(err)
		return f
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	f.req = req
	return s.t.start(f, clientFuture)
}

// Client returns the wrapped client with the Session's AsyncTransport as its Transport: the
// synchronous way to send a request under the same limits. Its Timeout, if set, counts the time a
// request waits in the queue, as http.Client counts all the time its Transport takes: a request
// queued behind others may time out before it is sent. The Session's own methods run the client
// in a worker, once the request is out of the queue, so that their Timeout counts only the
// round trips.
func (s *Session) Client() *http.Client {
	s.init()
	return s.sync
}

// Transport returns the Session's AsyncTransport, for StartRoundTrip and its Scheduler.
func (s *Session) Transport() *AsyncTransport {
	s.init()
	return s.t
}

// Stats returns the counts of the Session's requests; see AsyncTransport.Stats.
func (s *Session) Stats() Stats { return s.Transport().Stats() }

// HostStats returns the state of one host in the Session's Scheduler; see Scheduler.HostStats.
func (s *Session) HostStats(host string) HostStats { return s.Transport().HostStats(host) }

// Close stops the Session at once; see AsyncTransport.Close.
func (s *Session) Close() error { return s.Transport().Close() }

// Shutdown stops the Session gracefully; see AsyncTransport.Shutdown.
func (s *Session) Shutdown(ctx context.Context) error { return s.Transport().Shutdown(ctx) }

// futureKey carries the running Session Future in its request's context, for hopTransport: the
// Future itself, or a *futureRef.
type futureKey struct{}

// futureOf returns the Session Future that ctx carries; nil if none.
func futureOf(ctx context.Context) *Future {
	switch v := ctx.Value(futureKey{}).(type) {
	case *Future:
		return v
	case *futureRef:
		return v.f
	}
	return nil
}

// hopTransport is the Transport of the client a Session runs in a worker. The first round trip
// of a request uses the slots the worker took for it. A redirect moves the request's host slot to
// the host it leads to: the worker keeps its place in the pool and waits, with it, for that
// host's rate tokens and slot, so that a redirect never waits behind the queue and requests that
// redirect never take more than the workers.
type hopTransport struct{ t *AsyncTransport }

// RoundTrip sends the first round trip of a Session request in the worker's slots, and a redirect
// once it has its host's. A first round trip that clientDo sent already is not sent again: its
// response is handed to the client.
func (h hopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f := futureOf(req.Context())
	if f == nil || f.t != h.t {
		return h.t.RoundTrip(req)
	}
	if m := f.more; m != nil && m.first != nil {
		resp := m.first
		m.first, m.last = nil, resp
		return resp, nil
	}
	if !f.sent {
		f.sent = true
		return h.send(f, req)
	}
	if err := h.t.sched.redirect(req.Context(), f, hostKey(req.URL.Scheme, req.URL.Host)); err != nil {
		closeBody(req)
		return nil, err
	}
	h.t.countRedirect()
	return h.send(f, req)
}

// send sends a round trip of f in the slots it holds. With a cookie jar, whose SetCookies the
// client calls holding the response, it notes the response as the last one handed to the client,
// to be closed if the jar panics (a panicking redirect policy is an error to the client, which
// closes the response itself).
func (h hopTransport) send(f *Future, req *http.Request) (*http.Response, error) {
	resp, err := h.t.send(f, f.slotHost(), req)
	if resp != nil && h.t.client.Jar != nil {
		f.moreState().last = resp
	}
	return resp, err
}

// CloseIdleConnections closes the idle connections of the Session's transport.
func (h hopTransport) CloseIdleConnections() { h.t.CloseIdleConnections() }

// clientDo runs req, the request of the Session Future f, through t's client, as client.Do(req)
// does. When the client would add nothing to its first round trip (it has no cookie jar and no
// timeout, and the request has a header, no user info in its URL and no RequestURI), that round
// trip is sent directly, without the copies the client makes for the redirects it may follow;
// if its response redirects, the client takes over from it, as from a round trip of its own. An
// error is a *url.Error with the client's text.
func (t *AsyncTransport) clientDo(f *Future, req *http.Request) (*http.Response, error) {
	c := t.client
	if c.Jar != nil || c.Timeout > 0 || req.Header == nil || req.URL.User != nil || req.RequestURI != "" {
		return clientDoSafely(c, f, req)
	}
	f.sent = true
	resp, err := t.send(f, f.slotHost(), req)
	if err != nil {
		if tlsErr, ok := err.(tls.RecordHeaderError); ok && string(tlsErr.RecordHeader[:]) == "HTTP/" {
			err = http.ErrSchemeMismatch // as the client says it
		}
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: req.URL.String(), Err: err}
	}
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		m := f.moreState()
		m.first = resp // hopTransport hands it to the client as its first round trip's
		resp, err = clientDoSafely(c, f, req)
		if m.first != nil { // the client never asked for it
			m.first.Body.Close()
			m.first = nil
		}
		return resp, err
	}
	return resp, nil
}

// clientDoSafely is c.Do(req) for the Session Future f. If a callback of the client panics (its
// Jar, say), what the client held is let go before the panic goes on to fail f: the request's
// body if it was never sent, and the last response hopTransport handed the client, which it
// would have closed or returned.
func clientDoSafely(c *http.Client, f *Future, req *http.Request) (*http.Response, error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		pe := newPanicError(v)
		if !f.sent {
			closeBody(req)
		}
		if m := f.more; m != nil {
			for _, resp := range []*http.Response{m.first, m.last} {
				if resp != nil {
					resp.Body.Close()
				}
			}
			m.first, m.last = nil, nil
		}
		panic(pe)
	}()
	resp, err := c.Do(req)
	if m := f.more; m != nil {
		m.last = nil // the client closed it, or returns it
	}
	return resp, err
}

// urlErrorOp is the Op of the *url.Error that http.Client returns for a request of method: the
// method with all but its first letter in lower case ("Get", "Propfind"), as it is if not ASCII.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	for i := range len(method) {
		if method[i] >= utf8.RuneSelf {
			return method
		}
	}
	return method[:1] + strings.ToLower(method[1:])
}
