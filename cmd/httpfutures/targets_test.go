package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingServer notes "METHOD path header body" of each request.
func recordingServer(t *testing.T) (*httptest.Server, func() []string) {
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+r.Header.Get("X-T")+" "+string(b)))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func count(lines []string) map[string]int {
	m := map[string]int{}
	for _, l := range lines {
		m[l]++
	}
	return m
}

func TestRunTargets(t *testing.T) {
	dir := t.TempDir()
	bodyFile := filepath.Join(dir, "body.txt")
	require.NoError(t, os.WriteFile(bodyFile, []byte("from file"), 0o600))
	httpFile := func(u string) string {
		return "# a comment\nGET " + u + "/a\nX-T: one\n\nPOST " + u + "/b\n# weight: 3\nX-T: two\n@" + bodyFile + "\n"
	}
	jsonFile := func(u string) string {
		return `{"method":"GET","url":"` + u + `/a","header":{"X-T":["one"]}}` + "\n" +
			`{"method":"PUT","url":"` + u + `/c","body":"YmFzZTY0","weight":2}` + "\n"
	}
	tests := []struct {
		name string
		file func(u string) string // the targets file; nil for none
		args func(u string) []string
		want map[string]int
	}{
		{"http format, weighted", httpFile, func(string) []string { return []string{"-n", "40"} },
			map[string]int{"GET /a one": 10, "POST /b two from file": 30}},
		{"json lines, weighted", jsonFile, func(string) []string { return []string{"-n", "30"} },
			map[string]int{"GET /a one": 10, "PUT /c  base64": 20}},
		{"format given, open model", httpFile, func(string) []string { return []string{"-n", "4", "-rate", "1000", "-format", "http"} },
			map[string]int{"GET /a one": 1, "POST /b two from file": 3}},
		{"several URLs, round-robin", nil, func(u string) []string { return []string{"-n", "30", "-H", "X-T: cli", u + "/x", u + "/y", u + "/z"} },
			map[string]int{"GET /x cli": 10, "GET /y cli": 10, "GET /z cli": 10}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, got := recordingServer(t)
			args := tt.args(srv.URL)
			if tt.file != nil {
				p := filepath.Join(dir, "targets"+strconv.Itoa(i))
				require.NoError(t, os.WriteFile(p, []byte(tt.file(srv.URL)), 0o600))
				args = append(args, "-targets", p)
			}
			code, _, stderr := runJSON(t, t.Context(), args...)
			require.Equal(t, 0, code, stderr)
			assert.Equal(t, tt.want, count(got()))
		})
	}
}

func TestTargetsFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string
	}{
		{"empty", "# nothing\n", "no target in the file"},
		{"no URL", "GET\n", `line 1: "GET" is not of the form "METHOD URL"`},
		{"bad method", "G(T http://127.0.0.1/\n", `line 1: invalid method "G(T"`},
		{"bad header", "GET http://127.0.0.1/\nBad Name: x\n", `line 2: header "Bad Name: x": "Bad Name" is not a valid header name`},
		{"missing body file", "GET http://127.0.0.1/\n@" + filepath.Join(dir, "nope") + "\n", "line 2: open"},
		{"bad weight", "GET http://127.0.0.1/\n# weight: 0\n", "line 2: weight \"0\" is not a positive integer"},
		{"bad json", `{"url": 5}`, "target 1:"},
		{"unknown json field", `{"url":"http://127.0.0.1/","headers":{}}`, `unknown field "headers"`},
		{"json without URL", `{"method":"GET"}`, `target 1: invalid URL ""`},
		{"json bad weight", `{"url":"http://127.0.0.1/","weight":-1}`, "target 1: weight -1 is not positive"},
		{"json colon in a header name", `{"url":"http://127.0.0.1/","header":{"X-A:evil":["v"]}}`, `target 1: header "X-A:evil: v": "X-A:evil" is not a valid header name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "t")
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o600))
			_, err := parseArgs([]string{"-targets", p}, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
