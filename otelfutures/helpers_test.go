package otelfutures_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/httpfutures/httpfutures"
	"github.com/httpfutures/httpfutures/otelfutures"
)

// TestMain fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server answers each path as its name says. /flaky fails once with a 503 for each value of its
// query; /gate waits for release.
type server struct {
	*httptest.Server
	flaky   sync.Map // query → *atomic.Int32
	arrived chan string
	release chan struct{}
	once    sync.Once
}

func newServer(t *testing.T) *server {
	s := &server{arrived: make(chan string, 64), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky":
			n, _ := s.flaky.LoadOrStore(r.URL.RawQuery, new(atomic.Int32))
			if n.(*atomic.Int32).Add(1) == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		case "/missing":
			http.NotFound(w, r)
			return
		case "/broken":
			w.WriteHeader(http.StatusInternalServerError)
			return
		case "/slow":
			time.Sleep(100 * time.Millisecond)
		case "/pause":
			w.Header().Set("RateLimit", `"default";r=0;t=30`)
		case "/gate":
			s.arrived <- r.URL.RawQuery
			select {
			case <-s.release:
			case <-r.Context().Done():
			}
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	t.Cleanup(s.open)
	return s
}

// open lets the requests held at /gate go, and those to come.
func (s *server) open() { s.once.Do(func() { close(s.release) }) }

// meter returns a MeterProvider with a reader that the test collects from.
func meter(t *testing.T) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	return mp, r
}

// newTelemetry returns a Telemetry closed when the test ends.
func newTelemetry(t *testing.T, opts ...otelfutures.Option) *otelfutures.Telemetry {
	tel, err := otelfutures.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tel.Close()) })
	return tel
}

func newSession(t *testing.T, opts ...httpfutures.Option) *httpfutures.Session {
	s := httpfutures.NewSession(opts...)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// points are the data points of one metric, by their attributes ("k=v,k=v" sorted; "" for
// none): a counter's or gauge's value, a histogram's count.
type points map[string]float64

// sum returns the total of the points.
func (p points) sum() float64 {
	total := 0.0
	for _, v := range p {
		total += v
	}
	return total
}

// collect reads the metrics, by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]points {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]points{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			p := points{}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					p[attrs(dp.Attributes)] = float64(dp.Value)
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					p[attrs(dp.Attributes)] = float64(dp.Value)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					p[attrs(dp.Attributes)] = float64(dp.Count)
				}
			default:
				t.Fatalf("%s: unexpected %T", m.Name, m.Data)
			}
			out[m.Name] = p
		}
	}
	return out
}

func attrs(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.String())
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// hostOf returns the server.address and server.port attributes of ts, as "k=v" pairs.
func hostOf(ts *httptest.Server) string {
	addr := strings.TrimPrefix(ts.URL, "http://")
	i := strings.LastIndex(addr, ":")
	return "server.address=" + addr[:i] + ",server.port=" + addr[i+1:]
}
