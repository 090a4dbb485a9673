package httpfutures_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// A Session's requests, run through its client, are judged and refused as a transport's are.
func TestFailingFastThroughASession(t *testing.T) {
	srv := newFaultServer(t, answer503)
	s := newSession(t, httpfutures.WithWorkers(1), httpfutures.WithCircuitBreaker(httpfutures.CircuitBreaker{Cooldown: time.Minute}))
	for range 20 {
		resp, err := s.Get(srv.URL).Result()
		require.NoError(t, err)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	}
	_, err := s.Get(srv.URL).Result()
	require.ErrorIs(t, err, httpfutures.ErrCircuitOpen)
	assert.Equal(t, httpfutures.CircuitOpen, s.HostStats(srv.URL).Circuit)
	assert.Equal(t, uint64(1), s.Stats().Shed)
}
