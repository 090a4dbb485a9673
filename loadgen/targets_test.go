package loadgen

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A "# weight: N" line gives its target a weight, in its block or on the lines just above its
// "METHOD URL"; it is never ignored: given twice to one target, or above none, the file is
// refused with the line.
func TestHTTPTargetsWeight(t *testing.T) {
	tests := []struct {
		name, file string
		want       []int  // the targets' weights
		wantErr    string // or the error
	}{
		{"below", "GET http://a.test/\n# weight: 3\n", []int{3}, ""},
		{"above", "# weight: 3\nGET http://a.test/\n", []int{3}, ""},
		{"above, after a comment", "# the hot path\n# weight: 4\nGET http://a.test/\n\nGET http://b.test/\n", []int{4, 1}, ""},
		{"above the second", "GET http://a.test/\n\n# weight: 2\nPOST http://b.test/\nX-A: 1\n", []int{1, 2}, ""},
		{"either side, two targets", "# weight: 2\nGET http://a.test/\n\nGET http://b.test/\n# weight: 5\n", []int{2, 5}, ""},
		{"above and below", "# weight: 2\nGET http://a.test/\n# weight: 3\n", nil, "line 3: a second weight for the target of line 3 (the first on line 1)"},
		{"twice above", "# weight: 2\n# weight: 3\nGET http://a.test/\n", nil, "line 2: a second weight above one target (the first on line 1)"},
		{"above no target", "GET http://a.test/\n\n# weight: 2\n", nil, "line 3: a weight above no target"},
		{"not a number", "# weight: lots\nGET http://a.test/\n", nil, `line 1: weight "lots" is not a positive integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := ReadTargets([]byte(tt.file), "http", nil)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var got []int
			for _, tg := range ts {
				got = append(got, tg.Weight)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// A URL's placeholders are filled in for each request: {{seq}} with its number, {{rand N}} with
// a number below N.
func TestURLPlaceholders(t *testing.T) {
	tgt, err := NewTarget("http://api.test/item/{{seq}}?shard={{ rand 4 }}&x=1")
	require.NoError(t, err)
	tg, err := newTargeter([]*Target{tgt})
	require.NoError(t, err)
	shards := map[string]bool{}
	for i := range uint64(200) {
		req, _, u := tg.request(i, t.Context())
		assert.Equal(t, u, req.URL.String())
		assert.Equal(t, fmt.Sprintf("/item/%d", i), req.URL.Path)
		assert.Equal(t, "api.test", req.URL.Host)
		shard := req.URL.Query().Get("shard")
		assert.Contains(t, []string{"0", "1", "2", "3"}, shard)
		shards[shard] = true
	}
	assert.Len(t, shards, 4, "200 draws below 4 reach each")

	for raw, want := range map[string]string{
		"http://a.test/{{nope}}":    "unknown placeholder {{nope}}",
		"http://a.test/{{rand 0}}":  "N must be a positive integer",
		"http://a.test/{{rand -1}}": "N must be a positive integer",
		"http://a.test/{{seq":       `"{{" without "}}"`,
		"http://a.test/seq}}":       `"}}" without "{{"`,
		"ftp://a.test/{{seq}}":      "the scheme must be http or https",
	} {
		_, err := NewTarget(raw)
		assert.ErrorContains(t, err, want, raw)
	}
}

// The placeholders' cost is paid by the targets that have them alone.
func BenchmarkTargeterRequest(b *testing.B) {
	for name, raw := range map[string]string{"plain": "http://api.test/item", "placeholders": "http://api.test/item/{{seq}}?r={{rand 1000}}"} {
		b.Run(name, func(b *testing.B) {
			tgt, err := NewTarget(raw)
			require.NoError(b, err)
			tg, err := newTargeter([]*Target{tgt})
			require.NoError(b, err)
			b.ReportAllocs()
			for i := range uint64(b.N) {
				_, _, _ = tg.request(i, b.Context())
			}
		})
	}
}
