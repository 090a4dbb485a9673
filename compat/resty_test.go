package compat_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// resty v2, with an AsyncTransport set as its transport.

// JSON decoded by resty, many requests at once from many goroutines: the host limit holds.
func TestRestyJSON(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil, httpfutures.WithHostLimit(3))
	client := resty.New().SetTransport(tr)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			var v item
			resp, err := client.R().SetResult(&v).Get(fmt.Sprintf("%s/items/%d", a.URL, i))
			switch {
			case err != nil:
				errs <- err
			case resp.StatusCode() != http.StatusOK || v != (item{ID: i, Name: fmt.Sprintf("item %d", i)}):
				errs <- fmt.Errorf("item %d: %s, %+v", i, resp.Status(), v)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.LessOrEqual(t, a.maxConcurrent(), 3, "WithHostLimit(3) holds under resty")
	assert.Equal(t, uint64(40), tr.Stats().Completed)
}

// A response whose body resty is told not to read, and the caller drops unclosed: the
// transport's slots come back when the bodies are collected, so the requests after them go.
func TestRestyBodyLeftUnclosed(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil, httpfutures.WithWorkers(2))
	client := resty.New().SetTransport(tr).SetDoNotParseResponse(true)
	done := make(chan error, 1)
	go func() {
		for i := range 8 {
			resp, err := client.R().Get(fmt.Sprintf("%s/items/%d", a.URL, i))
			if err != nil {
				done <- err
				return
			}
			_ = resp.RawBody() // dropped, neither read nor closed
		}
		done <- nil
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("8 requests whose bodies resty's caller dropped, on 2 workers, still wait after 30 s: %+v", tr.Stats())
	}
	assert.GreaterOrEqual(t, tr.Stats().LeakedBodies, uint64(6), "the bodies that held the slots were collected")
}

// resty's own retries, each attempt scheduled by the transport.
func TestRestyRetries(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil)
	client := resty.New().SetTransport(tr).
		SetRetryCount(3).SetRetryWaitTime(time.Millisecond).SetRetryMaxWaitTime(5 * time.Millisecond).
		AddRetryCondition(func(r *resty.Response, err error) bool {
			return err != nil || r.StatusCode() == http.StatusServiceUnavailable
		})
	var v item
	resp, err := client.R().SetResult(&v).Get(a.URL + "/flaky/2")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode())
	assert.Equal(t, item{ID: 2, Name: "recovered"}, v)
	assert.Equal(t, 3, a.count("/flaky/2"), "two 503s, then the answer")
	assert.Equal(t, uint64(3), tr.Stats().Completed, "each attempt a round trip of the transport")
}

// resty's redirect policy follows a redirect through the transport.
func TestRestyRedirects(t *testing.T) {
	a := newAPI(t, false)
	tr := newTransport(t, nil)
	client := resty.New().SetTransport(tr).SetRedirectPolicy(resty.FlexibleRedirectPolicy(3))
	var v item
	resp, err := client.R().SetResult(&v).Get(a.URL + "/moved/5")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode())
	assert.Equal(t, item{ID: 5, Name: "item 5"}, v)
	assert.Equal(t, 1, a.count("/moved/5"))
	assert.Equal(t, 1, a.count("/items/5"))
}

// TLS is configured on the transport under the AsyncTransport: resty's own TLS setters need an
// *http.Transport, and, given an AsyncTransport, log an error and change nothing.
func TestRestyTLS(t *testing.T) {
	a := newAPI(t, true)

	t.Run("configured on the transport underneath", func(t *testing.T) {
		tr := newTransport(t, a.trusting())
		var v item
		resp, err := resty.New().SetTransport(tr).R().SetResult(&v).Get(a.URL + "/items/9")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode())
		assert.Equal(t, "HTTP/1.1", resp.RawResponse.Proto)
		assert.Equal(t, item{ID: 9, Name: "item 9"}, v)
	})

	t.Run("resty's setter on the AsyncTransport does nothing", func(t *testing.T) {
		tr := newTransport(t, nil)
		log := &logs{}
		client := resty.New().SetLogger(log).SetTransport(tr).SetTLSClientConfig(a.trusting().TLSClientConfig)
		_, err := client.R().Get(a.URL + "/items/9")
		require.Error(t, err, "the certificate was never trusted")
		assert.Contains(t, err.Error(), "certificate")
		assert.Contains(t, log.String(), "not an *http.Transport", "resty says why")
	})
}

// logs is a resty.Logger that keeps what it is told.
type logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logs) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", v...)
}

func (l *logs) Errorf(format string, v ...any) { l.add(format, v...) }
func (l *logs) Warnf(format string, v ...any)  { l.add(format, v...) }
func (l *logs) Debugf(format string, v ...any) { l.add(format, v...) }

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
