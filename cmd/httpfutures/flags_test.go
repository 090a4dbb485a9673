package main

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseArgs(t *testing.T) {
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	require.NoError(t, os.WriteFile(bodyFile, []byte(`{"a":1}`), 0o600))

	const u = "http://127.0.0.1:8080/get"
	tests := []struct {
		name    string
		args    []string
		want    func(*config) // changes from the defaults for u
		wantErr string        // substring of the usage error; empty for success
	}{
		{
			name: "defaults",
			args: []string{u},
		},
		{
			name: "hey-like flags",
			args: []string{"-n", "1000", "-c", "16", "-m", "post", "-timeout", "2s", "-o", "json", u},
			want: func(c *config) {
				c.requests, c.workers, c.method, c.timeout, c.output = 1000, 16, "POST", 2*time.Second, "json"
			},
		},
		{
			name: "flags after the URL",
			args: []string{u, "-n", "5", "-c", "2"},
			want: func(c *config) { c.requests, c.workers = 5, 2 },
		},
		{
			name: "open model with duration only",
			args: []string{"-rate", "2000", "-duration", "3s", "-host-rate", "50", u},
			want: func(c *config) { c.requests, c.rate, c.duration, c.hostRate = 0, 2000, 3*time.Second, 50 },
		},
		{
			name: "n and duration both bound",
			args: []string{"-n", "10", "-duration", "1m", u},
			want: func(c *config) { c.requests, c.duration = 10, time.Minute },
		},
		{
			name: "repeated headers and Host",
			args: []string{"-H", "X-A: 1", "-H", "x-a:2", "-H", "Authorization: Bearer t:k", "-H", "Host: example.test", u},
			want: func(c *config) {
				c.header = http.Header{"X-A": {"1", "2"}, "Authorization": {"Bearer t:k"}}
				c.host = "example.test"
			},
		},
		{
			name: "body string",
			args: []string{"-m", "PUT", "-d", "hello", u},
			want: func(c *config) { c.method, c.body = "PUT", []byte("hello") },
		},
		{
			name: "empty body string is a body",
			args: []string{"-d", "", u},
			want: func(c *config) { c.body = []byte{} },
		},
		{
			name: "body file",
			args: []string{"-D", bodyFile, u},
			want: func(c *config) { c.body = []byte(`{"a":1}`) },
		},
		{
			name: "backpressure",
			args: []string{"-backpressure", u},
			want: func(c *config) { c.honorWait = true },
		},
		{
			name: "https URL",
			args: []string{"https://127.0.0.1:8443/x?q=1"},
			want: func(c *config) { c.target = "https://127.0.0.1:8443/x?q=1" },
		},
		{
			name: "no URL is the demo",
			args: []string{},
			want: func(c *config) {
				c.target, c.demo, c.requests, c.rate, c.duration = "", true, 0, demoRate, demoDuration
			},
		},
		{
			name: "demo keeps the flags given",
			args: []string{"-rate", "100", "-n", "20", "-o", "json"},
			want: func(c *config) {
				c.target, c.demo, c.requests, c.rate, c.duration, c.output = "", true, 20, 100, demoDuration, "json"
			},
		},
		{name: "unknown flag", args: []string{"-x", u}, wantErr: "flag provided but not defined: -x"},
		{name: "missing flag value", args: []string{u, "-n"}, wantErr: "flag needs an argument: -n"},
		{name: "n not a number", args: []string{"-n", "ten", u}, wantErr: "invalid value"},
		{name: "negative n", args: []string{"-n", "-1", u}, wantErr: "-n must not be negative"},
		{name: "zero n", args: []string{"-n", "0", u}, wantErr: "-n must be at least 1"},
		{name: "zero workers", args: []string{"-c", "0", u}, wantErr: "-c must be at least 1"},
		{name: "negative rate", args: []string{"-rate", "-5", u}, wantErr: "-rate must be a non-negative number"},
		{name: "infinite rate", args: []string{"-rate", "+Inf", u}, wantErr: "-rate must be a non-negative number"},
		{name: "negative host rate", args: []string{"-host-rate", "-1", u}, wantErr: "-host-rate must be"},
		{name: "bad duration", args: []string{"-duration", "3", u}, wantErr: "invalid value"},
		{name: "negative duration", args: []string{"-duration", "-1s", u}, wantErr: "-duration must not be negative"},
		{name: "zero timeout", args: []string{"-timeout", "0s", u}, wantErr: "-timeout must be positive"},
		{name: "bad output", args: []string{"-o", "xml", u}, wantErr: `-o must be text or json, got "xml"`},
		{name: "both bodies", args: []string{"-d", "x", "-D", bodyFile, u}, wantErr: "-d and -D cannot be used together"},
		{name: "missing body file", args: []string{"-D", filepath.Join(t.TempDir(), "nope"), u}, wantErr: "no such file"},
		{name: "bad header", args: []string{"-H", "NoColon", u}, wantErr: `not of the form "Name: value"`},
		{name: "bad method", args: []string{"-m", "GE T", u}, wantErr: "invalid method"},
		{name: "ftp scheme", args: []string{"ftp://127.0.0.1/x"}, wantErr: "the scheme must be http or https"},
		{name: "no scheme", args: []string{"127.0.0.1:8080/get"}, wantErr: "invalid URL"},
		{name: "no host", args: []string{"http:///get"}, wantErr: "no host"},
		{name: "unparsable URL", args: []string{"http://[::1"}, wantErr: "invalid URL"},
		{name: "two URLs", args: []string{u, u}, wantErr: "expected at most one URL, got 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var usage bytes.Buffer
			got, err := parseArgs(tt.args, &usage)
			if tt.wantErr != "" {
				require.Error(t, err)
				var ue *usageError
				assert.True(t, errors.As(err, &ue), "want a *usageError, got %T", err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotContains(t, err.Error(), "\n", "errors are reported on one line")
				return
			}
			require.NoError(t, err)
			want := &config{
				target:   u,
				requests: defaultRequests,
				workers:  defaultWorkers,
				method:   http.MethodGet,
				header:   http.Header{},
				timeout:  defaultTimeout,
				output:   "text",
			}
			if tt.want != nil {
				tt.want(want)
			}
			assert.Equal(t, want, got)
			assert.Empty(t, usage.String())
		})
	}
}

func TestParseArgsHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var usage bytes.Buffer
			cfg, err := parseArgs([]string{arg}, &usage)
			require.ErrorIs(t, err, errHelp)
			assert.Nil(t, cfg)
			assert.Contains(t, usage.String(), "usage: httpfutures [flags] [URL]")
			assert.Contains(t, usage.String(), "-rate")
		})
	}
}
