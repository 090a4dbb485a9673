package httpfutures

import (
	"net/http"

	"github.com/dunglas/httpsfv"
)

// parseConcurrencyPolicy returns the quota of the first policy of hdr's RateLimit-Policy field
// whose quota unit is "concurrent-requests": how many requests the server serves at once. ok is
// false if there is none, or the field is malformed.
func parseConcurrencyPolicy(hdr http.Header) (limit int, ok bool) {
	values := hdr.Values("RateLimit-Policy")
	if len(values) == 0 {
		return 0, false
	}
	list, err := httpsfv.UnmarshalList(values)
	if err != nil {
		return 0, false
	}
	for _, m := range list {
		item, isItem := m.(httpsfv.Item)
		if !isItem {
			continue
		}
		if unit, _ := item.Params.Get("qu"); unit != "concurrent-requests" {
			continue
		}
		q, found := item.Params.Get("q")
		if n, isInt := q.(int64); found && isInt && n > 0 {
			return int(min(n, 1<<31-1)), true
		}
	}
	return 0, false
}
