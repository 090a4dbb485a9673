//go:build !race

package main

import "time"

// openRate and openSpan are the rate and the duration TestRunOpenModelKeepsTheRate asks for.
const (
	openRate = 1000
	openSpan = time.Second
)
