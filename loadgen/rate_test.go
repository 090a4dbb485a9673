package loadgen

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		name     string
		rate     string
		duration time.Duration // -duration; 0: not given
		want     []stage
		wantDur  time.Duration // -duration after fitting
		wantErr  string
	}{
		{name: "constant", rate: "5000", want: []stage{{5000, 5000, 0}}},
		{name: "constant over a duration", rate: "5000", duration: 3 * time.Second, want: []stage{{5000, 5000, 3 * time.Second}}, wantDur: 3 * time.Second},
		{name: "ramp over the duration", rate: "100:2000", duration: time.Minute, want: []stage{{100, 2000, time.Minute}}, wantDur: time.Minute},
		{name: "stages give the duration", rate: "100@10s,0:500@20s", want: []stage{{100, 100, 10 * time.Second}, {0, 500, 20 * time.Second}}, wantDur: 30 * time.Second},
		{name: "last stage takes the rest", rate: "100@10s,300", duration: time.Minute, want: []stage{{100, 100, 10 * time.Second}, {300, 300, 50 * time.Second}}, wantDur: time.Minute},
		{name: "zero is the closed model", rate: "0"},
		{name: "ramp without duration", rate: "1:2", wantErr: "a ramp needs a duration"},
		{name: "stage without duration in the middle", rate: "1,2@1s", wantErr: "only the last stage may leave out"},
		{name: "negative", rate: "-5", wantErr: "not a non-negative number"},
		{name: "infinite", rate: "+Inf", wantErr: "not a non-negative number"},
		{name: "bad duration", rate: "5@x", wantErr: "not a positive duration"},
		{name: "no room for the last stage", rate: "5@2s,6", duration: time.Second, wantErr: "leaves none for the last"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseRate(tt.rate)
			if err == nil && s != nil {
				d := tt.duration
				err = s.Fit(&d, tt.duration > 0)
				if err == nil {
					assert.Equal(t, tt.wantDur, d)
				}
			}
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.want == nil {
				assert.Nil(t, s)
				return
			}
			assert.Equal(t, tt.want, s.stages)
			assert.Equal(t, tt.rate, s.String())
		})
	}
}

func TestRateScheduleOffsets(t *testing.T) {
	ms := time.Millisecond
	t.Run("constant", func(t *testing.T) {
		s := ConstantRate(1000)
		for _, i := range []int{0, 1, 7, 5000} {
			off, ok := s.offset(i)
			assert.True(t, ok)
			assert.Equal(t, time.Duration(i)*ms, off, "request %d", i)
		}
		assert.Equal(t, 0, s.due(0))
		assert.Equal(t, 3, s.due(2500*time.Microsecond), "requests 0, 1 and 2 are due before 2.5ms")
		assert.Equal(t, 3, s.due(3*ms), "due before, not at")
	})
	t.Run("ramp", func(t *testing.T) {
		// From 0 to 2000/s over 1s: 1000 requests, the count at t being 1000 t².
		s := &Rate{stages: []stage{{0, 2000, time.Second}}}
		for _, i := range []int{0, 10, 250, 999} {
			off, ok := s.offset(i)
			require.True(t, ok)
			want := time.Duration(float64(time.Second) * sqrt(float64(i)/1000))
			assert.InDelta(t, want, off, 1000, "request %d", i) // within a microsecond
		}
		_, ok := s.offset(1000)
		assert.False(t, ok, "the timetable has ended")
		assert.Equal(t, 250, s.due(500*ms))
	})
	t.Run("ramp down and a pause", func(t *testing.T) {
		// 1000 to 0/s over 1s (500 requests), a second at 0, then 100/s for a second.
		s := &Rate{stages: []stage{{1000, 0, time.Second}, {0, 0, time.Second}, {100, 100, time.Second}}}
		off, ok := s.offset(375) // count(t) = 1000t - 500t² = 375 at t = 0.5s
		require.True(t, ok)
		assert.InDelta(t, 500*ms, off, 1000)
		off, ok = s.offset(500)
		require.True(t, ok)
		assert.Equal(t, 2*time.Second, off, "the first of the last stage, after the pause")
		off, ok = s.offset(510)
		require.True(t, ok)
		assert.Equal(t, 2100*ms, off)
		_, ok = s.offset(600)
		assert.False(t, ok)
		assert.Equal(t, 500, s.due(1500*ms))
		assert.Equal(t, 600, s.due(3*time.Second))
	})
}

func sqrt(x float64) float64 { return math.Sqrt(x) }
