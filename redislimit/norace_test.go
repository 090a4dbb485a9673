//go:build !race

package redislimit_test

// raceDetector reports whether the tests run under the race detector.
const raceDetector = false

// fleetQuota is the quota the fleet tests share: a tenth of what four processes on the 2-core
// machine send with no limit at all.
const fleetQuota = 2000

// fleetCallsPerRequest bounds the Redis calls per request of the fleet tests: a lease of 50 ms
// of a fair share, 25 tokens, for each of four processes makes 0.04.
const fleetCallsPerRequest = 0.05

// processQuota is the quota of the tests that run their Limiters, their transports and the
// server they send to in one process.
const processQuota = 1000
