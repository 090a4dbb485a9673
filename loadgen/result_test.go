package loadgen

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A result is written as vegeta writes it: the same fields in the same order, the latency in
// nanoseconds, the timestamp in RFC 3339 with nanoseconds; the lag is an addition.
func TestResultEncoding(t *testing.T) {
	var buf bytes.Buffer
	w := NewResultWriter(&buf, JSONResults)
	ts := time.Date(2025, 3, 15, 14, 30, 0, 123456789, time.UTC)
	w.Write(&Result{Attack: "a&b", Seq: 7, Code: 200, Timestamp: ts, Latency: 1500 * time.Microsecond,
		BytesOut: 3, BytesIn: 25, Method: "GET", URL: "http://127.0.0.1:1/get?a=<1>", Lag: 42})
	w.Write(&Result{Seq: 8, Timestamp: ts, Latency: time.Second, Error: `Get "x": refused`})
	require.NoError(t, w.Flush())

	want := `{"attack":"a&b","seq":7,"code":200,"timestamp":"2025-03-15T14:30:00.123456789Z","latency":1500000,"bytes_out":3,"bytes_in":25,"error":"","body":null,"method":"GET","url":"http://127.0.0.1:1/get?a=<1>","headers":null,"lag":42}
{"attack":"","seq":8,"code":0,"timestamp":"2025-03-15T14:30:00.123456789Z","latency":1000000000,"bytes_out":0,"bytes_in":0,"error":"Get \"x\": refused","body":null,"method":"","url":"","headers":null}
`
	assert.Equal(t, want, buf.String())
}

// vegeta's own results, with the body in base64 and the response headers, are read.
func TestReadVegetaResults(t *testing.T) {
	const vegeta = `{"attack":"","seq":0,"code":200,"timestamp":"2025-03-15T14:30:00.5+01:00","latency":130000,"bytes_out":0,"bytes_in":2,"error":"","body":"b2s=","method":"GET","url":"http://127.0.0.1:8080/","headers":{"Content-Length":["2"]}}
{"attack":"","seq":1,"code":0,"timestamp":"2025-03-15T14:30:00.6+01:00","latency":30000000000,"bytes_out":0,"bytes_in":0,"error":"timeout","body":null,"method":"GET","url":"http://127.0.0.1:8080/","headers":null}
`
	var got []Result
	require.NoError(t, ReadResults(strings.NewReader(vegeta), "vegeta.json", func(r *Result) { got = append(got, *r) }))
	require.Len(t, got, 2)
	assert.Equal(t, uint16(200), got[0].Code)
	assert.Equal(t, 130*time.Microsecond, got[0].Latency)
	assert.Equal(t, []byte("ok"), got[0].Body)
	assert.True(t, time.Date(2025, 3, 15, 13, 30, 0, 5e8, time.UTC).Equal(got[0].Timestamp))
	assert.Equal(t, "timeout", got[1].Error)
	assert.Equal(t, got[1].Timestamp.Add(30*time.Second), got[1].End())

	err := ReadResults(strings.NewReader("{\"seq\":1}\nnot json\n"), "bad.json", func(*Result) {})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.json: result 2:")
}

// CSV is vegeta's CSV (vegeta encode -to csv): written and read back the same, and vegeta's
// own lines are read.
func TestResultCSV(t *testing.T) {
	ts := time.Date(2025, 3, 15, 14, 30, 0, 123456789, time.UTC)
	in := []Result{
		{Attack: "a,b", Seq: 7, Code: 200, Timestamp: ts, Latency: 1500 * time.Microsecond, BytesOut: 3, BytesIn: 25,
			Method: "GET", URL: "http://127.0.0.1:1/get?a=1&b=\"2\"", Body: []byte("ok"), Headers: http.Header{"Content-Type": {"text/plain"}}},
		{Seq: 8, Timestamp: ts, Latency: time.Second, Code: 500, Error: "500 Internal Server Error"},
	}
	var buf bytes.Buffer
	w := NewResultWriter(&buf, CSVResults)
	for i := range in {
		w.Write(&in[i])
	}
	require.NoError(t, w.Flush())
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	assert.Equal(t, `1742049000123456789,500,1000000000,0,0,500 Internal Server Error,,,8,,,`, lines[1])

	var out []Result
	require.NoError(t, ReadResults(&buf, "r.csv", func(r *Result) { out = append(out, *r) }))
	require.Len(t, out, 2)
	for i := range in {
		assert.True(t, in[i].Timestamp.Equal(out[i].Timestamp))
		out[i].Timestamp = in[i].Timestamp
	}
	assert.Equal(t, in, out)

	// A line as vegeta writes it.
	const vegeta = "1742049000500000000,200,130000,0,2,,b2s=,,0,GET,http://127.0.0.1:8080/,Q29udGVudC1MZW5ndGg6IDINCg0K\n"
	var got []Result
	require.NoError(t, ReadResults(strings.NewReader(vegeta), "vegeta.csv", func(r *Result) { got = append(got, *r) }))
	require.Len(t, got, 1)
	assert.Equal(t, []byte("ok"), got[0].Body)
	assert.Equal(t, "2", got[0].Headers.Get("Content-Length"))
	assert.Equal(t, 130*time.Microsecond, got[0].Latency)

	err := ReadResults(strings.NewReader("1,2,3\n"), "bad.csv", func(*Result) {})
	assert.ErrorContains(t, err, "bad.csv: result 1:")
}
