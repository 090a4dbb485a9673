package httpfutures

import (
	"net/http"
	"time"
)

// QuotaPolicy is a quotaPolicy with its fields exported, for the external tests.
type QuotaPolicy struct {
	Name   string
	Quota  int64
	Unit   string
	Window time.Duration
	Key    []byte
}

// ParseRateLimitPolicy is parseRateLimitPolicy with its items as QuotaPolicy values.
func ParseRateLimitPolicy(hdr http.Header) []QuotaPolicy {
	var out []QuotaPolicy
	for _, p := range parseRateLimitPolicy(hdr) {
		out = append(out, QuotaPolicy{Name: p.name, Quota: p.quota, Unit: p.unit, Window: p.window, Key: p.key})
	}
	return out
}

var ParseConcurrencyPolicy = parseConcurrencyPolicy
