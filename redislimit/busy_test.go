package redislimit_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// spinEnv, when set, makes the test binary a busy loop instead, a process of its own as other
// work on the machine would be: the variable holds the instants (Unix nanoseconds) it spins
// from and until, "from,until".
const spinEnv = "REDISLIMIT_TEST_SPIN"

// spin sleeps until the first instant spec gives, keeps a core busy until the second, and
// returns the exit code.
func spin(spec string) int {
	from, until, ok := strings.Cut(spec, ",")
	f, err1 := strconv.ParseInt(from, 10, 64)
	u, err2 := strconv.ParseInt(until, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "bad %s: %q\n", spinEnv, spec)
		return 2
	}
	time.Sleep(time.Until(time.Unix(0, f)))
	for end := time.Unix(0, u); time.Now().Before(end); {
	}
	return 0
}

// busyCores keeps every core busy from from until until, each with a busy loop in a process of
// its own, started now; they are stopped when the test ends, if they have not ended.
func busyCores(t testing.TB, from, until time.Time) {
	t.Helper()
	spec := fmt.Sprintf("%s=%d,%d", spinEnv, from.UnixNano(), until.UnixNano())
	var cmds []*exec.Cmd
	for range runtime.NumCPU() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), spec, "GOMAXPROCS=1")
		// A session of its own, as other work on the machine runs in: where the kernel groups
		// tasks by session, the loops take the cores from everything else alike, the Redis
		// servers among them, not from the test alone.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		require.NoError(t, cmd.Start())
		cmds = append(cmds, cmd)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			for _, cmd := range cmds {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
	})
}
