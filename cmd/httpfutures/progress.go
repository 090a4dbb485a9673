package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/httpfutures/httpfutures"
)

const progressEvery = 250 * time.Millisecond

// isTerminal reports whether w is a character device, such as a terminal. Pipes, files and
// buffers are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// startProgress refreshes a one-line status on w about four times a second, if w is a
// terminal, until the returned function is called; that function erases the line. On anything
// else it does nothing.
func startProgress(w io.Writer, m *metrics, tr *httpfutures.AsyncTransport) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		start := time.Now()
		last, lastAt := uint64(0), start
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case now := <-t.C:
				n := m.done.Load()
				cur := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				st := tr.Stats()
				fmt.Fprintf(w, "\r\x1b[K%6.1fs  %d done  %.0f req/s  %d errors  %d in flight  %d queued",
					now.Sub(start).Seconds(), n, cur, m.failed.Load(), st.InFlight, st.Queued)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
