package httpfutures_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/httpfutures/httpfutures"
)

// refusedURL returns the URL of a loopback port that nothing listens on.
func refusedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	return u
}

// openLater opens g after a while: a test of something that must not wait for g then fails
// rather than hangs.
func openLater(t testing.TB, g *gate) {
	timer := time.AfterFunc(10*time.Second, g.open)
	t.Cleanup(func() { timer.Stop() })
}

func TestSessionMethods(t *testing.T) {
	tests := []struct {
		name      string
		start     func(t *testing.T, s *httpfutures.Session, base string, body *countingBody) *httpfutures.Future
		reqBody   string // the content of body, for the cases that send it
		method    string
		path      string
		ctype     string
		wantBody  string // the response body the caller reads: "echo:" and the request body
		wantClose bool   // body is the request body, closed once
	}{
		{
			name: "Get",
			start: func(t *testing.T, s *httpfutures.Session, base string, _ *countingBody) *httpfutures.Future {
				return s.Get(base + "/get")
			},
			method: http.MethodGet, path: "/get", wantBody: "echo:",
		},
		{
			name: "Head",
			start: func(t *testing.T, s *httpfutures.Session, base string, _ *countingBody) *httpfutures.Future {
				return s.Head(base + "/head")
			},
			method: http.MethodHead, path: "/head", wantBody: "", // the server's is not sent
		},
		{
			name: "Post",
			start: func(t *testing.T, s *httpfutures.Session, base string, b *countingBody) *httpfutures.Future {
				return s.Post(base+"/post", "text/plain", b)
			},
			reqBody: "payload", method: http.MethodPost, path: "/post", ctype: "text/plain",
			wantBody: "echo:payload", wantClose: true,
		},
		{
			name: "PostForm",
			start: func(t *testing.T, s *httpfutures.Session, base string, _ *countingBody) *httpfutures.Future {
				return s.PostForm(base+"/form", url.Values{"a": {"1"}, "b": {"x y", "z&"}})
			},
			method: http.MethodPost, path: "/form", ctype: "application/x-www-form-urlencoded",
			wantBody: "echo:a=1&b=x+y&b=z%26",
		},
		{
			name: "Do",
			start: func(t *testing.T, s *httpfutures.Session, base string, _ *countingBody) *httpfutures.Future {
				req, err := http.NewRequest(http.MethodPut, base+"/do", strings.NewReader(`{"k":1}`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				return s.Do(req)
			},
			method: http.MethodPut, path: "/do", ctype: "application/json", wantBody: `echo:{"k":1}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t)
			arrived := make(chan struct{}, 1)
			release := make(chan struct{})
			answer := sync.OnceFunc(func() { close(release) })
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				b, _ := io.ReadAll(r.Body)
				w.Header().Set("X-Method", r.Method)
				w.Header().Set("X-Path", r.URL.Path)
				w.Header().Set("X-Content-Type", r.Header.Get("Content-Type"))
				io.WriteString(w, "echo:"+string(b)) // not sent for a HEAD
			}))
			t.Cleanup(ts.Close)
			t.Cleanup(answer)
			// Should the method wait for the response, answer after a while rather than hang.
			watchdog := time.AfterFunc(10*time.Second, answer)
			defer watchdog.Stop()

			b := &countingBody{Reader: strings.NewReader(tt.reqBody)}
			f := tt.start(t, s, ts.URL, b)
			require.NotNil(t, f)
			<-arrived
			select {
			case <-f.Done():
				t.Fatal("the Future resolved before the server answered")
			default:
			}
			answer()

			resp, err := f.Result()
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, tt.method, resp.Header.Get("X-Method"))
			assert.Equal(t, tt.path, resp.Header.Get("X-Path"))
			assert.Equal(t, tt.ctype, resp.Header.Get("X-Content-Type"))
			assert.Equal(t, tt.wantBody, body(t, resp))
			assert.Equal(t, tt.method, f.Request().Method)
			if tt.wantClose {
				require.Eventually(t, func() bool { return b.closes.Load() >= 1 }, 5*time.Second, time.Millisecond)
				assert.Equal(t, int32(1), b.closes.Load(), "the request body is closed exactly once")
			}
		})
	}
}

// headerTransport adds a header to every request, on a transport of its own.
type headerTransport struct {
	next  *http.Transport
	trips atomic.Int32
}

func (h *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h.trips.Add(1)
	req = req.Clone(req.Context())
	req.Header.Set("X-Via", "custom")
	return h.next.RoundTrip(req)
}

func TestWithClient(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "abc", Path: "/"})
	})
	mux.HandleFunc("/check", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("session")
		if err != nil {
			io.WriteString(w, "no cookie")
			return
		}
		io.WriteString(w, c.Value)
	})
	mux.HandleFunc("/from", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/to", http.StatusFound)
	})
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "arrived") })
	mux.HandleFunc("/via", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-Via")) })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	// unchanged asserts that the session left c as it was.
	unchanged := func(t *testing.T, before http.Client, c *http.Client) {
		t.Helper()
		if before.Transport == nil {
			assert.Nil(t, c.Transport, "the client's Transport stays nil")
		} else {
			assert.Same(t, before.Transport, c.Transport, "the client's Transport stays the same")
		}
		assert.True(t, before.Jar == c.Jar, "the client's Jar stays the same")
		assert.Equal(t, reflect.ValueOf(before.CheckRedirect).Pointer(), reflect.ValueOf(c.CheckRedirect).Pointer(),
			"the client's CheckRedirect stays the same")
		assert.Equal(t, before.Timeout, c.Timeout)
	}

	t.Run("cookie jar", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		c := &http.Client{Jar: jar}
		before := *c
		s := newSession(t, httpfutures.WithClient(c))

		_, err = s.Get(ts.URL + "/set").Result()
		require.NoError(t, err)
		resp, err := s.Get(ts.URL + "/check").Result()
		require.NoError(t, err)
		assert.Equal(t, "abc", body(t, resp), "the jar sent the cookie the server set")
		u, err := url.Parse(ts.URL)
		require.NoError(t, err)
		require.Len(t, jar.Cookies(u), 1, "the cookie is in the client's own jar")
		assert.Equal(t, "abc", jar.Cookies(u)[0].Value)
		unchanged(t, before, c)
	})

	t.Run("redirect policy", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		before := *c
		s := newSession(t, httpfutures.WithClient(c))

		resp, err := s.Get(ts.URL + "/from").Result()
		require.NoError(t, err)
		assert.Equal(t, http.StatusFound, resp.StatusCode, "the redirect itself, not followed")
		assert.Equal(t, "/to", resp.Header.Get("Location"))
		assert.Equal(t, "/from", resp.Request.URL.Path)
		unchanged(t, before, c)
	})

	t.Run("timeout", func(t *testing.T) {
		c := &http.Client{Timeout: 50 * time.Millisecond}
		before := *c
		s := newSession(t, httpfutures.WithClient(c))
		stalled, _ := newGateServer(t)

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := s.Get(stalled.URL).Wait(ctx)
		require.NoError(t, ctx.Err(), "the client's Timeout ended the request")
		assert.Nil(t, resp)
		require.Error(t, err)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout(), "a timeout error: %v", err)
		unchanged(t, before, c)
	})

	t.Run("custom transport", func(t *testing.T) {
		ht := &headerTransport{next: &http.Transport{}}
		t.Cleanup(ht.next.CloseIdleConnections)
		c := &http.Client{Transport: ht}
		before := *c
		s := newSession(t, httpfutures.WithClient(c))

		resp, err := s.Get(ts.URL + "/via").Result()
		require.NoError(t, err)
		assert.Equal(t, "custom", body(t, resp), "the request went through the client's Transport")
		assert.Equal(t, int32(1), ht.trips.Load())
		resp, err = s.Client().Get(ts.URL + "/via")
		require.NoError(t, err)
		assert.Equal(t, "custom", body(t, resp), "and so does the synchronous client")
		unchanged(t, before, c)
	})
}

func TestSessionRedirects(t *testing.T) {
	ts := newRedirectChain(t, nil)
	s := newSession(t, httpfutures.WithWorkers(1)) // each hop waits for the one worker

	req := get(t, ts.URL+"/r/3")
	f := s.Do(req)
	resp, err := f.Result()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "landed", body(t, resp))
	assert.Equal(t, "/r/0", resp.Request.URL.Path, "the response names the last request")
	require.NotNil(t, resp.Request.Response, "the last request was made for a redirect")
	assert.Equal(t, http.StatusFound, resp.Request.Response.StatusCode)
	assert.Same(t, req, f.Request(), "the Future names the request submitted")
	assert.Equal(t, "/r/3", f.Request().URL.Path)

	f = s.Get(ts.URL + "/r/1")
	resp, err = f.Result()
	require.NoError(t, err)
	assert.Equal(t, "/r/0", resp.Request.URL.Path)
	assert.Equal(t, "/r/1", f.Request().URL.Path)
	assert.Equal(t, uint64(2), s.Transport().Stats().Completed, "hops are not counted as requests")
}

func TestSessionClientIsScheduled(t *testing.T) {
	s := newSession(t, httpfutures.WithWorkers(1))
	ts, g := newGateServer(t)
	client := s.Client()

	errs := make(chan error, 2)
	bodies := make(chan string, 2)
	for _, p := range []string{"/a", "/b"} {
		go func() {
			resp, err := client.Get(ts.URL + p)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				bodies <- string(b)
			}
			errs <- err
		}()
	}
	first := <-g.arrived
	require.Eventually(t, func() bool { return s.Transport().Stats().Queued == 1 }, 5*time.Second, time.Millisecond,
		"the second synchronous request waits for the only worker")
	assert.Empty(t, g.arrived, "one request at a time reached the server")
	g.open()
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	second := <-g.arrived
	assert.ElementsMatch(t, []string{"/a", "/b"}, []string{first, second})
	assert.ElementsMatch(t, []string{"/a", "/b"}, []string{<-bodies, <-bodies})
	assert.Equal(t, uint64(2), s.Transport().Stats().Completed)
}

func TestSessionErrorsAreShiftedIntoTheFuture(t *testing.T) {
	refused := refusedURL(t)
	invalid := func(t *testing.T, err error) { require.ErrorIs(t, err, httpfutures.ErrInvalidRequest) }
	tests := []struct {
		name  string
		start func(s *httpfutures.Session, body io.Reader) *httpfutures.Future
		posts bool // the request has a body, to be closed once
		check func(t *testing.T, err error)
	}{
		{
			name:  "empty URL",
			start: func(s *httpfutures.Session, _ io.Reader) *httpfutures.Future { return s.Get("") },
			check: invalid,
		},
		{
			name:  "unparsable URL",
			start: func(s *httpfutures.Session, _ io.Reader) *httpfutures.Future { return s.Get("::bad url") },
			check: invalid,
		},
		{
			name:  "no host",
			start: func(s *httpfutures.Session, _ io.Reader) *httpfutures.Future { return s.Get("http://") },
			check: invalid,
		},
		{
			name:  "Head with no host",
			start: func(s *httpfutures.Session, _ io.Reader) *httpfutures.Future { return s.Head("http:///x") },
			check: invalid,
		},
		{
			name: "PostForm to an unparsable URL",
			start: func(s *httpfutures.Session, _ io.Reader) *httpfutures.Future {
				return s.PostForm("::bad url", url.Values{"a": {"1"}})
			},
			check: invalid,
		},
		{
			name: "Post to an unparsable URL",
			start: func(s *httpfutures.Session, b io.Reader) *httpfutures.Future {
				return s.Post("::bad url", "text/plain", b)
			},
			posts: true,
			check: invalid,
		},
		{
			name: "Post with no host",
			start: func(s *httpfutures.Session, b io.Reader) *httpfutures.Future {
				return s.Post("http://", "text/plain", b)
			},
			posts: true,
			check: invalid,
		},
		{
			name:  "Post to a refused address",
			start: func(s *httpfutures.Session, b io.Reader) *httpfutures.Future { return s.Post(refused, "text/plain", b) },
			posts: true,
			check: func(t *testing.T, err error) {
				require.ErrorIs(t, err, syscall.ECONNREFUSED)
				assert.NotErrorIs(t, err, httpfutures.ErrInvalidRequest)
			},
		},
		{
			name:  "Do with a nil request",
			start: func(s *httpfutures.Session, _ io.Reader) *httpfutures.Future { return s.Do(nil) },
			check: invalid,
		},
	}
	s := newSession(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &countingBody{Reader: strings.NewReader("payload")}
			f := tt.start(s, b)
			require.NotNil(t, f, "the error is in the Future, not in place of it")
			resp, err := f.Result()
			assert.Nil(t, resp, "a response or an error, never both")
			require.Error(t, err)
			tt.check(t, err)
			if tt.posts {
				require.Eventually(t, func() bool { return b.closes.Load() >= 1 }, 5*time.Second, time.Millisecond)
				assert.Equal(t, int32(1), b.closes.Load(), "the request body is closed exactly once")
			}
		})
	}
}

func TestAsCompleted(t *testing.T) {
	t.Run("in completion order", func(t *testing.T) {
		s := newSession(t)
		var servers []*httptest.Server
		var gates []*gate
		for range 3 {
			ts, g := newGateServer(t)
			servers, gates = append(servers, ts), append(gates, g)
		}
		fs := make([]*httpfutures.Future, 3)
		index := make(map[*httpfutures.Future]int)
		for i := range fs {
			fs[i] = s.Get(servers[i].URL)
			index[fs[i]] = i
		}
		for _, g := range gates {
			<-g.arrived // all three are running: only their gates decide the order
			openLater(t, g)
		}

		order := []int{2, 0, 1}
		gates[order[0]].open()
		var got []int
		for f := range httpfutures.AsCompleted(fs[0], nil, fs[1], fs[2], fs[1], nil, fs[0]) {
			require.NotNil(t, f, "nil futures are skipped")
			got = append(got, index[f])
			_, err := f.Result()
			require.NoError(t, err)
			if len(got) < len(order) {
				gates[order[len(got)]].open()
			}
		}
		assert.Equal(t, order, got, "each future once, as it resolved")
	})

	t.Run("already resolved", func(t *testing.T) {
		s := newSession(t)
		failed := s.Get("")
		var got []*httpfutures.Future
		for f := range httpfutures.AsCompleted(failed, failed) {
			got = append(got, f)
		}
		assert.Equal(t, []*httpfutures.Future{failed}, got)
	})

	t.Run("none", func(t *testing.T) {
		for range httpfutures.AsCompleted() {
			t.Fatal("nothing to yield")
		}
		for range httpfutures.AsCompleted(nil, nil) {
			t.Fatal("nothing to yield")
		}
	})

	t.Run("stopping early leaks nothing", func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the session and servers are closed
		s := newSession(t)
		fast, fg := newGateServer(t)
		slow, sg := newGateServer(t)
		ff, sf := s.Get(fast.URL), s.Get(slow.URL)
		<-fg.arrived
		<-sg.arrived
		openLater(t, sg)

		fg.open()
		var first *httpfutures.Future
		for f := range httpfutures.AsCompleted(sf, ff) {
			first = f
			break
		}
		assert.Same(t, ff, first)
		sg.open()
		_, err := sf.Result()
		require.NoError(t, err, "the future left behind goes on")
	})
}

func TestWaitAll(t *testing.T) {
	ts := newEchoServer(t)
	refused := refusedURL(t)

	t.Run("all succeed", func(t *testing.T) {
		s := newSession(t)
		fs := []*httpfutures.Future{s.Get(ts.URL + "/0"), nil, s.Get(ts.URL + "/1"), s.Get(ts.URL + "/2")}
		require.NoError(t, httpfutures.WaitAll(context.Background(), fs...))
		for _, f := range fs {
			if f == nil {
				continue
			}
			select {
			case <-f.Done():
			default:
				t.Fatal("WaitAll returned before every future resolved")
			}
		}
	})

	t.Run("the first error in argument order", func(t *testing.T) {
		s := newSession(t)
		ok := s.Get(ts.URL)
		invalid := s.Get("")      // resolves at once
		refused := s.Get(refused) // resolves later
		err := httpfutures.WaitAll(context.Background(), ok, refused, invalid)
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.NotErrorIs(t, err, httpfutures.ErrInvalidRequest)
		err = httpfutures.WaitAll(context.Background(), ok, invalid, refused)
		require.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
		_, err = ok.Result()
		require.NoError(t, err)
	})

	t.Run("context ends first", func(t *testing.T) {
		s := newSession(t)
		stalled, g := newGateServer(t)
		done := s.Get(ts.URL)
		pending := s.Get(stalled.URL)
		<-g.arrived
		openLater(t, g)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := httpfutures.WaitAll(ctx, done, pending)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		select {
		case <-pending.Done():
			t.Fatal("the pending future resolved")
		default:
		}
		g.open()
		require.NoError(t, httpfutures.WaitAll(context.Background(), done, pending), "the futures went on")
	})
}

func TestTypedDecoding(t *testing.T) {
	type item struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	missing := "no such item " + strings.Repeat("-", 4<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/item", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accept", r.Header.Get("Accept"))
		io.WriteString(w, `{"name":"gopher","n":3}`)
	})
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, missing, http.StatusNotFound)
	})
	mux.HandleFunc("/malformed", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"name":`) })
	mux.HandleFunc("/number", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "42") })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	atoi := func(resp *http.Response) (int, error) {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(string(b))
	}

	t.Run("GetJSON", func(t *testing.T) {
		s := newSession(t)
		f := httpfutures.GetJSON[item](s, ts.URL+"/item")
		v, err := f.Value()
		require.NoError(t, err)
		assert.Equal(t, item{Name: "gopher", N: 3}, v)
		resp, err := f.Result()
		require.NoError(t, err)
		assert.Equal(t, "application/json", resp.Header.Get("X-Accept"))
	})

	t.Run("status not 2xx", func(t *testing.T) {
		s := newSession(t)
		v, err := httpfutures.GetJSON[item](s, ts.URL+"/missing").Value()
		assert.Zero(t, v)
		var se *httpfutures.StatusError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, http.StatusNotFound, se.StatusCode)
		assert.Equal(t, "404 Not Found", se.Status)
		assert.Len(t, se.Body, 1<<10, "the start of the body")
		assert.True(t, strings.HasPrefix(missing, string(se.Body)), "the start of the body: %q", se.Body)
	})

	t.Run("malformed JSON", func(t *testing.T) {
		s := newSession(t)
		f := httpfutures.GetJSON[item](s, ts.URL+"/malformed")
		v, err := f.Value()
		require.Error(t, err)
		assert.Zero(t, v)
		assert.ErrorContains(t, err, "/malformed")
		resp, err := f.Result()
		assert.Nil(t, resp, "the response is discarded")
		require.Error(t, err)
	})

	t.Run("invalid URL", func(t *testing.T) {
		s := newSession(t)
		_, err := httpfutures.GetJSON[item](s, "::bad url").Value()
		require.ErrorIs(t, err, httpfutures.ErrInvalidRequest)
	})

	t.Run("custom decoder", func(t *testing.T) {
		s := newSession(t)
		v, err := httpfutures.Decode(s, get(t, ts.URL+"/number"), atoi).Value()
		require.NoError(t, err)
		assert.Equal(t, 42, v)

		boom := errors.New("boom")
		f := httpfutures.Decode(s, get(t, ts.URL+"/number"), func(*http.Response) (int, error) { return 7, boom })
		v, err = f.Value()
		require.ErrorIs(t, err, boom)
		assert.Zero(t, v)
	})

	t.Run("the decoder runs in the worker before the Future resolves", func(t *testing.T) {
		s := newSession(t)
		entered := make(chan struct{})
		release := make(chan struct{})
		done := sync.OnceFunc(func() { close(release) })
		t.Cleanup(done) // before the session closes, which waits for the decoder
		f := httpfutures.Decode(s, get(t, ts.URL+"/number"), func(resp *http.Response) (int, error) {
			close(entered)
			<-release
			return atoi(resp)
		})
		<-entered // not called by Value: nothing has waited for the Future yet
		select {
		case <-f.Done():
			t.Fatal("the Future resolved while its decoder ran")
		default:
		}
		done()
		v, err := f.Value()
		require.NoError(t, err)
		assert.Equal(t, 42, v)
	})

	t.Run("ValueContext returns when the context ends", func(t *testing.T) {
		s := newSession(t)
		stalled, g := newGateServer(t)
		f := httpfutures.Decode(s, get(t, stalled.URL+"/slow"), func(resp *http.Response) (string, error) {
			b, err := io.ReadAll(resp.Body)
			return string(b), err
		})
		<-g.arrived
		openLater(t, g)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		v, err := f.ValueContext(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Zero(t, v)
		g.open()
		v, err = f.ValueContext(context.Background())
		require.NoError(t, err, "the request went on")
		assert.Equal(t, "/slow", v)
	})
}

func TestSessionHooks(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"i": r.URL.Query().Get("i"), "token": r.Header.Get("X-Token")})
	}))
	t.Cleanup(ts.Close)

	var parsed sync.Map // request URL → the JSON of its response, parsed in the worker
	var mu sync.Mutex
	calls := make(map[string][]string) // request URL → the hooks that ran, in order
	record := func(resp *http.Response, hook string) {
		mu.Lock()
		defer mu.Unlock()
		u := resp.Request.URL.String()
		calls[u] = append(calls[u], hook)
	}
	s := newSession(t, httpfutures.WithHooks(httpfutures.Hooks{
		Request: func(r *http.Request) { r.Header.Set("X-Token", "secret") },
		Response: func(resp *http.Response) error {
			record(resp, "session")
			var v map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				return err
			}
			parsed.Store(resp.Request.URL.String(), v)
			return nil
		},
	}))

	var fs []*httpfutures.Future
	for i := range 3 {
		req := get(t, fmt.Sprintf("%s/?i=%d", ts.URL, i))
		if i == 1 {
			req = req.WithContext(httpfutures.ContextWithHooks(req.Context(), httpfutures.Hooks{
				Response: func(resp *http.Response) error {
					record(resp, "request")
					if _, ok := parsed.Load(resp.Request.URL.String()); !ok {
						return errors.New("the session's hook has not run yet")
					}
					return nil
				},
			}))
		}
		fs = append(fs, s.Do(req))
	}
	for i, f := range fs {
		resp, err := f.Result()
		require.NoError(t, err)
		u := f.Request().URL.String()
		v, ok := parsed.Load(u)
		require.True(t, ok, "the hook parsed the response before the Future resolved")
		want := map[string]string{"i": strconv.Itoa(i), "token": "secret"}
		assert.Equal(t, want, v)
		wantJSON, err := json.Marshal(want)
		require.NoError(t, err)
		assert.Equal(t, string(wantJSON)+"\n", body(t, resp), "the caller still reads the full body")
		mu.Lock()
		if i == 1 {
			assert.Equal(t, []string{"session", "request"}, calls[u], "the request's hooks run after the session's")
		} else {
			assert.Equal(t, []string{"session"}, calls[u])
		}
		mu.Unlock()
	}
}

func TestSessionHooksSeeTheFinalResponse(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/new", http.StatusFound)
	})
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"moved":true}`) })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)

	var mu sync.Mutex
	var seen []string // each hook that ran, with the path and the body of the response it was given
	parseJSON := func(name string) httpfutures.Hooks {
		return httpfutures.Hooks{Response: func(resp *http.Response) error {
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			mu.Lock()
			seen = append(seen, name+" "+resp.Request.URL.Path+" "+string(b))
			mu.Unlock()
			var v map[string]bool
			return json.Unmarshal(b, &v)
		}}
	}
	s := newSession(t, httpfutures.WithHooks(parseJSON("session")))
	req := get(t, ts.URL+"/old")
	req = req.WithContext(httpfutures.ContextWithHooks(req.Context(), parseJSON("request")))

	resp, err := s.Do(req).Result()
	mu.Lock()
	assert.Equal(t, []string{`session /new {"moved":true}`, `request /new {"moved":true}`}, seen,
		"the session's hooks, like the request's, run once, on the final response")
	mu.Unlock()
	require.NoError(t, err)
	assert.Equal(t, "/new", resp.Request.URL.Path)
	assert.Equal(t, `{"moved":true}`, body(t, resp), "the caller reads the full body")
}

func TestSessionClose(t *testing.T) {
	ts, g := newGateServer(t)
	counted := newEchoServer(t)
	s := httpfutures.NewSession(httpfutures.WithWorkers(1))

	running := s.Get(ts.URL + "/running")
	<-g.arrived
	openLater(t, g)
	b := &countingBody{Reader: strings.NewReader("payload")}
	queued := []*httpfutures.Future{
		s.Get(counted.URL + "/2"),
		s.Post(counted.URL+"/3", "text/plain", b),
		s.PostForm(counted.URL+"/4", url.Values{"a": {"1"}}),
	}
	require.NoError(t, s.Close(), "Close returns without waiting for the running request")
	for _, f := range queued {
		resp, err := f.Result()
		assert.Nil(t, resp)
		require.ErrorIs(t, err, httpfutures.ErrClosed)
	}
	assert.Equal(t, int32(1), b.closes.Load(), "the body of a request never sent is closed")
	_, err := running.Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed, "the running request was stopped")
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, int64(0), counted.hits.Load(), "queued requests never reached the network")
	_, err = s.Get(counted.URL).Result()
	require.ErrorIs(t, err, httpfutures.ErrClosed, "a closed session takes no new requests")
}

func TestSessionShutdown(t *testing.T) {
	ts, g := newGateServer(t)
	s := httpfutures.NewSession(httpfutures.WithWorkers(1))
	var fs []*httpfutures.Future
	for i := range 3 {
		fs = append(fs, s.Get(fmt.Sprintf("%s/%d", ts.URL, i)))
	}
	<-g.arrived
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	var early []*httpfutures.Future // submitted before Shutdown took effect: drained as well
	require.Eventually(t, func() bool {
		f := s.Get(ts.URL + "/late")
		select {
		case <-f.Done():
			_, err := f.Result()
			return errors.Is(err, httpfutures.ErrClosed)
		default:
			early = append(early, f)
			return false
		}
	}, 5*time.Second, time.Millisecond, "no new requests once Shutdown has begun")
	select {
	case <-done:
		t.Fatal("Shutdown returned with requests still queued")
	default:
	}
	g.open()
	require.NoError(t, <-done)
	require.NoError(t, httpfutures.WaitAll(context.Background(), early...))
	for i, f := range fs {
		resp, err := f.Result()
		require.NoError(t, err, "queued requests were sent and answered")
		assert.Equal(t, fmt.Sprintf("/%d", i), body(t, resp))
	}
}

func TestSessionShutdownLetsRunningRequestsRedirect(t *testing.T) {
	tests := []struct {
		name string
		stop func(*httpfutures.Session) error
	}{
		{"Shutdown", func(s *httpfutures.Session) error { return s.Shutdown(context.Background()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			release := make(chan struct{})
			answer := sync.OnceFunc(func() { close(release) })
			mux := http.NewServeMux()
			mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
				arrived <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				http.Redirect(w, r, "/done", http.StatusFound)
			})
			mux.HandleFunc("/done", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "done") })
			ts := httptest.NewServer(mux)
			t.Cleanup(ts.Close)
			t.Cleanup(answer)
			s := httpfutures.NewSession()

			running := s.Get(ts.URL + "/slow")
			<-arrived
			done := make(chan error, 1)
			go func() { done <- tt.stop(s) }()
			require.Eventually(t, func() bool {
				_, err := s.Get(ts.URL + "/done").Result()
				return errors.Is(err, httpfutures.ErrClosed)
			}, 5*time.Second, time.Millisecond, "no new requests once the session stops")
			answer()
			require.NoError(t, <-done)
			resp, err := running.Result()
			require.NoError(t, err, "a request running when the session began to stop follows its redirect")
			assert.Equal(t, "/done", resp.Request.URL.Path)
			assert.Equal(t, "done", body(t, resp))
		})
	}
}

// The client's Timeout counts differently on the two ways a Session sends: Client(), an
// http.Client over the AsyncTransport, counts the time a request waits in the queue, as
// http.Client counts all its Transport's time; the Futures' requests run the client in a worker,
// once out of the queue, so their Timeout counts the round trips alone.
func TestSessionClientTimeoutCountsTheQueue(t *testing.T) {
	ts, g := newGateServer(t)
	s := newSession(t, httpfutures.WithWorkers(1), httpfutures.WithClient(&http.Client{Timeout: 300 * time.Millisecond}))
	holder := s.Transport().StartRoundTrip(get(t, ts.URL+"/hold")) // the only worker, until the gate opens
	require.Equal(t, "/hold", <-g.arrived)

	queued := s.Get(ts.URL + "/future")
	_, err := s.Client().Get(ts.URL + "/client")
	var ne net.Error
	require.ErrorAs(t, err, &ne, "the synchronous client timed out while its request waited in the queue")
	assert.True(t, ne.Timeout())
	assert.Equal(t, 1, s.Stats().InFlight, "only the holder ran")
	assert.Equal(t, 1, s.Stats().Queued, "the Future's request waits on, the client's left the queue unsent")

	g.open()
	_, err = holder.Result()
	require.NoError(t, err)
	resp, err := queued.Result()
	require.NoError(t, err, "the Future's request waited longer than the Timeout in the queue, and was not timed out for it")
	assert.Equal(t, "/future", body(t, resp))
}
