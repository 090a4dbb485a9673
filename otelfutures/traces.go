package otelfutures

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/httpfutures/httpfutures"
)

// The traces: a span per Future, from its queueing to its resolution, the parent of the spans of
// its round trips.

// Names of the events on a Future's span, and of their attributes.
const (
	eventStarted  = "httpfutures.started"
	eventRetry    = "httpfutures.retry"
	eventRedirect = "httpfutures.redirect"
	eventHedge    = "httpfutures.hedge"

	keyQueueDuration = attribute.Key("httpfutures.queue.duration")
	keyAttempts      = attribute.Key("httpfutures.attempts")
	keyRetryWait     = attribute.Key("httpfutures.retry.wait")
)

// traces starts and ends the spans of Futures. The span of a Future starts at its first attempt
// (or at its end, if it never started) with the time it was queued as its start, and ends when
// it resolves: the events of one Future come from the worker that runs it, one after the other,
// so that the first attempt's start always comes before the attempt's context is asked for and
// before its end, while the submitter's Queued may come after them.
type traces struct {
	tracer trace.Tracer
	spans  sync.Map // *httpfutures.Future → trace.Span, while it runs; only spans that record, or that sampling dropped
}

func newTraces(t trace.Tracer) *traces { return &traces{tracer: t} }

// span returns the span of f, or nil if it has none.
func (t *traces) span(f *httpfutures.Future) trace.Span {
	if v, ok := t.spans.Load(f); ok {
		return v.(trace.Span)
	}
	return nil
}

// start starts the span of f, as a child of the span in its request's context, at the time f
// was queued.
func (t *traces) start(f *httpfutures.Future) trace.Span {
	req := requestOf(f)
	ctx := req.Context()
	m := method(req.Method)
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(m))
	if m != req.Method && req.Method != "" {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(req.Method))
	}
	if req.URL != nil && *req.URL != (url.URL{}) {
		attrs = append(attrs, semconv.URLFull(req.URL.Redacted()))
		attrs = appendServerAttrs(attrs, req.URL)
	}
	_, span := t.tracer.Start(ctx, "httpfutures "+m, trace.WithTimestamp(f.Timing().Queued),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return span
}

// started marks an attempt's start; the first starts f's span.
func (t *traces) started(f *httpfutures.Future, attempt int) {
	span := t.span(f)
	if span == nil {
		if attempt != 1 {
			return // its span is not kept: it does not record
		}
		span = t.start(f)
		if !kept(span, requestOf(f).Context()) {
			return
		}
		t.spans.Store(f, span)
	}
	span.AddEvent(eventStarted, trace.WithAttributes(keyAttempt.Int(attempt)))
}

// kept reports whether span, started under ctx, is to be kept: it is a span of its own (a no-op
// tracer returns the parent's), recording or dropped by sampling (which its children are to
// know).
func kept(span trace.Span, ctx context.Context) bool {
	sc := span.SpanContext()
	return sc.IsValid() && sc.SpanID() != trace.SpanContextFromContext(ctx).SpanID()
}

// context puts f's span in the context of its attempt, where the next RoundTripper finds it.
func (t *traces) context(ctx context.Context, f *httpfutures.Future) context.Context {
	if span := t.span(f); span != nil {
		return trace.ContextWithSpan(ctx, span)
	}
	return ctx
}

// retried marks an attempt of f that failed and is tried again.
func (t *traces) retried(f *httpfutures.Future, r httpfutures.Retry) {
	span := t.span(f)
	if span == nil || !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{keyAttempt.Int(r.Attempt), keyRetryWait.Float64(r.Wait.Seconds())}
	if r.StatusCode != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(r.StatusCode))
	}
	if r.Err != nil {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errorKind(r.Err)), semconv.ExceptionMessage(r.Err.Error()))
	}
	span.AddEvent(eventRetry, trace.WithAttributes(attrs...))
}

// redirected marks a redirect f follows to req.
func (t *traces) redirected(f *httpfutures.Future, req *http.Request) {
	span := t.span(f)
	if span == nil || !span.IsRecording() {
		return
	}
	span.AddEvent(eventRedirect, trace.WithAttributes(semconv.URLFull(req.URL.Redacted())))
}

// hedged marks a copy of f sent.
func (t *traces) hedged(f *httpfutures.Future) {
	if span := t.span(f); span != nil && span.IsRecording() {
		span.AddEvent(eventHedge)
	}
}

// resolved ends f's span, at the time it resolved, with its status from outcome o.
func (t *traces) resolved(f *httpfutures.Future, o httpfutures.Outcome) {
	var span trace.Span
	if v, ok := t.spans.LoadAndDelete(f); ok {
		span = v.(trace.Span)
	}
	tm := f.Timing()
	if span == nil {
		if !tm.Started.IsZero() {
			return // started, its span not kept
		}
		span = t.start(f) // it never started: its span is its time queued
	}
	if span.IsRecording() {
		resp, err := f.Result()
		attrs := []attribute.KeyValue{keyOutcome.String(o.String()), keyAttempts.Int(f.Attempts()),
			keyQueueDuration.Float64(queueDuration(tm).Seconds())}
		if resp != nil {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(resp.StatusCode))
		}
		if et := errorType(resp, err); et != "" {
			attrs = append(attrs, semconv.ErrorTypeKey.String(et))
		}
		span.SetAttributes(attrs...)
		switch {
		case err != nil:
			span.SetStatus(codes.Error, err.Error())
		case resp != nil && resp.StatusCode >= 400:
			span.SetStatus(codes.Error, "")
		}
	}
	span.End(trace.WithTimestamp(tm.Finished))
}

// queueDuration returns how long a request waited in its queue: until it started, or, if it
// never did, until it resolved.
func queueDuration(tm httpfutures.Timing) time.Duration {
	if tm.Started.IsZero() {
		return tm.Total()
	}
	return tm.QueueWait()
}
