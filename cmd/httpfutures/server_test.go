package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

func TestDemoHandler(t *testing.T) {
	srv := httptest.NewServer(newDemoHandler())
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	t.Run("get echoes the request", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/get?a=1&b=2&b=3", nil)
		require.NoError(t, err)
		req.Header.Set("X-Test", "yes")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var got map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		assert.Equal(t, map[string]any{"a": "1", "b": []any{"2", "3"}}, got["args"])
		assert.Equal(t, "127.0.0.1", got["origin"])
		assert.Equal(t, srv.URL+"/get?a=1&b=2&b=3", got["url"])
		headers, ok := got["headers"].(map[string]any)
		require.True(t, ok)
		assert.Equal(t, "yes", headers["X-Test"])
	})

	t.Run("get rejects other methods", func(t *testing.T) {
		resp, _ := get(t, http.MethodPost, srv.URL+"/get", "x")
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})

	t.Run("delay sleeps", func(t *testing.T) {
		start := time.Now()
		resp, body := get(t, http.MethodGet, srv.URL+"/delay/50", "")
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, `{"delay_ms":50}`, string(body))
	})

	t.Run("delay rejects a bad number", func(t *testing.T) {
		for _, p := range []string{"/delay/abc", "/delay/-1"} {
			resp, _ := get(t, http.MethodGet, srv.URL+p, "")
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, p)
		}
	})

	t.Run("status answers the code", func(t *testing.T) {
		tests := []struct {
			code       int
			retryAfter string
		}{
			{200, ""}, {204, ""}, {302, ""}, {404, ""}, {429, "1"}, {500, ""}, {503, "1"},
		}
		for _, tt := range tests {
			resp, _ := get(t, http.MethodGet, srv.URL+"/status/"+strconv.Itoa(tt.code), "")
			assert.Equal(t, tt.code, resp.StatusCode)
			assert.Equal(t, tt.retryAfter, resp.Header.Get("Retry-After"), "code %d", tt.code)
		}
	})

	t.Run("status rejects a bad code", func(t *testing.T) {
		for _, p := range []string{"/status/abc", "/status/99", "/status/600"} {
			resp, _ := get(t, http.MethodGet, srv.URL+p, "")
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, p)
		}
	})

	t.Run("anything counts the body", func(t *testing.T) {
		resp, body := get(t, http.MethodPost, srv.URL+"/anything?x=y", "hello")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		var got map[string]any
		require.NoError(t, json.Unmarshal(body, &got))
		assert.Equal(t, "POST", got["method"])
		assert.Equal(t, float64(5), got["body_bytes"])
		assert.Equal(t, map[string]any{"x": "y"}, got["args"])
	})

	t.Run("unknown path", func(t *testing.T) {
		resp, _ := get(t, http.MethodGet, srv.URL+"/nope", "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

func TestDemoServerStartsOnLoopbackAndCloses(t *testing.T) {
	s, err := startDemoServer()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(s.URL, "http://127.0.0.1:"), s.URL)

	resp, body := get(t, http.MethodGet, s.URL+"/get", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `"origin":"127.0.0.1"`)
	http.DefaultClient.CloseIdleConnections()

	require.NoError(t, s.Close())
	_, err = http.Get(s.URL + "/get")
	assert.Error(t, err, "the server is closed")
}
