package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	governProcs = false // the tests' servers run in their process: one processor would slow them
	goleak.VerifyTestMain(m)
}
