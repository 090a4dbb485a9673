package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
)

// A targeter makes the requests of an attack: request i is of the target at place i of a cycle
// in which each target appears as often as its weight, spread out (smooth weighted
// round-robin, as nginx's), so that equal weights are plain round-robin. Its zero value has no
// targets: use newTargeter. It is safe for concurrent use.
type targeter struct {
	targets []*Target
	tmpls   []*http.Request // one per target, with context.Background()
	cycle   []int32         // indexes into targets
}

func newTargeter(ts []*Target) (*targeter, error) {
	tg := &targeter{targets: ts}
	sum := 0
	for _, t := range ts {
		if t.Weight < 1 {
			return nil, fmt.Errorf("target %s %s: weight %d is not positive", t.Method, t.URL, t.Weight)
		}
		sum += t.Weight
		if sum > maxWeights {
			return nil, fmt.Errorf("the targets' weights add up to more than %d", maxWeights)
		}
		if t.tmpl == nil {
			if err := t.parseURL(); err != nil { // a Target made by hand
				return nil, err
			}
		}
		sample := t.URL
		if t.tmpl != nil {
			sample = t.tmpl.fill(0, func(uint64) uint64 { return 0 })
		}
		req, err := http.NewRequestWithContext(context.Background(), t.Method, sample, nil)
		if err != nil {
			return nil, err
		}
		req.Header = t.Header
		req.Host = t.Host
		if t.Body != nil {
			body := t.Body
			req.ContentLength = int64(len(body))
			req.GetBody = func() (io.ReadCloser, error) {
				if len(body) == 0 {
					return http.NoBody, nil
				}
				return io.NopCloser(bytes.NewReader(body)), nil
			}
		}
		tg.tmpls = append(tg.tmpls, req)
	}
	current := make([]int, len(ts))
	tg.cycle = make([]int32, 0, sum)
	for range sum {
		best := 0
		for k, t := range ts {
			current[k] += t.Weight
			if current[k] > current[best] {
				best = k
			}
		}
		current[best] -= sum
		tg.cycle = append(tg.cycle, int32(best))
	}
	return tg, nil
}

// target returns the target of request i.
func (tg *targeter) target(i uint64) (*Target, int32) {
	k := tg.cycle[i%uint64(len(tg.cycle))]
	return tg.targets[k], k
}

// request returns request i, with ctx as its context, its target and the URL it is sent to.
// The request is a shallow copy of the target's template: the header is shared and must not be
// changed, and the body is its own. A URL with placeholders is filled in and parsed for each
// request.
func (tg *targeter) request(i uint64, ctx context.Context) (*http.Request, *Target, string) {
	t, k := tg.target(i)
	req := tg.tmpls[k].WithContext(ctx)
	if req.GetBody != nil {
		req.Body, _ = req.GetBody() // never fails
	}
	if t.tmpl == nil {
		return req, t, t.URL
	}
	raw := t.tmpl.fill(i, rand.Uint64N)
	if u, err := url.Parse(raw); err == nil {
		req.URL = u
	}
	// A URL that does not parse once filled in (a placeholder in the port, say) is sent as
	// the template's first: its failure would hide the target's others.
	return req, t, raw
}
