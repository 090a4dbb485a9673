package loadgen

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The settings that shape the transport without a test of their own on the wire.
func TestNewHTTPTransport(t *testing.T) {
	tr, err := newHTTPTransport(ClientConfig{Connections: 3, Timeout: 5 * time.Second, HeaderTimeout: 2 * time.Second, DisableKeepAlives: true, MaxConnections: 4}, 8)
	require.NoError(t, err)
	assert.Equal(t, 3, tr.MaxIdleConnsPerHost)
	assert.Equal(t, 4, tr.MaxConnsPerHost)
	assert.Equal(t, 2*time.Second, tr.ResponseHeaderTimeout)
	assert.Equal(t, 2*time.Second, tr.TLSHandshakeTimeout)
	assert.True(t, tr.DisableKeepAlives)
	assert.Nil(t, tr.Proxy, "never a proxy from the environment")

	tr, err = newHTTPTransport(ClientConfig{Timeout: 3 * time.Second}, 50)
	require.NoError(t, err)
	assert.Equal(t, 50, tr.MaxIdleConnsPerHost, "by default, one per worker")
	assert.Equal(t, 3*time.Second, tr.ResponseHeaderTimeout, "without a header timeout, the timeout")
	assert.Zero(t, tr.MaxConnsPerHost, "no cap by default")

	_, err = newHTTPTransport(ClientConfig{CertFile: "nope.pem", KeyFile: "nope.pem"}, 1)
	assert.ErrorContains(t, err, "-cert/-key")
}

// With a Unix socket, every connection goes to it, whatever the URL's host, which is still
// sent as the Host.
func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	hosts := make(chan string, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	target, err := NewTarget("http://api.test/x")
	require.NoError(t, err)
	a, err := New(Config{Targets: []*Target{target}, Requests: 3, Workers: 1, Client: ClientConfig{UnixSocket: sock}})
	require.NoError(t, err)
	r := a.Run(t.Context())

	assert.Equal(t, uint64(3), r.Successes)
	assert.Equal(t, "api.test", <-hosts)
}
