package main

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each line of the tour says what the library did; each claim is checked here from what the
// run measured, not from the text.
func TestTourClaimsHold(t *testing.T) {
	a, err := startTourServer()
	require.NoError(t, err)
	defer a.Close()
	b, err := startTourServer()
	require.NoError(t, err)
	defer b.Close()
	ctx := t.Context()

	t.Run("futures resolve out of order", func(t *testing.T) {
		d, err := runOutOfOrder(ctx, a)
		require.NoError(t, err)
		assert.Equal(t, []int{300, 100, 200}, d.submitted)
		assert.Equal(t, []int{100, 200, 300}, d.resolved, "by how long each took")
		assert.True(t, d.held())
	})
	t.Run("a throttled host does not delay another", func(t *testing.T) {
		d, err := runThrottled(ctx, a, b)
		require.NoError(t, err)
		t.Logf("throttled host's last after %v, the other's after %v", d.throttledLast, d.other)
		assert.GreaterOrEqual(t, d.throttledLast, 450*time.Millisecond, "6 requests at 10/s: 5 intervals of 100ms")
		assert.Less(t, d.other, d.throttledLast/2, "the other host's request, queued last, did not wait for them")
		assert.True(t, d.held())
	})
	t.Run("a 429 pauses one host", func(t *testing.T) {
		d, err := runPaused(ctx, a, b)
		require.NoError(t, err)
		t.Logf("paused host's next after %v, the other's after %v", d.nextAfter, d.other)
		assert.Equal(t, 429, d.code)
		assert.GreaterOrEqual(t, d.nextAfter, 900*time.Millisecond, "Retry-After: 1")
		assert.Less(t, d.other, 500*time.Millisecond)
		assert.True(t, d.held())
	})
	t.Run("a Stream holds its window", func(t *testing.T) {
		d, err := runWindow(ctx, a)
		require.NoError(t, err)
		assert.Equal(t, d.n, d.done)
		assert.LessOrEqual(t, d.peak, int64(d.window), "never more than the window at the server")
		assert.Positive(t, d.peak)
		assert.True(t, d.held())
	})
	t.Run("Close stops what runs", func(t *testing.T) {
		d, err := runClose(ctx, a)
		require.NoError(t, err)
		assert.Less(t, d.took, time.Second)
		assert.Equal(t, d.running+d.queued, d.errClosed, "every Future failed with ErrClosed")
		assert.Equal(t, int64(d.running), d.left, "the server saw the running requests go")
		assert.True(t, d.held())
	})

	// A claim that did not hold is said so, and fails the run.
	assert.False(t, outOfOrder{submitted: []int{1, 2}, resolved: []int{1, 2}}.held())
	assert.False(t, closed{running: 2, queued: 1, errClosed: 3, left: 1}.held())
}

// The subcommand prints a line a step, each held, in their order.
func TestTourSubcommand(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"tour"}, &out, &errb)
	require.Equal(t, exitOK, code, errb.String()+out.String())
	lines := regexp.MustCompile(`(?m)^\d\. ([^:]+): .+ \[ok\]$`).FindAllStringSubmatch(out.String(), -1)
	var claims []string
	for _, l := range lines {
		claims = append(claims, l[1])
	}
	assert.Equal(t, []string{"Futures resolve out of order", "A throttled host does not delay another",
		"A 429 pauses one host", "A Stream holds its window", "Close stops what runs"}, claims)
}
