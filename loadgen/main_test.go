package loadgen

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine of an attack outlives its Run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
