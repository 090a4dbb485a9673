//go:build !linux

package loadgen

import (
	"errors"
	"time"
)

const finePacing = 0

type fineTimer struct{}

func newFineTimer() (*fineTimer, error) { return nil, errors.New("no fine timer on this system") }

func (t *fineTimer) sleep(d time.Duration) { time.Sleep(d) }

func (t *fineTimer) close() {}
