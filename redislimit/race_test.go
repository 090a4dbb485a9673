//go:build race

package redislimit_test

// The race detector makes each request cost several times the CPU: four processes on the 2-core
// machine send about 2,200 requests per second together with no limit at all, where they send
// 20,000 without it. So the tests run at lower rates under it, and allow the slower news.

// raceDetector reports whether the tests run under the race detector.
const raceDetector = true

// fleetQuota is the quota the fleet tests share: half what they share without the detector.
const fleetQuota = 1000

// fleetCallsPerRequest bounds the Redis calls per request of the fleet tests: at half the quota
// a lease of 50 ms of a fair share holds half as many tokens, 13, which makes 0.08.
const fleetCallsPerRequest = 0.12

// processQuota is the quota of the tests that run their Limiters, their transports and the
// server they send to in one process: half what it is without the detector.
const processQuota = 500
