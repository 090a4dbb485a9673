package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// newHTTPTransport is the transport the flags describe: -http2, -h2c, -insecure, -cert/-key,
// -keepalive, -connections and -timeout (which bounds the dial, the TLS handshake and the wait
// for the response header of each request; a run's end bounds the rest).
func newHTTPTransport(c clientConfig) (*http.Transport, error) {
	dialer := &net.Dialer{Timeout: c.timeout}
	tr := &http.Transport{
		Proxy:                 nil, // a load generator loads what it is told to, never a proxy
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: c.insecure},
		TLSHandshakeTimeout:   c.timeout,
		ResponseHeaderTimeout: c.timeout,
		DisableKeepAlives:     !c.keepalive,
		MaxIdleConnsPerHost:   c.connections,
		DisableCompression:    true, // bytes in are what came over the wire
	}
	if c.certFile != "" {
		cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("-cert/-key: %w", err)
		}
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	var p http.Protocols
	switch {
	case c.h2c:
		// Without HTTP/1 among the protocols, http URLs are sent as HTTP/2 with prior knowledge;
		// https ones negotiate HTTP/2.
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP2(true)
	case c.http2:
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

// redirectTransport follows up to max redirects, with an http.Client over next; it is a
// RoundTripper so that the AsyncTransport schedules the request as a whole.
type redirectTransport struct {
	client *http.Client
}

func newRedirectTransport(next http.RoundTripper, max int) *redirectTransport {
	return &redirectTransport{client: &http.Client{
		Transport: next,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > max {
				return fmt.Errorf("%w: more than %d", errTooManyRedirects, max)
			}
			return nil
		},
	}}
}

func (t *redirectTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.client.Do(req)
}
