package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// maxDemoDelay bounds /delay/MS so that a typo cannot hold a connection for hours.
const maxDemoDelay = 10 * time.Second

// newDemoHandler returns a small httpbin-like handler:
//
//	GET /get            the request echoed as JSON (args, headers, origin, url)
//	ANY /delay/MS       answers after MS milliseconds (at most 10s)
//	ANY /status/CODE    answers CODE; 429 and 503 carry Retry-After: 1
//	ANY /anything       the method, args, headers and body size echoed as JSON
func newDemoHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		answerJSON(w, http.StatusOK, echo(r))
	})
	mux.HandleFunc("/anything", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		e := echo(r)
		e.Method = r.Method
		e.BodyBytes = &n
		answerJSON(w, http.StatusOK, e)
	})
	mux.HandleFunc("/delay/{ms}", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.PathValue("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "delay must be a non-negative number of milliseconds", http.StatusBadRequest)
			return
		}
		d := min(time.Duration(ms)*time.Millisecond, maxDemoDelay)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client left or the server is shutting down
			return
		}
		answerJSON(w, http.StatusOK, map[string]int64{"delay_ms": d.Milliseconds()})
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "status must be a number from 200 to 599", http.StatusBadRequest)
			return
		}
		if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
	})
	return mux
}

// echoed is the JSON that /get and /anything answer with.
type echoed struct {
	Method    string            `json:"method,omitempty"`
	Args      map[string]any    `json:"args"`
	Headers   map[string]string `json:"headers"`
	Origin    string            `json:"origin"`
	URL       string            `json:"url"`
	BodyBytes *int64            `json:"body_bytes,omitempty"`
}

func echo(r *http.Request) echoed {
	e := echoed{Args: map[string]any{}, Headers: map[string]string{}}
	for k, vs := range r.URL.Query() {
		if len(vs) == 1 {
			e.Args[k] = vs[0]
		} else {
			e.Args[k] = vs
		}
	}
	for k, vs := range r.Header {
		e.Headers[k] = vs[0]
	}
	e.Headers["Host"] = r.Host
	e.Origin, _, _ = net.SplitHostPort(r.RemoteAddr)
	e.URL = "http://" + r.Host + r.URL.RequestURI()
	return e
}

func answerJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// demoServer is the embedded server that the demo loads, on a loopback port.
type demoServer struct {
	URL    string // http://127.0.0.1:PORT, without a trailing slash
	srv    *http.Server
	served chan error
}

// startDemoServer listens on 127.0.0.1 on a free port and serves newDemoHandler.
func startDemoServer() (*demoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the demo server: %w", err)
	}
	s := &demoServer{
		URL:    "http://" + ln.Addr().String(),
		srv:    &http.Server{Handler: newDemoHandler(), ReadHeaderTimeout: 10 * time.Second},
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server, letting requests in progress finish for up to a second.
func (s *demoServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
