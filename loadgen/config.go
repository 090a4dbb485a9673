package loadgen

import (
	"math"
	"net/http"
	"time"

	"github.com/httpfutures/httpfutures"
)

// Defaults of a Config's zero fields, as in hey where hey has the same setting.
const (
	DefaultWorkers    = 8
	DefaultMaxWorkers = 1024
	DefaultTimeout    = 20 * time.Second
)

// MaxConcurrency bounds Workers and MaxWorkers: the transport starts its workers with the run,
// a few kilobytes each, and a million of them would take gigabytes before the first request.
const MaxConcurrency = 100_000

// A Config describes an attack: what to send, how fast, for how long and over which
// connections. Its zero value, with Targets given, is the closed model of DefaultWorkers users
// that sends until its context ends.
type Config struct {
	// What is sent: request i is of Targets[k] in a cycle where each target comes as often as
	// its Weight.
	Targets []*Target

	// When the run ends: after Requests requests or Duration, whichever comes first; with
	// neither, when the context given to Run ends.
	Requests int
	Duration time.Duration

	// The model. With Rate nil, the closed model: Workers users (DefaultWorkers if 0), each
	// with one request in flight, as hey's workers. With Rate, the open model: requests fall
	// due on its timetable, at most MaxWorkers (DefaultMaxWorkers if 0) in flight at once.
	Rate       *Rate
	Workers    int
	MaxWorkers int

	// How the open model waits for each due time: on a fine timer (the zero value) or, with
	// CoarseTimer, on Go's timers alone, which costs less CPU and may send up to a millisecond
	// late.
	CoarseTimer bool

	// HostRate, if positive, limits each host to that many requests per second. HonorWait lets
	// a 429 or 503 with Retry-After pause its host, as a client of the library would.
	HostRate  float64
	HonorWait bool

	// Client is how connections are made. Transport, if not nil, makes the round trips
	// instead, and Client is then not used (a test's RoundTripper, say).
	Client    ClientConfig
	Transport http.RoundTripper

	// Options are added to the AsyncTransport's, after the attack's own (a shared Limiter,
	// say).
	Options []httpfutures.Option

	// Name is the attack's name in each Result.
	Name string

	// Results, if not nil, gets every result as it ends. OnResult, if not nil, is called with
	// each result in the goroutine that ended the request: it must not block, and the Result
	// is valid only during the call.
	Results  *ResultWriter
	OnResult func(*Result)
}

// A ClientConfig is how an attack makes its connections. Its zero value is HTTP/1.1 with
// HTTP/2 negotiated over TLS, keep-alive, one idle connection kept per worker, no redirect
// followed and a Timeout of DefaultTimeout.
type ClientConfig struct {
	// The protocols: H2C sends HTTP/2 without TLS, with prior knowledge; NoHTTP2 keeps to
	// HTTP/1.1 over TLS too.
	H2C     bool
	NoHTTP2 bool

	// TLS: Insecure skips the server's certificate check; CertFile and KeyFile, both or
	// neither, are a client certificate in PEM.
	Insecure bool
	CertFile string
	KeyFile  string

	// Connections: DisableKeepAlives makes one per request; Connections is how many idle ones
	// are kept per host (0: one per worker); MaxConnections, if positive, caps the
	// connections per host, dialing, in use and idle, as vegeta's -max-connections.
	DisableKeepAlives bool
	Connections       int
	MaxConnections    int

	// UnixSocket, if not empty, is the path of a Unix socket that every connection is made
	// to, whatever the URL's host (which is still sent as the Host).
	UnixSocket string

	// Redirects is how many redirects a request follows; 0: none, the 3xx is the result.
	Redirects int

	// Timeout bounds each request from when it is sent to the end of its response body (0:
	// DefaultTimeout). HeaderTimeout, if positive, bounds the dial, the TLS handshake and the
	// wait for the response header apart (0: Timeout alone).
	Timeout       time.Duration
	HeaderTimeout time.Duration
}

// timeout is c.Timeout, or its default.
func (c ClientConfig) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// headerTimeout bounds the dial, the TLS handshake and the response header.
func (c ClientConfig) headerTimeout() time.Duration {
	if c.HeaderTimeout > 0 {
		return min(c.HeaderTimeout, c.timeout())
	}
	return c.timeout()
}

func isNaNOrInf(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
