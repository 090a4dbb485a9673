package otelfutures

import (
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/httpfutures/httpfutures"
)

// The hosts with series of their own (WithHosts): the first ones seen, up to a cap.

// A hostSeries is a host with series of its own: its attributes, and the attributes of its
// measurements.
type hostSeries struct {
	key  string               // the host as HostStats names it: host and port, the default port left out
	kv   []attribute.KeyValue // server.address and server.port
	set  attribute.Set        // kv as a set, for its gauges
	opts seriesOpts           // for its measurements that name no more than an outcome
}

// A hostSet holds the hosts with series of their own: the first max hosts seen, for good, as
// a series once reported stays in the MeterProvider. A nil *hostSet holds none.
type hostSet struct {
	max int

	// mu serializes additions; reads take no lock.
	mu    sync.Mutex
	hosts sync.Map     // key → *hostSeries
	n     atomic.Int64 // len(hosts)
}

func newHostSet(max int) *hostSet { return &hostSet{max: max} }

// byKey returns the series of the host named key, as HostStats names it, if it has some; it adds
// none.
func (s *hostSet) byKey(key string) *hostSeries {
	if s == nil {
		return nil
	}
	if v, ok := s.hosts.Load(key); ok {
		return v.(*hostSeries)
	}
	return nil
}

// of returns the series of the host of u, which it adds if there is room; nil if there is none.
func (s *hostSet) of(u *url.URL) *hostSeries {
	if s == nil || u == nil || u.Host == "" {
		return nil
	}
	key := httpfutures.HostOf(u)
	if v, ok := s.hosts.Load(key); ok {
		return v.(*hostSeries)
	}
	if s.n.Load() >= int64(s.max) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.hosts.Load(key); ok {
		return v.(*hostSeries)
	}
	if s.n.Load() >= int64(s.max) {
		return nil
	}
	h := newHostSeries(key, u)
	s.hosts.Store(key, h)
	s.n.Add(1)
	return h
}

// all returns the hosts with series, in no order.
func (s *hostSet) all() []*hostSeries {
	if s == nil {
		return nil
	}
	var out []*hostSeries
	s.hosts.Range(func(_, v any) bool {
		out = append(out, v.(*hostSeries))
		return true
	})
	return out
}

func newHostSeries(key string, u *url.URL) *hostSeries {
	h := &hostSeries{key: key, kv: appendServerAttrs(nil, u)}
	h.set = attribute.NewSet(h.kv...)
	h.opts = newSeriesOpts(h)
	return h
}

// appendServerAttrs appends server.address and server.port of u to kv, the port its scheme's
// default if it names none; nothing if u names no host.
func appendServerAttrs(kv []attribute.KeyValue, u *url.URL) []attribute.KeyValue {
	if u == nil || u.Host == "" {
		return kv
	}
	kv = append(kv, semconv.ServerAddress(strings.ToLower(u.Hostname())))
	port := 0
	switch p := u.Port(); {
	case p != "":
		port, _ = strconv.Atoi(p)
	case u.Scheme == "https":
		port = 443
	case u.Scheme == "http":
		port = 80
	}
	if port > 0 {
		kv = append(kv, semconv.ServerPort(port))
	}
	return kv
}
