package httpfutures_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// cacheLine is the size of a cache line on the machines the layout is tuned for (amd64, arm64).
const cacheLine = 64

// The Future, made for every request, stays in the allocator's 192-byte size class, whose objects
// start on a cache line; what a worker touches as it takes one is in the first line.
func TestFutureSize(t *testing.T) {
	assert.LessOrEqual(t, httpfutures.FutureSize, uintptr(192))
	assert.LessOrEqual(t, httpfutures.FutureTakenEnd, uintptr(64))
}

// What every request writes under the Scheduler's lock, and in its host, lies in few cache
// lines. Each request hands the lock between cores at least twice (the goroutine that queues it,
// the worker that takes it), and every line written moves with it. In two lines,
// BenchmarkOverhead runs 3–6% faster than it did with the same fields in five. The lines are
// counted where the allocator places the structs.
func TestHotFieldsShareCacheLines(t *testing.T) {
	schedAt, hostAt := httpfutures.LineOffsets(16)
	require.GreaterOrEqual(t, schedAt, 0, "Schedulers start at different places in a line")
	require.GreaterOrEqual(t, hostAt, 0, "hosts start at different places in a line")
	for _, c := range []struct {
		name     string
		at       int // where the struct starts in its first line
		fields   []httpfutures.FieldSpan
		maxLines int
	}{
		{"Scheduler, written", schedAt, httpfutures.SchedulerWrittenPerRequest(), 2},
		{"Scheduler, written, and when workers wait", schedAt, append(httpfutures.SchedulerWrittenPerRequest(), httpfutures.SchedulerWrittenOnWaits()...), 3},
		{"host, written", hostAt, httpfutures.HostWrittenPerRequest(), 2},
		{"host, read or written", hostAt, append(httpfutures.HostWrittenPerRequest(), httpfutures.HostReadPerRequest()...), 4},
	} {
		lines := map[uintptr]bool{}
		var where []string
		for _, f := range c.fields {
			from := uintptr(c.at) + f.Offset
			for l := from / cacheLine; l <= (from+f.Size-1)/cacheLine; l++ {
				lines[l] = true
			}
			where = append(where, fmt.Sprintf("%s at %d+%d", f.Name, from, f.Size))
		}
		msg := fmt.Sprintf("%s: %d lines: %s", c.name, len(lines), strings.Join(where, ", "))
		t.Log(msg)
		assert.LessOrEqual(t, len(lines), c.maxLines, msg)
	}
}
