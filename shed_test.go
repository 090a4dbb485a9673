package httpfutures_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// prioritized returns a GET of url with priority p.
func prioritized(t testing.TB, url string, p int) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(httpfutures.ContextWithPriority(context.Background(), p), http.MethodGet, url, nil)
	require.NoError(t, err)
	return req
}

// A full queue admits a request of higher priority than the lowest queued, and sheds that one,
// the newest of the lowest priority first, with ErrQueueFull; a request of equal or lower
// priority is refused. The requests go in priority order once the worker is free.
func TestFullQueueShedsTheLowestPriority(t *testing.T) {
	ts, g := newGateServer(t)
	tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(3))
	blocker := tr.StartRoundTrip(get(t, ts.URL+"/blocker"))
	<-g.arrived
	steps := []struct {
		name     string
		priority int
		shed     string // the request shed to admit it; "" if none
		refused  bool
	}{
		{"a", 0, "", false},
		{"b", 0, "", false},
		{"c", 1, "", false},
		{"d", 0, "", true},  // the queue is full, and the lowest is 0
		{"e", -1, "", true}, // lower still
		{"f", 2, "b", false},
		{"g", 1, "a", false},
		{"h", 1, "", true}, // the lowest is now 1
		{"i", 5, "g", false},
	}
	fs := map[string]*httpfutures.Future{}
	for i, s := range steps {
		f := tr.StartRoundTrip(prioritized(t, ts.URL+"/"+s.name, s.priority))
		fs[s.name] = f
		if s.refused {
			_, err := f.Result()
			require.ErrorIs(t, err, httpfutures.ErrQueueFull, s.name)
		}
		if s.shed != "" {
			_, err := fs[s.shed].Result()
			require.ErrorIs(t, err, httpfutures.ErrQueueFull, "%s sheds %s", s.name, s.shed)
			assert.ErrorContains(t, err, "higher priority")
			assert.Zero(t, fs[s.shed].Attempts())
		}
		assert.Equal(t, min(i+1, 3), tr.Stats().Queued, "after %s", s.name)
	}
	g.open()
	_, err := blocker.Result()
	require.NoError(t, err)
	var served []string
	for range 3 {
		served = append(served, strings.TrimPrefix(<-g.arrived, "/"))
	}
	assert.Equal(t, []string{"i", "f", "c"}, served)
	for _, name := range served {
		_, err := fs[name].Result()
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(6), tr.Stats().Shed, "three refused, three shed")
}

// The lowest priority is found across hosts; a queue full of requests of one priority refuses
// that priority and admits a higher one, for any queue limit. Each limit has servers of its own:
// a request of the one before may reach its gate after the blocker's cancellation freed the
// worker, and read as this blocker's arrival, it would leave the blocker queued, the request of
// lowest priority, to be shed in place of the one the test waits for.
func TestFullQueueShedsAcrossHosts(t *testing.T) {
	for _, limit := range []int{1, 2, 10, 100} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			a, ga := newGateServer(t)
			b, _ := newGateServer(t)
			tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(limit))
			blocker := tr.StartRoundTrip(get(t, a.URL+"/blocker"))
			require.Equal(t, "/blocker", <-ga.arrived)
			var low []*httpfutures.Future
			for i := range limit {
				url := a.URL
				if i%2 == 1 {
					url = b.URL
				}
				low = append(low, tr.StartRoundTrip(prioritized(t, fmt.Sprintf("%s/low%d", url, i), 1)))
			}
			_, err := tr.StartRoundTrip(prioritized(t, b.URL+"/same", 1)).Result()
			require.ErrorIs(t, err, httpfutures.ErrQueueFull)
			high := tr.StartRoundTrip(prioritized(t, b.URL+"/high", 2))
			_, err = low[limit-1].Result()
			require.ErrorIs(t, err, httpfutures.ErrQueueFull, "the newest of the lowest")
			for _, f := range low[:limit-1] {
				select {
				case <-f.Done():
					t.Fatal("only one was shed")
				default:
				}
			}
			assert.Equal(t, limit, tr.Stats().Queued)
			high.Cancel()
			blocker.Cancel()
			for _, f := range low[:limit-1] {
				f.Cancel()
			}
		})
	}
}

// Without a priority to shed, a full queue refuses as it always has: retries waiting are never
// shed, and without WithQueueLimit nothing is.
func TestFullQueueOfRetriesIsNotShed(t *testing.T) {
	srv := newFaultServer(t, answer503)
	tr := newTransport(t, nil, httpfutures.WithQueueLimit(1),
		httpfutures.WithRetry(httpfutures.RetryPolicy{MinWait: time.Minute, MaxWait: time.Minute}))
	retried := tr.StartRoundTrip(prioritized(t, srv.URL, -5))
	require.Eventually(t, func() bool { return srv.hits.Load() == 1 && tr.Stats().Queued == 1 }, 5*time.Second, time.Millisecond)
	_, err := tr.StartRoundTrip(prioritized(t, srv.URL, 10)).Result()
	require.ErrorIs(t, err, httpfutures.ErrQueueFull, "a retry waiting is not shed")
	retried.Cancel()
	_, err = retried.Result()
	require.True(t, errors.Is(err, context.Canceled))
}

// Under a long run of random submissions and cancellations, the request a full queue sheds is
// always the newest of the lowest priority, as a plain model of the queue says.
func TestFullQueueShedsAsAModelSays(t *testing.T) {
	ts, g := newGateServer(t)
	const limit = 50
	tr := newTransport(t, nil, httpfutures.WithWorkers(1), httpfutures.WithQueueLimit(limit))
	blocker := tr.StartRoundTrip(get(t, ts.URL+"/blocker"))
	<-g.arrived
	type queued struct {
		f        *httpfutures.Future
		priority int
	}
	var model []queued // in the order submitted
	rng := rand.New(rand.NewPCG(1, 2))
	shed, refused := 0, 0
	for i := range 3000 {
		if len(model) > 0 && rng.IntN(3) == 0 {
			j := rng.IntN(len(model))
			require.True(t, model[j].f.Cancel())
			model = slices.Delete(model, j, j+1)
			continue
		}
		p := rng.IntN(5) - 2
		f := tr.StartRoundTrip(prioritized(t, fmt.Sprintf("%s/%d", ts.URL, i), p))
		if len(model) < limit {
			model = append(model, queued{f, p})
			continue
		}
		victim := 0 // the newest of the lowest priority
		for j, q := range model {
			if q.priority <= model[victim].priority {
				victim = j
			}
		}
		if p <= model[victim].priority {
			_, err := f.Result()
			require.ErrorIs(t, err, httpfutures.ErrQueueFull)
			refused++
			continue
		}
		_, err := model[victim].f.Result()
		require.ErrorIs(t, err, httpfutures.ErrQueueFull, "step %d", i)
		model = slices.Delete(model, victim, victim+1)
		model = append(model, queued{f, p})
		shed++
	}
	for _, q := range model {
		select {
		case <-q.f.Done():
			t.Fatal("a request the model holds queued was resolved")
		default:
		}
		q.f.Cancel()
	}
	blocker.Cancel()
	assert.Positive(t, shed)
	assert.Positive(t, refused)
	t.Logf("3000 steps: %d shed, %d refused", shed, refused)
}
