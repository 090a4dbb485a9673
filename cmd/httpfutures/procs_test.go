package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// governed lets startProcs govern the processors for the length of the test, and gives the
// process two to start from, as many as it may take back.
func governed(t *testing.T) {
	governProcs = true
	had := runtime.GOMAXPROCS(2)
	t.Cleanup(func() {
		governProcs = false
		runtime.GOMAXPROCS(had)
	})
}

func TestNeedsProcs(t *testing.T) {
	ms := time.Millisecond
	assert.False(t, needsProcs(10*ms, 100*ms), "a tenth of a core")
	assert.False(t, needsProcs(79*ms, 100*ms))
	assert.True(t, needsProcs(80*ms, 100*ms), "most of the core")
	assert.True(t, needsProcs(150*ms, 100*ms), "more than one core")
	assert.False(t, needsProcs(10*ms, 0), "no time passed")
}

// The open model runs on one processor while it uses little of it, and takes back all the
// processors the process had once it uses most of that one; the end of the run restores them.
func TestProcsForTheOpenModel(t *testing.T) {
	governed(t)

	stop := startProcs(0, true)
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "one processor while one is enough")
	time.Sleep(3 * procsInterval)
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "an idle generator keeps to one")

	var done atomic.Bool
	t.Cleanup(func() { done.Store(true) }) // the spinning ends with the test, failed or not
	spun := make(chan struct{})
	go func() { // the generator's work taking all of its core
		defer close(spun)
		for !done.Load() {
		}
	}()
	// On a machine busy with other work the spinning may get less than most of a core for a
	// while: it is given time to find an interval where it gets it.
	require.Eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 2 }, 30*time.Second, 10*time.Millisecond,
		"a busy generator takes back its processors")
	done.Store(true)
	<-spun
	stop()
	assert.Equal(t, 2, runtime.GOMAXPROCS(0))

	stop = startProcs(0, true)
	stop()
	assert.Equal(t, 2, runtime.GOMAXPROCS(0), "stopped at once, it restores them")
}

func TestProcsAsAsked(t *testing.T) {
	governed(t)

	stop := startProcs(0, false)
	assert.Equal(t, 2, runtime.GOMAXPROCS(0), "the closed model keeps them all")
	stop()

	stop = startProcs(3, false)
	assert.Equal(t, 3, runtime.GOMAXPROCS(0), "-procs 3")
	stop()
	assert.Equal(t, 2, runtime.GOMAXPROCS(0))

	stop = startProcs(3, true)
	assert.Equal(t, 3, runtime.GOMAXPROCS(0), "-procs in the open model")
	stop()
	assert.Equal(t, 2, runtime.GOMAXPROCS(0))
}

// The command's open model runs on one processor, and its closed model on all; both give them
// back at the end.
func TestRunOnItsProcessors(t *testing.T) {
	governed(t)

	var most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		if n := int64(runtime.GOMAXPROCS(0)); n > most.Load() {
			most.Store(n)
		}
	}))
	defer srv.Close()
	for _, tt := range []struct {
		args []string
		want int64
	}{
		{[]string{"-rate", "100", "-duration", "300ms"}, 1},
		{[]string{"-rate", "100", "-duration", "300ms", "-procs", "2"}, 2},
		{[]string{"-n", "20"}, 2},
	} {
		most.Store(0)
		var out, errb bytes.Buffer
		code := run(t.Context(), append(tt.args, srv.URL), &out, &errb)
		require.Equal(t, exitOK, code, errb.String())
		assert.Equal(t, tt.want, most.Load(), "%v", tt.args)
		assert.Equal(t, 2, runtime.GOMAXPROCS(0), "given back")
	}
}
