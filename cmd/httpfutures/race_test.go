//go:build race

package main

import "time"

// openRate and openSpan are the rate and the duration TestRunOpenModelKeepsTheRate asks for.
// The race detector makes each request cost several times the CPU, and beside the other
// packages' tests a 2-core machine could not send 1,000 a second: the generator fell behind (and
// said so, in its send lag and its dropped requests), which is not what the test is about. The
// span is longer, so that a late first send, which shortens the span the rate is measured over,
// moves it less.
const (
	openRate = 250
	openSpan = 2 * time.Second
)
