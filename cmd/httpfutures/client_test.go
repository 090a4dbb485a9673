package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// protoServer notes the protocol, remote address and client certificates of each request.
type protoServer struct {
	*httptest.Server
	mu      sync.Mutex
	protos  map[string]int
	remotes map[string]bool
	certs   int
}

func newProtoServer(t *testing.T, tlsOn bool, configure func(*httptest.Server)) *protoServer {
	ps := &protoServer{protos: map[string]int{}, remotes: map[string]bool{}}
	ps.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Millisecond) // so that the workers overlap
		ps.mu.Lock()
		ps.protos[r.Proto]++
		ps.remotes[r.RemoteAddr] = true
		if r.TLS != nil {
			ps.certs += len(r.TLS.PeerCertificates)
		}
		ps.mu.Unlock()
	}))
	ps.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	if configure != nil {
		configure(ps.Server)
	}
	if tlsOn {
		ps.StartTLS()
	} else {
		ps.Start()
	}
	t.Cleanup(ps.Close)
	return ps
}

// writeClientCert writes a self-signed client certificate and its key as PEM files.
func writeClientCert(t *testing.T) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

func TestRunTransportFlags(t *testing.T) {
	h2cServer := func(s *httptest.Server) {
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetHTTP1(true)
		s.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	h2Server := func(s *httptest.Server) { s.EnableHTTP2 = true }
	certFile, keyFile := writeClientCert(t)
	clientCertServer := func(s *httptest.Server) { s.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert} }

	tests := []struct {
		name      string
		tls       bool
		configure func(*httptest.Server)
		args      []string
		wantCode  int
		protos    map[string]int
		remotes   int // distinct client connections; 0: not checked
		certs     int
		errorKind string
	}{
		{name: "http/1.1 by default", configure: h2cServer, args: []string{"-n", "10", "-c", "1"}, protos: map[string]int{"HTTP/1.1": 10}, remotes: 1},
		{name: "h2c", configure: h2cServer, args: []string{"-n", "10", "-c", "2", "-h2c"}, protos: map[string]int{"HTTP/2.0": 10}, remotes: 1},
		{name: "https verifies the certificate", tls: true, configure: h2Server, args: []string{"-n", "3"}, wantCode: exitFail, protos: map[string]int{}, errorKind: "tls"},
		{name: "insecure negotiates http/2", tls: true, configure: h2Server, args: []string{"-n", "10", "-insecure"}, protos: map[string]int{"HTTP/2.0": 10}},
		{name: "http2=false", tls: true, configure: h2Server, args: []string{"-n", "10", "-c", "1", "-insecure", "-http2=false"}, protos: map[string]int{"HTTP/1.1": 10}, remotes: 1},
		{name: "client certificate", tls: true, configure: clientCertServer, args: []string{"-n", "4", "-c", "1", "-insecure", "-cert", certFile, "-key", keyFile}, protos: map[string]int{"HTTP/1.1": 4}, certs: 4},
		{name: "keepalive=false", args: []string{"-n", "10", "-c", "1", "-keepalive=false"}, protos: map[string]int{"HTTP/1.1": 10}, remotes: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newProtoServer(t, tt.tls, tt.configure)

			code, rep, stderr := runJSON(t, t.Context(), append(tt.args, srv.URL)...)

			assert.Equal(t, tt.wantCode, code, stderr)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			assert.Equal(t, tt.protos, srv.protos)
			if tt.remotes > 0 {
				assert.Len(t, srv.remotes, tt.remotes)
			}
			assert.Equal(t, tt.certs, srv.certs)
			if tt.errorKind != "" {
				assert.Contains(t, rep["error_kinds"], tt.errorKind)
			}
		})
	}
}

func TestRunRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/r/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			_, _ = w.Write([]byte("done"))
			return
		}
		http.Redirect(w, r, "/r/"+strconv.Itoa(n-1), http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		name   string
		args   []string
		code   int
		codes  map[string]any
		errors int
	}{
		{"followed by default", nil, exitOK, map[string]any{"200": float64(5)}, 0},
		{"as many as allowed", []string{"-redirects", "3"}, exitOK, map[string]any{"200": float64(5)}, 0},
		{"one too many", []string{"-redirects", "2"}, exitFail, map[string]any{"0": float64(5)}, 1},
		{"none: the 3xx is the result", []string{"-redirects", "0"}, exitOK, map[string]any{"302": float64(5)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, rep, stderr := runJSON(t, t.Context(), append(append([]string{"-n", "5"}, tt.args...), srv.URL+"/r/3")...)
			assert.Equal(t, tt.code, code, stderr)
			assert.Equal(t, tt.codes, rep["status_codes"])
			assert.Len(t, rep["errors"], tt.errors)
			if tt.errors > 0 {
				assert.Contains(t, rep["errors"].([]any)[0], "too many redirects: more than 2")
			}
		})
	}
}

// A 307 sends the same method and body again; a 303 turns the POST into a GET without a body.
func TestRunRedirectKeepsOrDropsTheBody(t *testing.T) {
	var mu sync.Mutex
	var got []string
	mux := http.NewServeMux()
	mux.HandleFunc("/307", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/end", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/303", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/end", http.StatusSeeOther)
	})
	mux.HandleFunc("/end", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+string(b))
		mu.Unlock()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for path, want := range map[string]string{"/307": "POST payload", "/303": "GET "} {
		got = nil
		code, _, stderr := runJSON(t, t.Context(), "-n", "3", "-c", "1", "-m", "POST", "-d", "payload", srv.URL+path)
		require.Equal(t, exitOK, code, stderr)
		assert.Equal(t, []string{want, want, want}, got, path)
	}
}

// In the open model, -max-workers bounds the requests in flight.
func TestRunMaxWorkers(t *testing.T) {
	var cur, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
	}))
	defer srv.Close()

	code, _, stderr := runJSON(t, t.Context(), "-rate", "1000", "-duration", "200ms", "-max-workers", "3", srv.URL)

	assert.Equal(t, exitOK, code, stderr)
	assert.Equal(t, int64(3), peak.Load())
}
