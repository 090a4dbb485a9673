package httpfutures_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/httpfutures/httpfutures"
)

// clientOutcome is what a client gave for a request: what the test compares.
type clientOutcome struct {
	Status   int
	Body     string
	FinalURL string
	Err      string
	URLError bool
}

func outcomeOf(t *testing.T, resp *http.Response, err error) clientOutcome {
	t.Helper()
	var o clientOutcome
	if err != nil {
		var ue *url.Error
		o.Err, o.URLError = err.Error(), errors.As(err, &ue)
	}
	if resp == nil {
		return o
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return o // a Future has a response or an error, never both; the client's body is closed
	}
	require.NoError(t, rerr)
	o.Status, o.FinalURL, o.Body = resp.StatusCode, resp.Request.URL.String(), string(b)
	return o
}

// A Session request gives what the client it wraps gives for the same request, whether its
// first round trip is sent by the client or without it: the response, the redirects followed
// (with their Referer, methods and bodies), the policy's verdicts, and each error as the
// client's *url.Error with the client's text. Where the client returns a response beside an
// error (a CheckRedirect that fails), the Future has the error alone.
func TestSessionAnswersAsItsClient(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/show", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		cookie := ""
		if c, err := r.Cookie("c"); err == nil {
			cookie = c.Value
		}
		fmt.Fprintf(w, "%s %s body=%q referer=%q auth=%q cookie=%q", r.Method, r.URL.Path, b,
			r.Header.Get("Referer"), r.Header.Get("Authorization"), cookie)
	})
	for _, code := range []int{301, 302, 303, 307, 308} {
		mux.HandleFunc(fmt.Sprintf("/r%d", code), func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			http.Redirect(w, r, "/show", code)
		})
		mux.HandleFunc(fmt.Sprintf("/noloc%d", code), func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			io.WriteString(w, "no location")
		})
	}
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/badloc", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://[::1")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/setcookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "c", Value: "v", Path: "/"})
		http.Redirect(w, r, "/show", http.StatusFound)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	gone := httptest.NewServer(mux)
	gone.Close() // its address refuses connections
	withUser := func(raw string) string {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		u.User = url.UserPassword("user", "secret")
		return u.String()
	}
	newReq := func(method, raw, body string) func() *http.Request {
		return func() *http.Request {
			var r io.Reader
			if body != "" {
				r = strings.NewReader(body)
			}
			req, err := http.NewRequest(method, raw, r)
			require.NoError(t, err)
			return req
		}
	}
	stop := errors.New("the policy stops here")

	tests := []struct {
		name   string
		req    func() *http.Request
		client func() *http.Client
	}{
		{name: "no redirect", req: newReq("GET", ts.URL+"/show", "")},
		{name: "HEAD", req: newReq("HEAD", ts.URL+"/show", "")},
		{name: "301", req: newReq("GET", ts.URL+"/r301", "")},
		{name: "302", req: newReq("GET", ts.URL+"/r302", "")},
		{name: "303 turns a POST into a GET", req: newReq("POST", ts.URL+"/r303", "payload")},
		{name: "307 sends the body again", req: newReq("POST", ts.URL+"/r307", "payload")},
		{name: "308 sends the body again", req: newReq("PUT", ts.URL+"/r308", "payload")},
		{name: "307 without GetBody is not followed", req: func() *http.Request {
			req := newReq("POST", ts.URL+"/r307", "payload")()
			req.GetBody = nil
			req.Body = io.NopCloser(req.Body)
			return req
		}},
		{name: "302 without Location", req: newReq("GET", ts.URL+"/noloc302", "")},
		{name: "307 without Location", req: newReq("GET", ts.URL+"/noloc307", "")},
		{name: "a bad Location", req: newReq("GET", ts.URL+"/badloc", "")},
		{name: "too many redirects", req: newReq("GET", ts.URL+"/loop", "")},
		{name: "CheckRedirect fails", req: newReq("GET", ts.URL+"/r302", ""), client: func() *http.Client {
			return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return stop }}
		}},
		{name: "ErrUseLastResponse", req: newReq("GET", ts.URL+"/r302", ""), client: func() *http.Client {
			return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}},
		{name: "connection refused", req: newReq("GET", gone.URL+"/show", "")},
		{name: "connection refused on a POST", req: newReq("POST", gone.URL+"/show", "payload")},
		{name: "a method the client spells", req: newReq("PROPFIND", gone.URL+"/show", "")},
		{name: "HTTPS to an HTTP server", req: newReq("GET", strings.Replace(ts.URL, "http:", "https:", 1)+"/show", "")},
		{name: "user info", req: newReq("GET", withUser(ts.URL+"/show"), "")},
		{name: "user info, refused", req: newReq("GET", withUser(gone.URL+"/show"), "")},
		{name: "user info, redirected", req: newReq("GET", withUser(ts.URL+"/r302"), "")},
		{name: "no header", req: func() *http.Request {
			req := newReq("GET", ts.URL+"/r302", "")()
			req.Header = nil
			return req
		}},
		{name: "RequestURI set", req: func() *http.Request {
			req := newReq("GET", ts.URL+"/show", "")()
			req.RequestURI = "/show"
			return req
		}},
		{name: "a cookie jar", req: newReq("GET", ts.URL+"/setcookie", ""), client: func() *http.Client {
			jar, err := cookiejar.New(nil)
			require.NoError(t, err)
			return &http.Client{Jar: jar}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tt.client
			if client == nil {
				client = func() *http.Client { return &http.Client{} }
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			t.Cleanup(tr.CloseIdleConnections)
			c := client()
			c.Transport = tr
			resp, err := c.Do(tt.req())
			expected := outcomeOf(t, resp, err)

			c = client()
			c.Transport = tr
			s := newSession(t, httpfutures.WithClient(c))
			resp, err = s.Do(tt.req()).Result()
			assert.Equal(t, expected, outcomeOf(t, resp, err))
		})
	}
}

// A Session's GET allocates little beyond what http.Client's own GET does: its first round trip
// is sent without the client when the client would add nothing, and its body is read into one
// allocation beside its reader.
func TestSessionGetAllocations(t *testing.T) {
	ts := newEchoServer(t)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	s := newSession(t, httpfutures.WithClient(&http.Client{Transport: tr}), httpfutures.WithWorkers(1))
	client := testing.AllocsPerRun(200, func() {
		resp, err := c.Get(ts.URL + "/a")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	session := testing.AllocsPerRun(200, func() {
		resp, err := s.Get(ts.URL + "/a").Result()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
	assert.LessOrEqual(t, session-client, 4.0, "http.Client: %v allocations, Session: %v", client, session)
}
