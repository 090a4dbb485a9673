package otelfutures

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/httpfutures/httpfutures"
)

// The attributes of measurements: a small set of values each, made once and kept.

// An attrKey names the attributes of a measurement. Each field is a bounded set of values:
// methods outside the standard ones are "_OTHER", statuses are numbers under 1000, error types
// are named by kind, hosts are those with series of their own (nil for the others).
type attrKey struct {
	host    *hostSeries
	method  string              // http.request.method; empty for none
	status  int                 // http.response.status_code; 0 for none
	errType string              // error.type; empty for none
	outcome httpfutures.Outcome // httpfutures.outcome, plus one; 0 for none
}

// attrOpts are the options that give a measurement the attributes its key names.
type attrOpts struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

// An attrCache keeps the options of each attrKey seen, made once: a measurement then costs a
// lookup, no allocation. Its zero value is empty and ready.
type attrCache struct{ m sync.Map } // attrKey → *attrOpts

func (c *attrCache) get(k attrKey) *attrOpts {
	if v, ok := c.m.Load(k); ok {
		return v.(*attrOpts)
	}
	v, _ := c.m.LoadOrStore(k, newAttrOpts(k))
	return v.(*attrOpts)
}

// seriesOpts are the options of the measurements that name a host (or none) and at most an
// outcome: made once with the host, they cost no lookup.
type seriesOpts struct {
	plain    *attrOpts
	outcomes [4]*attrOpts // by Outcome
}

func newSeriesOpts(h *hostSeries) seriesOpts {
	s := seriesOpts{plain: newAttrOpts(attrKey{host: h})}
	for o := range s.outcomes {
		s.outcomes[o] = newAttrOpts(attrKey{host: h, outcome: httpfutures.Outcome(o) + 1})
	}
	return s
}

// outcome returns the options of a measurement of outcome o, made once for the outcomes known.
func (s *seriesOpts) outcome(c *attrCache, h *hostSeries, o httpfutures.Outcome) *attrOpts {
	if int(o) < len(s.outcomes) {
		return s.outcomes[o]
	}
	return c.get(attrKey{host: h, outcome: o + 1})
}

func newAttrOpts(k attrKey) *attrOpts {
	opt := metric.WithAttributeSet(k.set())
	return &attrOpts{add: []metric.AddOption{opt}, record: []metric.RecordOption{opt}}
}

// set returns the attributes k names.
func (k attrKey) set() attribute.Set {
	kv := make([]attribute.KeyValue, 0, 6)
	if k.host != nil {
		kv = append(kv, k.host.kv...)
	}
	if k.method != "" {
		kv = append(kv, semconv.HTTPRequestMethodKey.String(k.method))
	}
	if k.status != 0 {
		kv = append(kv, semconv.HTTPResponseStatusCode(k.status))
	}
	if k.errType != "" {
		kv = append(kv, semconv.ErrorTypeKey.String(k.errType))
	}
	if k.outcome != 0 {
		kv = append(kv, keyOutcome.String((k.outcome - 1).String()))
	}
	return attribute.NewSet(kv...)
}

// noRequest stands for the request of a Future made of none (StartRoundTrip(nil)). It is never
// modified.
var noRequest = &http.Request{Method: http.MethodGet, URL: &url.URL{}}

// requestOf returns the request of f, or noRequest.
func requestOf(f *httpfutures.Future) *http.Request {
	if req := f.Request(); req != nil {
		return req
	}
	return noRequest
}

// method returns m as http.request.method has it: one of the standard methods, or "_OTHER".
func method(m string) string {
	switch m {
	case "":
		return http.MethodGet
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace, "QUERY":
		return m
	}
	return "_OTHER"
}

// errorType returns the error.type of a request that ended with resp or err: the kind of err, or
// the status of a response that is an error (400 and above) as a string; empty for neither.
func errorType(resp *http.Response, err error) string {
	switch {
	case err != nil:
		return errorKind(err)
	case resp != nil && resp.StatusCode >= 400:
		return strconv.Itoa(resp.StatusCode)
	}
	return ""
}

// retryErrorType returns the error.type of the attempt that r tells failed; empty if it had a
// response, whose status tells why it failed.
func retryErrorType(r httpfutures.Retry) string {
	if r.Err == nil {
		return ""
	}
	return errorKind(r.Err)
}

// errorKind names the kind of err, one of a bounded set: the package's sentinels and the common
// network causes by name (the cause first: a request that failed on a refused connection after
// its retries is "connection_refused"), other errors by their type, as semconv.ErrorType does.
func errorKind(err error) string {
	var limiter *httpfutures.LimiterError
	var panicked *httpfutures.PanicError
	var dns *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, httpfutures.ErrQueueFull):
		return "queue_full"
	case errors.Is(err, httpfutures.ErrClosed):
		return "closed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &limiter):
		return "limiter"
	case errors.As(err, &panicked):
		return "panic"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "connection_reset"
	case errors.As(err, &dns):
		return "dns"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, httpfutures.ErrRetryBudget):
		return "retry_budget"
	case errors.Is(err, httpfutures.ErrRetriesExhausted):
		return "retries_exhausted"
	case errors.Is(err, httpfutures.ErrNotReplayable):
		return "not_replayable"
	case errors.Is(err, httpfutures.ErrBodyTooLarge):
		return "body_too_large"
	case errors.Is(err, httpfutures.ErrInvalidRequest):
		return "invalid_request"
	}
	for {
		var u *url.Error
		var op *net.OpError
		switch {
		case errors.As(err, &u):
			err = u.Err
			continue
		case errors.As(err, &op) && op.Err != nil:
			err = op.Err
			continue
		}
		return semconv.ErrorType(err).Value.AsString()
	}
}
