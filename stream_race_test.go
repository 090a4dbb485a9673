//go:build race

package httpfutures_test

// streamHeapRequests is how many requests TestStreamMemoryIsBoundedByTheWindow streams: fewer
// under the race detector, which runs them ten times slower.
const streamHeapRequests = 100_000
