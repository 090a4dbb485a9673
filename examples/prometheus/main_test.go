package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// values returns a family's values by the value of one label ("" for a series without it).
func values(f *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		out[key] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
}

// The example serves its metrics while its load runs: retries, a paused host and an adaptive
// limit falling show in them, scraped as Prometheus does; it stops when its time is up.
func TestRun(t *testing.T) {
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(context.Background(), []string{"-addr", "127.0.0.1:0", "-duration", "4s"}, &stdout, &stderr)
	}()
	var url string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`serving metrics at (\S+)`).FindStringSubmatch(stdout.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond)

	var fams map[string]*dto.MetricFamily
	seen := func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		if fams, err = p.TextToMetricFamilies(resp.Body); err != nil {
			return false
		}
		retries := values(fams["httpfutures_retries_total"], "http_response_status_code")
		limits := values(fams["httpfutures_host_limit"], "server_port")
		lowest := 8.0
		for _, l := range limits {
			lowest = min(lowest, l)
		}
		return retries["503"] > 0 && retries["429"] > 0 && lowest < 8 && len(limits) == 4
	}
	require.Eventually(t, seen, 3500*time.Millisecond, 20*time.Millisecond,
		"a 503 retried, a 429 pausing its host, a limit fallen: %v", fams)
	for _, name := range []string{"http_client_request_duration_seconds", "httpfutures_queue_duration_seconds",
		"httpfutures_queue_size", "http_client_active_requests", "httpfutures_requests_total", "httpfutures_host_paused"} {
		assert.Contains(t, fams, name)
	}
	assert.Positive(t, values(fams["httpfutures_requests_total"], "httpfutures_outcome")["completed"])

	require.Equal(t, 0, <-done, stderr.String())
	assert.Contains(t, stderr.String(), `msg="httpfutures: host paused"`, "the Session logs its hosts' events")
	_, err := http.Get(url)
	assert.Error(t, err, "the endpoint is gone with the run")
}

func TestRunBadArguments(t *testing.T) {
	for _, args := range [][]string{{"-rate", "0"}, {"-duration", "-1s"}, {"-addr", "127.0.0.1:notaport"}, {"-nosuchflag"}} {
		var stdout, stderr syncBuffer
		assert.Equal(t, 2, run(context.Background(), args, &stdout, &stderr), "%q", args)
		assert.NotEmpty(t, stderr.String(), "%q", args)
	}
}
