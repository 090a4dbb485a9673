package httpfutures_test

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// A faultMode is how a faultServer answers.
type faultMode int32

const (
	answerOK        faultMode = iota // 200
	answer503                        // 503, no Retry-After
	answer500                        // 500
	answer429                        // 429, no Retry-After
	answer429After                   // 429 with Retry-After: 1
	answer404                        // 404
	answerStall                      // no answer until the request's context ends
	answerRandom500                  // 500 for one request in a hundred, at random; 200 otherwise
	answerGated                      // 200 once release is called; each arrival is told on arrived
)

// faultServer answers as its mode says, switched at will, and counts the requests it got.
type faultServer struct {
	*httptest.Server
	mode    atomic.Int32
	hits    atomic.Int64
	arrived chan struct{} // answerGated: a request arrived
	gate    chan struct{} // answerGated: closed by release
	once    sync.Once
}

func newFaultServer(t testing.TB, mode faultMode) *faultServer {
	t.Helper()
	s := &faultServer{arrived: make(chan struct{}, 1000), gate: make(chan struct{})}
	s.mode.Store(int32(mode))
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	t.Cleanup(s.release)
	return s
}

// release lets the gated requests be answered.
func (s *faultServer) release() { s.once.Do(func() { close(s.gate) }) }

func (s *faultServer) set(m faultMode) { s.mode.Store(int32(m)) }

func (s *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	switch faultMode(s.mode.Load()) {
	case answer503:
		w.WriteHeader(http.StatusServiceUnavailable)
	case answer500:
		w.WriteHeader(http.StatusInternalServerError)
	case answer429:
		w.WriteHeader(http.StatusTooManyRequests)
	case answer429After:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case answer404:
		w.WriteHeader(http.StatusNotFound)
	case answerStall:
		<-r.Context().Done()
	case answerGated:
		s.arrived <- struct{}{}
		select {
		case <-s.gate:
		case <-r.Context().Done():
		}
		w.Write([]byte("ok"))
	case answerRandom500:
		if rand.IntN(100) == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	default:
		w.Write([]byte("ok"))
	}
}
