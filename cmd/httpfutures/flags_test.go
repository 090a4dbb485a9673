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

	"github.com/httpfutures/httpfutures/loadgen"
)

func TestParseArgs(t *testing.T) {
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	require.NoError(t, os.WriteFile(bodyFile, []byte(`{"a":1}`), 0o600))

	const u = "http://127.0.0.1:8080/get"
	targetsFile := filepath.Join(t.TempDir(), "targets.txt")
	require.NoError(t, os.WriteFile(targetsFile, []byte("GET http://127.0.0.1:1/a\n\nPOST http://127.0.0.1:1/b\n# weight: 2\nX-B: 1\n"), 0o600))
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
				c.Requests, c.Workers, c.method, c.format = 1000, 16, "POST", "json"
				c.Targets[0].Method, c.Client.Timeout, c.Client.Connections = "POST", 2*time.Second, 16
			},
		},
		{
			name: "flags after the URL",
			args: []string{u, "-n", "5", "-c", "2"},
			want: func(c *config) { c.Requests, c.Workers, c.Client.Connections = 5, 2, 2 },
		},
		{
			name: "open model with duration only",
			args: []string{"-rate", "2000", "-duration", "3s", "-host-rate", "50", u},
			want: func(c *config) {
				c.Requests, c.Duration, c.HostRate = 0, 3*time.Second, 50
				c.Rate = rateOf(t, "2000", 3*time.Second)
				c.Client.Connections = defaultMaxWorkers
			},
		},
		{
			name: "stages set the duration",
			args: []string{"-rate", "10@1s,20:30@2s", "-max-workers", "50", u},
			want: func(c *config) {
				c.Requests, c.Duration, c.MaxWorkers, c.Client.Connections = 0, 3*time.Second, 50, 50
				c.Rate = rateOf(t, "10@1s,20:30@2s", 0)
			},
		},
		{
			name: "c bounds the open model when max-workers is not given",
			args: []string{"-rate", "500", "-duration", "3s", "-c", "8", u},
			want: func(c *config) {
				c.Requests, c.Duration, c.Workers, c.MaxWorkers, c.Client.Connections = 0, 3*time.Second, 8, 8, 8
				c.Rate = rateOf(t, "500", 3*time.Second)
			},
		},
		{
			name: "n and duration both bound",
			args: []string{"-n", "10", "-duration", "1m", u},
			want: func(c *config) { c.Requests, c.Duration = 10, time.Minute },
		},
		{
			name: "repeated headers and Host",
			args: []string{"-H", "X-A: 1", "-H", "x-a:2", "-H", "Authorization: Bearer t:k", "-H", "Host: example.test", u},
			want: func(c *config) {
				c.header = http.Header{"X-A": {"1", "2"}, "Authorization": {"Bearer t:k"}}
				c.host = "example.test"
				c.Targets[0].Header, c.Targets[0].Host = c.header, c.host
			},
		},
		{
			name: "body string",
			args: []string{"-m", "PUT", "-d", "hello", u},
			want: func(c *config) {
				c.method, c.body = "PUT", []byte("hello")
				c.Targets[0].Method, c.Targets[0].Body = "PUT", c.body
			},
		},
		{
			name: "empty body string is a body",
			args: []string{"-d", "", u},
			want: func(c *config) { c.body, c.Targets[0].Body = []byte{}, []byte{} },
		},
		{
			name: "body file",
			args: []string{"-D", bodyFile, u},
			want: func(c *config) { c.body, c.Targets[0].Body = []byte(`{"a":1}`), []byte(`{"a":1}`) },
		},
		{
			name: "backpressure",
			args: []string{"-backpressure", u},
			want: func(c *config) { c.HonorWait = true },
		},
		{
			name: "https URL",
			args: []string{"https://127.0.0.1:8443/x?q=1"},
			want: func(c *config) { c.Targets[0].URL = "https://127.0.0.1:8443/x?q=1" },
		},
		{
			name: "several URLs",
			args: []string{u, "http://127.0.0.1:8080/b"},
			want: func(c *config) {
				c.Targets = append(c.Targets, &loadgen.Target{Method: "GET", URL: "http://127.0.0.1:8080/b", Header: http.Header{}, Weight: 1})
			},
		},
		{
			name: "targets file",
			args: []string{"-targets", targetsFile, "-H", "X-A: 0"},
			want: func(c *config) {
				c.header = http.Header{"X-A": {"0"}}
				c.Targets = []*loadgen.Target{
					{Method: "GET", URL: "http://127.0.0.1:1/a", Header: http.Header{"X-A": {"0"}}, Weight: 1},
					{Method: "POST", URL: "http://127.0.0.1:1/b", Header: http.Header{"X-A": {"0"}, "X-B": {"1"}}, Weight: 2},
				}
			},
		},
		{
			name: "transport flags",
			args: []string{"-http2=false", "-h2c", "-insecure", "-keepalive=false", "-connections", "3", "-max-connections", "5", "-unix-socket", "/tmp/s.sock", "-redirects", "0", "-header-timeout", "1s", u},
			want: func(c *config) {
				c.Client.NoHTTP2, c.Client.H2C, c.Client.Insecure, c.Client.DisableKeepAlives = true, true, true, true
				c.Client.Connections, c.Client.MaxConnections, c.Client.UnixSocket, c.Client.Redirects = 3, 5, "/tmp/s.sock", 0
				c.Client.HeaderTimeout = time.Second
			},
		},
		{
			name: "vegeta's rate syntax",
			args: []string{"-rate", "50/1s", "-duration", "2s", u},
			want: func(c *config) {
				c.Requests, c.Duration, c.Client.Connections = 0, 2*time.Second, defaultMaxWorkers
				c.Rate = rateOf(t, "50/1s", 2*time.Second)
			},
		},
		{
			name: "CSV results, by -o or by the file's name",
			args: []string{"-o", "csv", u},
			want: func(c *config) { c.format, c.resultsFormat = "csv", loadgen.CSVResults },
		},
		{
			name: "prometheus",
			args: []string{"-prometheus", "127.0.0.1:9999", u},
			want: func(c *config) { c.prometheus = "127.0.0.1:9999" },
		},
		{
			name: "thresholds and output",
			args: []string{"-threshold", "p99<50ms,success>=99.9%", "-output", "r.json", "-name", "x", u},
			want: func(c *config) {
				c.output, c.Name = "r.json", "x"
				c.thresholds, _ = loadgen.ParseThresholds("p99<50ms,success>=99.9%")
			},
		},
		{
			name: "no URL is the demo",
			args: []string{},
			want: func(c *config) {
				c.Targets, c.demo, c.Requests, c.Rate, c.Duration = nil, true, 0, loadgen.ConstantRate(demoRate), demoDuration
			},
		},
		{
			name: "demo keeps the flags given",
			args: []string{"-rate", "100", "-n", "20", "-o", "json"},
			want: func(c *config) {
				c.Targets, c.demo, c.Requests, c.Duration, c.format = nil, true, 20, demoDuration, "json"
				c.Rate = rateOf(t, "100", 0)
				c.Client.Connections = defaultMaxWorkers
			},
		},
		{name: "unknown flag", args: []string{"-x", u}, wantErr: "flag provided but not defined: -x"},
		{name: "missing flag value", args: []string{u, "-n"}, wantErr: "flag needs an argument: -n"},
		{name: "n not a number", args: []string{"-n", "ten", u}, wantErr: "invalid value"},
		{name: "negative n", args: []string{"-n", "-1", u}, wantErr: "-n must not be negative"},
		{name: "zero n", args: []string{"-n", "0", u}, wantErr: "-n must be at least 1"},
		{name: "zero workers", args: []string{"-c", "0", u}, wantErr: "-c must be at least 1"},
		{name: "zero max workers", args: []string{"-max-workers", "0", u}, wantErr: "-max-workers must be at least 1"},
		{name: "negative procs", args: []string{"-procs", "-1", u}, wantErr: "-procs must be at least 0"},
		{name: "negative rate", args: []string{"-rate", "-5", u}, wantErr: "not a non-negative number"},
		{name: "infinite rate", args: []string{"-rate", "+Inf", u}, wantErr: "not a non-negative number"},
		{name: "ramp without duration", args: []string{"-rate", "1:100", u}, wantErr: "a ramp needs a duration"},
		{name: "negative host rate", args: []string{"-host-rate", "-1", u}, wantErr: "-host-rate must be"},
		{name: "bad duration", args: []string{"-duration", "3", u}, wantErr: "invalid value"},
		{name: "negative duration", args: []string{"-duration", "-1s", u}, wantErr: "-duration must not be negative"},
		{name: "zero timeout", args: []string{"-timeout", "0s", u}, wantErr: "-timeout must be positive"},
		{name: "bad output", args: []string{"-o", "xml", u}, wantErr: `-o is the output type, text, json or csv (as hey's), got "xml"; the results file is -output FILE (as vegeta's)`},
		{name: "-o csv and -output", args: []string{"-o", "csv", "-output", "r.json", u}, wantErr: "give it or -output, not both"},
		{name: "vegeta rate without a duration", args: []string{"-rate", "50/x", u}, wantErr: `"x" is not a positive duration`},
		{name: "negative max connections", args: []string{"-max-connections", "-1", u}, wantErr: "-max-connections must not be negative"},
		{name: "placeholder unknown", args: []string{"http://127.0.0.1/{{nope}}"}, wantErr: "unknown placeholder {{nope}}"},
		{name: "both bodies", args: []string{"-d", "x", "-D", bodyFile, u}, wantErr: "-d and -D cannot be used together"},
		{name: "missing body file", args: []string{"-D", filepath.Join(t.TempDir(), "nope"), u}, wantErr: "no such file"},
		{name: "bad header", args: []string{"-H", "NoColon", u}, wantErr: `not of the form "Name: value"`},
		{name: "space in header name", args: []string{"-H", "Bad Name: x", u}, wantErr: `"Bad Name" is not a valid header name`},
		{name: "control character in header value", args: []string{"-H", "X-A: a\x00b", u}, wantErr: "a character HTTP does not allow"},
		{name: "bad method", args: []string{"-m", "GE T", u}, wantErr: "invalid method"},
		{name: "cert without key", args: []string{"-cert", "c.pem", u}, wantErr: "-cert and -key go together"},
		{name: "bad threshold", args: []string{"-threshold", "p98<1ms", u}, wantErr: `unknown metric "p98"`},
		{name: "bad threshold value", args: []string{"-threshold", "p99<fast", u}, wantErr: `"fast" is not a duration`},
		{name: "success threshold above 1", args: []string{"-threshold", "success>=99.9", u}, wantErr: "success is a ratio from 0 to 1, or a percentage (99.9%)"},
		{name: "too many users", args: []string{"-c", "1000000", u}, wantErr: "-c must be at most 100000, got 1000000"},
		{name: "too many workers", args: []string{"-rate", "10", "-max-workers", "10000000", u}, wantErr: "-max-workers must be at most 100000"},
		{name: "URLs and targets", args: []string{"-targets", targetsFile, u}, wantErr: "give URLs or -targets, not both"},
		{name: "missing targets file", args: []string{"-targets", filepath.Join(t.TempDir(), "nope")}, wantErr: "no such file"},
		{name: "ftp scheme", args: []string{"ftp://127.0.0.1/x"}, wantErr: "the scheme must be http or https"},
		{name: "no scheme", args: []string{"127.0.0.1:8080/get"}, wantErr: "invalid URL"},
		{name: "no host", args: []string{"http:///get"}, wantErr: "no host"},
		{name: "unparsable URL", args: []string{"http://[::1"}, wantErr: "invalid URL"},
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
				Config: loadgen.Config{
					Targets:    []*loadgen.Target{{Method: "GET", URL: u, Header: http.Header{}, Weight: 1}},
					Requests:   defaultRequests,
					Workers:    defaultWorkers,
					MaxWorkers: defaultMaxWorkers,
					Client: loadgen.ClientConfig{
						Connections: defaultWorkers, Redirects: defaultRedirects, Timeout: defaultTimeout,
					},
				},
				method:  http.MethodGet,
				header:  http.Header{},
				format:  "text",
				precise: true,
			}
			if tt.want != nil {
				tt.want(want)
			}
			assert.Equal(t, want, got)
			assert.Empty(t, usage.String())
		})
	}
}

// rateOf is the timetable text makes for a run of duration d (0: none given).
func rateOf(t *testing.T, text string, d time.Duration) *loadgen.Rate {
	t.Helper()
	r, err := loadgen.ParseRate(text)
	require.NoError(t, err)
	require.NoError(t, r.Fit(&d, d > 0))
	return r
}

func TestParseArgsHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var usage bytes.Buffer
			cfg, err := parseArgs([]string{arg}, &usage)
			require.ErrorIs(t, err, errHelp)
			assert.Nil(t, cfg)
			assert.Contains(t, usage.String(), "usage: httpfutures [flags] [URL...]")
			assert.Contains(t, usage.String(), "-rate")
		})
	}
}
