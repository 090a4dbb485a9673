package httpfutures

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseConcurrencyPolicy(t *testing.T) {
	tests := []struct {
		name   string
		fields []string
		limit  int
		ok     bool
	}{
		{"none", nil, 0, false},
		{"concurrency", []string{`"conc";q=10;qu="concurrent-requests"`}, 10, true},
		{"after a rate policy", []string{`"burst";q=100;w=60`, `"conc";q=4;qu="concurrent-requests"`}, 4, true},
		{"in one field", []string{`"burst";q=100;w=60, "conc";q=4;qu="concurrent-requests"`}, 4, true},
		{"requests, not concurrency", []string{`"burst";q=100;w=60;qu="requests"`}, 0, false},
		{"zero quota", []string{`"conc";q=0;qu="concurrent-requests"`}, 0, false},
		{"quota not an integer", []string{`"conc";q=1.5;qu="concurrent-requests"`}, 0, false},
		{"malformed", []string{`"conc";q=4;qu="concurrent-requests`}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, f := range tt.fields {
				h.Add("RateLimit-Policy", f)
			}
			limit, ok := parseConcurrencyPolicy(h)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.limit, limit)
		})
	}
}
