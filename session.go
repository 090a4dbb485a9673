package httpfutures

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
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
