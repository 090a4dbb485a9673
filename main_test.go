package httpfutures_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every Scheduler must stop all of
// its goroutines in Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
