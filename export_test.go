package httpfutures

import (
	"time"
	"unsafe"
)

// Unexported functions that the external tests call directly.
var (
	ParseRetryAfter = parseRetryAfter
	ParseRateLimit  = parseRateLimit
)

// ReserveSince is the reservation a Scheduler makes: a token at now for a request that has waited
// since since, with no time lost for want of a slot. The public Reserve is ReserveSince(now, now).
func (l *RateLimiter) ReserveSince(now, since time.Time) time.Time { return l.reserve(now, since, 0) }

var FutureSize = unsafe.Sizeof(Future{})

var HostSize = unsafe.Sizeof(host{})
