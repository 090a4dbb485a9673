//go:build !linux

package main

import "time"

const finePacing = 0

func lockPacer() (unlock func()) { return func() {} }

func sleepFine(d time.Duration) { time.Sleep(d) }
