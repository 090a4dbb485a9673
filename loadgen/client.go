package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// newHTTPTransport is the transport c describes, for an attack of workers workers. Its
// timeouts bound the dial, the TLS handshake and the wait for the response header (the
// attack's timer bounds the rest of each request).
func newHTTPTransport(c ClientConfig, workers int) (*http.Transport, error) {
	wait := c.headerTimeout()
	dialer := &net.Dialer{Timeout: wait}
	dial := dialer.DialContext
	if c.UnixSocket != "" {
		path := c.UnixSocket
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
	}
	idle := c.Connections
	if idle == 0 {
		idle = workers
	}
	tr := &http.Transport{
		Proxy:                 nil, // a load generator loads what it is told to, never a proxy
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: c.Insecure},
		TLSHandshakeTimeout:   wait,
		ResponseHeaderTimeout: wait,
		DisableKeepAlives:     c.DisableKeepAlives,
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       max(c.MaxConnections, 0),
		DisableCompression:    true, // bytes in are what came over the wire
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("-cert/-key: %w", err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	var p http.Protocols
	switch {
	case c.H2C:
		// Without HTTP/1 among the protocols, http URLs are sent as HTTP/2 with prior knowledge;
		// https ones negotiate HTTP/2.
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP2(true)
	case !c.NoHTTP2:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	tr.Protocols = &p
	return tr, nil
}

// errTooManyRedirects is the error of a request redirected more often than -redirects allows.
var errTooManyRedirects = errors.New("too many redirects")

// redirectTransport follows up to max redirects. The first round trip goes straight to next,
// so that a response that is not a redirect, the common case, costs nothing more; a redirect is
// followed from there by an http.Client over next, with what is left of the budget. It is a
// RoundTripper so that the AsyncTransport schedules the request as a whole. Its zero value is
// not ready: use newRedirectTransport.
type redirectTransport struct {
	next   http.RoundTripper
	client *http.Client
}

func newRedirectTransport(next http.RoundTripper, max int) *redirectTransport {
	return &redirectTransport{next: next, client: &http.Client{
		Transport: next,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			// via starts with the request made for the first redirect: one is spent already.
			if len(via) >= max {
				return fmt.Errorf("%w: more than %d", errTooManyRedirects, max)
			}
			return nil
		},
	}}
}

func (t *redirectTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	loc := resp.Header.Get("Location")
	if loc == "" || !isRedirect(resp.StatusCode) {
		return resp, nil
	}
	target, err := req.URL.Parse(loc)
	if err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("redirect to %q: %w", loc, err)
	}
	// As http.Client does: 301, 302 and 303 turn all but HEAD into a GET without a body; 307 and
	// 308 send the same method and body again.
	method, body := req.Method, req.GetBody
	if resp.StatusCode <= http.StatusSeeOther {
		body = nil
		if method != http.MethodHead {
			method = http.MethodGet
		}
	} else if req.Body != nil && req.Body != http.NoBody && body == nil {
		return resp, nil // the body cannot be sent again: the redirect is the result
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	next, err := http.NewRequestWithContext(req.Context(), method, target.String(), nil)
	if err != nil {
		return nil, err
	}
	next.Header = req.Header.Clone()
	if body != nil {
		if next.Body, err = body(); err != nil {
			return nil, err
		}
		next.GetBody, next.ContentLength = body, req.ContentLength
	}
	if req.Host != "" && req.Host != req.URL.Host && target.Host == req.URL.Host {
		next.Host = req.Host
	}
	return t.client.Do(next)
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}
