//go:build !race

package httpfutures_test

// streamHeapRequests is how many requests TestStreamMemoryIsBoundedByTheWindow streams.
const streamHeapRequests = 1_000_000
