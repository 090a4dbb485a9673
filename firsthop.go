package httpfutures

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The first hop of a Session's request: sent directly when the client would add nothing to it,
// and handed to the client when it redirects.

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
