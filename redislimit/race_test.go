//go:build race

package redislimit_test

// The race detector makes each request cost several times the CPU: four processes on the 2-core
// machine send about 2,200 requests per second together with no limit at all, where they send
// 20,000 without it. So the tests run at lower rates under it, and allow the slower news.

// raceDetector reports whether the tests run under the race detector.
const raceDetector = true

// fleetQuota is the quota the fleet tests share: a quarter of what they share without the
// detector, a quarter of what the processes send with no limit.
const fleetQuota = 500

// fleetCallsPerRequest bounds the Redis calls per request of the fleet tests: at a quarter of
// the quota a lease of 50 ms of a fair share holds 7 tokens, which makes 0.14.
const fleetCallsPerRequest = 0.2

// processQuota is the quota of the tests that run their Limiters, their transports and the
// server they send to in one process: half what it is without the detector.
const processQuota = 500
