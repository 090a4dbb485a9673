package httpfutures_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	ts := newEchoServer(t)
	s := newSession(t)
	f1 := s.Get(ts.URL + "/get")
	f2 := s.Get(ts.URL + "/get?foo=bar")
	r1, err := f1.Result()
	require.NoError(t, err)
	r2, err := f2.Result()
	require.NoError(t, err)
	assert.Equal(t, "GET /get", body(t, r1))
	assert.Equal(t, "GET /get?foo=bar", body(t, r2))
}
