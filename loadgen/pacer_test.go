package loadgen

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The pacer wakes on time for waits shorter than the Go timers' millisecond, which an idle
// process would otherwise oversleep.
func TestPacerWaitsOnTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the fine timer is a timerfd")
	}
	p := newPacer(true)
	defer p.stop()
	var lates []time.Duration
	for range 50 {
		due := time.Now().Add(300 * time.Microsecond)
		assert.True(t, p.waitUntil(t.Context(), due))
		lates = append(lates, time.Since(due))
	}
	slices.Sort(lates)
	t.Logf("late by: median %v, max %v", lates[len(lates)/2], lates[len(lates)-1])
	assert.GreaterOrEqual(t, lates[0], time.Duration(0), "never early")
	assert.Less(t, lates[len(lates)/2], 300*time.Microsecond, "the median wake is within the wait itself")
}

func TestPacerStopsWithItsContext(t *testing.T) {
	for _, fine := range []bool{true, false} {
		p := newPacer(fine)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.False(t, p.waitUntil(ctx, time.Now().Add(time.Hour)))
		p.stop()
	}
}
