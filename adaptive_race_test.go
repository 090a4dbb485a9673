//go:build race

package httpfutures_test

// raceDetector tells that the tests run under the race detector, which makes each request cost
// the processors ten times as much.
const raceDetector = true
