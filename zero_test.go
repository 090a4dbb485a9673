package httpfutures_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// Each type does what its documentation says of its zero value.
func TestZeroValues(t *testing.T) {
	ts := newEchoServer(t)

	t.Run("Future", func(t *testing.T) {
		var f httpfutures.Future
		resp, err := f.Result()
		assert.Nil(t, resp)
		require.ErrorIs(t, err, httpfutures.ErrInvalidRequest, "a zero Future was never started")
		resp, err = f.Wait(context.Background())
		assert.Nil(t, resp)
		require.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
		select {
		case <-f.Done():
		default:
			t.Fatal("a zero Future is done")
		}
		assert.Equal(t, httpfutures.Timing{}, f.Timing())
		assert.False(t, f.Cancel())
		assert.Nil(t, f.Request())
		assert.Equal(t, 0, f.Attempts())
		for range httpfutures.AsCompleted(&f) {
		}
		require.ErrorIs(t, httpfutures.WaitAll(context.Background(), &f), httpfutures.ErrInvalidRequest)
	})

	t.Run("Scheduler", func(t *testing.T) {
		var s httpfutures.Scheduler
		assert.Equal(t, httpfutures.Stats{}, s.Stats())
		tr := httpfutures.NewTransport(nil, httpfutures.WithScheduler(&s))
		resp, err := tr.StartRoundTrip(get(t, ts.URL+"/z")).Result()
		require.NoError(t, err, "a zero Scheduler runs requests with the defaults")
		assert.Equal(t, "GET /z", body(t, resp))
		assert.Equal(t, uint64(1), s.Stats().Completed)
		require.NoError(t, tr.Close())
		require.NoError(t, s.Close())
		var closed httpfutures.Scheduler
		require.NoError(t, closed.Close())
	})

	t.Run("AsyncTransport", func(t *testing.T) {
		var tr httpfutures.AsyncTransport
		resp, err := tr.RoundTrip(get(t, ts.URL+"/rt"))
		require.NoError(t, err, "a zero AsyncTransport sends with the defaults")
		assert.Equal(t, "GET /rt", body(t, resp))
		resp, err = tr.StartRoundTrip(get(t, ts.URL+"/srt")).Result()
		require.NoError(t, err)
		assert.Equal(t, "GET /srt", body(t, resp))
		assert.Equal(t, uint64(2), tr.Stats().Completed)
		require.NoError(t, tr.Close())
		var closed httpfutures.AsyncTransport
		require.NoError(t, closed.Close())
		var shut httpfutures.AsyncTransport
		require.NoError(t, shut.Shutdown(context.Background()))
	})

	t.Run("Session", func(t *testing.T) {
		var s httpfutures.Session
		resp, err := s.Get(ts.URL + "/s").Result()
		require.NoError(t, err, "a zero Session sends with the defaults")
		assert.Equal(t, "GET /s", body(t, resp))
		require.NotNil(t, s.Client())
		resp, err = s.Client().Get(ts.URL + "/c")
		require.NoError(t, err)
		assert.Equal(t, "GET /c", body(t, resp))
		assert.Equal(t, uint64(2), s.Stats().Completed)
		n := 0
		for f := range s.Stream(context.Background(), httpfutures.GetRequests(slices.Values([]string{ts.URL + "/st"})), 0) {
			resp, err := f.Result()
			require.NoError(t, err)
			assert.Equal(t, "GET /st", body(t, resp))
			n++
		}
		assert.Equal(t, 1, n)
		require.NoError(t, s.Close())
		var streamed httpfutures.AsyncTransport
		for f := range streamed.Stream(context.Background(), httpfutures.GetRequests(slices.Values([]string{ts.URL + "/t"})), 0) {
			_, err := f.Result()
			require.NoError(t, err, "a zero AsyncTransport streams with the defaults")
		}
		require.NoError(t, streamed.Close())
		var closed httpfutures.Session
		require.NoError(t, closed.Close())
		_, err = closed.Get(ts.URL).Result()
		require.ErrorIs(t, err, httpfutures.ErrClosed)
	})
}
