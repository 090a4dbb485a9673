package otelfutures_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/otelfutures"
)

// traced is a TracerProvider recording the spans ended, a Telemetry tracing to it, a server that
// notes the trace context of each request, and a Session on otelhttp's transport.
type traced struct {
	tp  *sdktrace.TracerProvider
	rec *tracetest.SpanRecorder
	tel *otelfutures.Telemetry
	ts  *server

	mu   sync.Mutex
	seen map[string][]trace.SpanContext // path → the trace context each request carried
}

func newTraced(t *testing.T, sampler sdktrace.Sampler) *traced {
	x := &traced{rec: tracetest.NewSpanRecorder(), seen: map[string][]trace.SpanContext{}}
	x.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(x.rec), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { require.NoError(t, x.tp.Shutdown(context.Background())) })
	x.tel = newTelemetry(t, otelfutures.WithTracerProvider(x.tp), otelfutures.WithMeterProvider(metricnoop.NewMeterProvider()))
	x.ts = newServer(t)
	inner := x.ts.Config.Handler
	x.ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		x.mu.Lock()
		x.seen[r.URL.Path] = append(x.seen[r.URL.Path], sc)
		x.mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	return x
}

// session returns a Session whose next RoundTripper is otelhttp's, opts added.
func (x *traced) session(t *testing.T, opts ...httpfutures.Option) *httpfutures.Session {
	next := otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(x.tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), otelhttp.WithPropagators(propagation.TraceContext{}))
	return newSession(t, append([]httpfutures.Option{x.tel.Option(), httpfutures.WithClient(&http.Client{Transport: next})}, opts...)...)
}

// caller starts the caller's span.
func (x *traced) caller() (context.Context, trace.Span) {
	return x.tp.Tracer("caller").Start(context.Background(), "caller")
}

// ours returns the spans of Futures; clients, otelhttp's spans whose parent is span.
func (x *traced) ours() []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range x.rec.Ended() {
		if s.InstrumentationScope().Name == otelfutures.ScopeName {
			out = append(out, s)
		}
	}
	return out
}

func (x *traced) clients(of sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range x.rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.Parent().SpanID() == of.SpanContext().SpanID() {
			out = append(out, s)
		}
	}
	return out
}

func (x *traced) seenAt(path string) []trace.SpanContext {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.seen[path]
}

func do(t *testing.T, s *httpfutures.Session, ctx context.Context, url string) *httpfutures.Future {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	return s.Do(req)
}

// events returns the names of a span's events, with the attempt of each that has one.
func events(s sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, e := range s.Events() {
		name := e.Name
		for _, a := range e.Attributes {
			if a.Key == "httpfutures.attempt" {
				name += " " + a.Value.String()
			}
		}
		out = append(out, name)
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) attribute.Value {
	for _, a := range s.Attributes() {
		if a.Key == key {
			return a.Value
		}
	}
	return attribute.Value{}
}

// A Future's span is the child of the caller's, from the time it was queued to the time it
// resolved, with an event per attempt and retry; each attempt's otelhttp span is its child, and
// carries the trace to the server.
func TestTraceSpanPerFuture(t *testing.T) {
	x := newTraced(t, sdktrace.AlwaysSample())
	s := x.session(t, retryFast)
	ctx, caller := x.caller()
	f := do(t, s, ctx, x.ts.URL+"/flaky?span")
	resp, err := f.Result()
	require.NoError(t, err)
	resp.Body.Close()
	caller.End()
	require.NoError(t, s.Close())

	ours := x.ours()
	require.Len(t, ours, 1)
	span := ours[0]
	assert.Equal(t, "httpfutures GET", span.Name())
	assert.Equal(t, trace.SpanKindInternal, span.SpanKind())
	assert.Equal(t, caller.SpanContext().SpanID(), span.Parent().SpanID(), "the caller's span is its parent")
	assert.Equal(t, caller.SpanContext().TraceID(), span.SpanContext().TraceID())
	tm := f.Timing()
	assert.True(t, tm.Queued.Equal(span.StartTime()), "it starts when the request was queued")
	assert.True(t, tm.Finished.Equal(span.EndTime()), "it ends when the Future resolved")
	assert.Equal(t, []string{"httpfutures.started 1", "httpfutures.retry 1", "httpfutures.started 2"}, events(span))
	assert.Equal(t, "completed", attr(span, "httpfutures.outcome").AsString())
	assert.Equal(t, int64(2), attr(span, "httpfutures.attempts").AsInt64())
	assert.Equal(t, int64(200), attr(span, "http.response.status_code").AsInt64())
	assert.Equal(t, x.ts.URL+"/flaky?span", attr(span, "url.full").AsString())
	assert.GreaterOrEqual(t, attr(span, "httpfutures.queue.duration").AsFloat64(), 0.0)
	assert.Equal(t, codes.Unset, span.Status().Code)
	retry := span.Events()[1]
	assert.Contains(t, retry.Attributes, attribute.Int("http.response.status_code", 503))

	clients := x.clients(span)
	require.Len(t, clients, 2, "an otelhttp span per attempt, children of the Future's")
	seen := x.seenAt("/flaky")
	require.Len(t, seen, 2)
	for i, sc := range seen {
		assert.Equal(t, caller.SpanContext().TraceID(), sc.TraceID(), "the server sees the caller's trace")
		assert.Contains(t, []trace.SpanID{clients[0].SpanContext().SpanID(), clients[1].SpanContext().SpanID()}, sc.SpanID(),
			"attempt %d came from an otelhttp span", i+1)
		assert.True(t, sc.IsSampled())
	}
	assert.Zero(t, otelfutures.Pending(x.tel), "no span is kept once its Future resolved")
}

// A redirect and a hedge are events of the Future's span, and their round trips its children.
func TestTraceRedirectsAndHedges(t *testing.T) {
	t.Run("redirect", func(t *testing.T) {
		x := newTraced(t, sdktrace.AlwaysSample())
		s := x.session(t)
		resp, err := do(t, s, context.Background(), x.ts.URL+"/moved").Result()
		require.NoError(t, err)
		resp.Body.Close()
		require.NoError(t, s.Close())
		ours := x.ours()
		require.Len(t, ours, 1)
		assert.False(t, ours[0].Parent().IsValid(), "no caller's span: a root")
		assert.Equal(t, []string{"httpfutures.started 1", "httpfutures.redirect"}, events(ours[0]))
		assert.Contains(t, ours[0].Events()[1].Attributes, attribute.String("url.full", x.ts.URL+"/ok"))
		assert.Len(t, x.clients(ours[0]), 2, "the hop to /moved and the one to /ok")
	})
	t.Run("hedge", func(t *testing.T) {
		x := newTraced(t, sdktrace.AlwaysSample())
		s := x.session(t, httpfutures.WithHedge(10*time.Millisecond, 1))
		resp, err := do(t, s, context.Background(), x.ts.URL+"/slow").Result()
		require.NoError(t, err)
		resp.Body.Close()
		require.NoError(t, s.Close())
		ours := x.ours()
		require.Len(t, ours, 1, "a copy has no span of its own")
		assert.Equal(t, []string{"httpfutures.started 1", "httpfutures.hedge"}, events(ours[0]))
		assert.Len(t, x.clients(ours[0]), 2, "the round trip and its copy")
		assert.Zero(t, otelfutures.Pending(x.tel))
	})
}

// A request that never started has a span all the same, its time queued, with the outcome as
// its status; a failed one has its error.
func TestTraceOutcomes(t *testing.T) {
	x := newTraced(t, sdktrace.AlwaysSample())
	tr := httpfutures.NewTransport(nil, x.tel.Option(), httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(1))
	defer tr.Close()
	get := func(url string) *httpfutures.Future {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		return tr.StartRoundTrip(req)
	}
	running := get(x.ts.URL + "/gate")
	<-x.ts.arrived
	queued := get(x.ts.URL + "/queued")
	shed := get(x.ts.URL + "/shed")
	time.Sleep(10 * time.Millisecond) // a time queued to see
	queued.Cancel()
	x.ts.open()
	_, err := running.Result()
	require.NoError(t, err)
	_, err = get("http://127.0.0.1:1/refused").Result()
	require.Error(t, err)
	require.NoError(t, tr.Close())

	byURL := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range x.ours() {
		byURL[attr(s, "url.full").AsString()] = s
	}
	require.Len(t, byURL, 4)
	for _, tt := range []struct {
		url, outcome, errType string
		code                  codes.Code
		started               bool
		f                     *httpfutures.Future
	}{
		{x.ts.URL + "/gate", "completed", "", codes.Unset, true, running},
		{x.ts.URL + "/queued", "canceled", "canceled", codes.Error, false, queued},
		{x.ts.URL + "/shed", "shed", "queue_full", codes.Error, false, shed},
		{"http://127.0.0.1:1/refused", "failed", "connection_refused", codes.Error, true, nil},
	} {
		span := byURL[tt.url]
		require.NotNil(t, span, tt.url)
		assert.Equal(t, tt.outcome, attr(span, "httpfutures.outcome").AsString(), tt.url)
		assert.Equal(t, tt.errType, attr(span, "error.type").AsString(), tt.url)
		assert.Equal(t, tt.code, span.Status().Code, tt.url)
		assert.Equal(t, tt.started, len(span.Events()) > 0, tt.url)
		if tt.f != nil {
			assert.True(t, tt.f.Timing().Queued.Equal(span.StartTime()), tt.url)
			assert.True(t, tt.f.Timing().Finished.Equal(span.EndTime()), tt.url)
		}
	}
	assert.GreaterOrEqual(t, attr(byURL[x.ts.URL+"/queued"], "httpfutures.queue.duration").AsFloat64(), 0.01,
		"canceled in its queue: its time queued is all it had")
}

// A span that sampling drops records nothing, but is still the parent of the round trips: they
// are dropped too, and the server is told so.
func TestTraceNotSampled(t *testing.T) {
	x := newTraced(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	s := x.session(t)
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent) // a caller's trace, not sampled
	resp, err := do(t, s, ctx, x.ts.URL+"/ok").Result()
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, s.Close())
	assert.Empty(t, x.rec.Ended())
	seen := x.seenAt("/ok")
	require.Len(t, seen, 1)
	assert.Equal(t, parent.TraceID(), seen[0].TraceID())
	assert.False(t, seen[0].IsSampled())
	assert.Zero(t, otelfutures.Pending(x.tel))
}

// With the global TracerProvider left unset, no span is made nor kept, and requests go on.
func TestTraceGlobalUnset(t *testing.T) {
	tel := newTelemetry(t, otelfutures.WithMeterProvider(metricnoop.NewMeterProvider()))
	s := newSession(t, tel.Option())
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ts.Close()
	for range 10 {
		resp, err := s.Get(ts.URL).Result()
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.NoError(t, s.Close())
	assert.Zero(t, otelfutures.Pending(tel))
}
