package httpfutures

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Why a failed attempt was not tried again. A *RetryError wraps one of them, or ErrThrottled, or
// an error matching context.DeadlineExceeded if the retry would have been due after the
// request's deadline.
var (
	// ErrRetriesExhausted: the request failed on every attempt the policy allows.
	ErrRetriesExhausted = errors.New("httpfutures: retries exhausted")
	// ErrNotReplayable: the request has a body that cannot be sent again (no GetBody).
	ErrNotReplayable = errors.New("httpfutures: request body cannot be replayed")
	// ErrNotIdempotent: the method is not idempotent (POST, PATCH), the request has no
	// Idempotency-Key, and the policy does not retry such requests.
	ErrNotIdempotent = errors.New("httpfutures: request is not idempotent")
	// ErrRetryBudget: retrying would exceed the retry budget.
	ErrRetryBudget = errors.New("httpfutures: retry budget exhausted")
)

// RetryPolicy says which failed attempts of a request are tried again, and when. It composes
// go-retryablehttp's policy and backoff functions; its zero value retries as go-retryablehttp's
// client does by default, with the safety of this package: each attempt goes back through the
// Scheduler (paced, limited and fair, with no worker held while it waits), Retry-After is capped,
// only replayable and idempotent requests are retried, and a budget keeps a failing upstream from
// a retry storm.
type RetryPolicy struct {
	// MaxRetries is how many times a request may be tried again after its first attempt. Zero
	// means 4.
	MaxRetries int

	// CheckRetry decides whether an attempt failed in a way worth retrying. If nil,
	// retryablehttp.DefaultRetryPolicy is used: connection errors, 429, and 5xx but 501.
	CheckRetry retryablehttp.CheckRetry

	// Backoff says how long to wait before the next attempt, given MinWait, MaxWait, the number
	// of the attempt that failed (0 for the first) and its response. If nil,
	// retryablehttp.DefaultBackoff is used: exponential from MinWait, or Retry-After on a 429 or
	// 503. The wait is capped by WithMaxRetryAfter, whatever the Backoff returns.
	Backoff retryablehttp.Backoff

	// MinWait and MaxWait bound the Backoff. Zero means 1s and 30s.
	MinWait, MaxWait time.Duration

	// RetryNonIdempotent retries POST and PATCH requests too. Without it, they are retried only
	// if they carry an Idempotency-Key header.
	RetryNonIdempotent bool

	// Budget bounds the retries of a transport, over all its requests.
	Budget RetryBudget

	// AttemptTimeout, if not zero, bounds each attempt: one that takes longer (a server that
	// stalls) fails with context.DeadlineExceeded and is judged by CheckRetry like any failure.
	// The request's own context bounds all attempts together.
	AttemptTimeout time.Duration

	// MaxDrain is how much of a failed attempt's response body is read, so that its connection
	// can be reused, before it is closed. Zero means 4 KiB.
	MaxDrain int64
}

// A RetryBudget bounds retries to a share of requests: over any Window, at most Ratio retries per
// request sent, or MinRetries, whichever is more. Its zero value allows 20% over 10 seconds, with
// at least 10 retries.
type RetryBudget struct {
	Ratio      float64       // zero means 0.2; math.Inf(1) turns the budget off
	MinRetries int           // zero means 10
	Window     time.Duration // zero means 10s
}

// WithRetry makes a transport or session retry failed attempts according to p.
// It configures a transport or a session.
func WithRetry(p RetryPolicy) Option {
	nonNegative("WithRetry MaxRetries", int64(p.MaxRetries))
	nonNegative("WithRetry MinWait", int64(p.MinWait))
	nonNegative("WithRetry MaxWait", int64(p.MaxWait))
	nonNegative("WithRetry MaxDrain", p.MaxDrain)
	nonNegative("WithRetry AttemptTimeout", int64(p.AttemptTimeout))
	nonNegative("WithRetry Budget.MinRetries", int64(p.Budget.MinRetries))
	nonNegative("WithRetry Budget.Window", int64(p.Budget.Window))
	if p.Budget.Ratio < 0 || math.IsNaN(p.Budget.Ratio) {
		panic(fmt.Sprintf("httpfutures: WithRetry Budget.Ratio: invalid value %v", p.Budget.Ratio))
	}
	return optionFunc(func(c *config) { c.retry = &p })
}

// RetryError is the error of a request whose last attempt failed with no response (a
// connection refused or reset, a timeout) and was not tried again. An attempt that got a
// response, whatever its status, resolves the Future with that response, as a RoundTripper
// does: Future.Attempts tells how many were made.
type RetryError struct {
	Attempts int            // attempts made, the first included
	Reason   error          // why it was not tried again: ErrRetriesExhausted, ErrNotReplayable, ...
	Err      error          // the last attempt's error, or the CheckRetry error for it; may be nil
	Response *http.Response // always nil: an attempt with a response resolves the Future with it
}

// Error tells the reason and the last attempt's outcome.
func (e *RetryError) Error() string {
	last := "no response"
	switch {
	case e.Response != nil:
		last = e.Response.Status
	case e.Err != nil:
		last = e.Err.Error()
	}
	return fmt.Sprintf("%v after %d attempt(s): %s", e.Reason, e.Attempts, last)
}

// Unwrap returns the reason and the last attempt's error, so that errors.Is matches either.
func (e *RetryError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// retrier is a RetryPolicy with its defaults filled in, and its budget.
type retrier struct {
	RetryPolicy
	budget retryBudget
}

// The defaults of a RetryPolicy and a RetryBudget, for their zero fields.
const (
	defaultMaxRetries   = 4
	defaultMinWait      = time.Second
	defaultMaxWait      = 30 * time.Second
	defaultMaxDrain     = 4 << 10
	defaultBudgetRatio  = 0.2
	defaultBudgetMin    = 10
	defaultBudgetWindow = 10 * time.Second
)

// withDefaults returns p with its zero fields set to their defaults.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = defaultMaxRetries
	}
	if p.CheckRetry == nil {
		p.CheckRetry = retryablehttp.DefaultRetryPolicy
	}
	if p.Backoff == nil {
		p.Backoff = retryablehttp.DefaultBackoff
	}
	if p.MinWait == 0 {
		p.MinWait = defaultMinWait
	}
	if p.MaxWait == 0 {
		p.MaxWait = defaultMaxWait
	}
	if p.MaxDrain == 0 {
		p.MaxDrain = defaultMaxDrain
	}
	p.Budget = p.Budget.withDefaults()
	return p
}

// newRetrier returns the retrier of p, whose defaults are filled in.
func newRetrier(p RetryPolicy) *retrier {
	r := &retrier{RetryPolicy: p}
	r.budget.init(p.Budget)
	return r
}

// A verdict is a retry policy's judgment of an attempt.
type verdict struct {
	resp  *http.Response // the response to resolve with, its body in memory unless it streams
	retry bool           // try again after wait; the attempt's response was disposed of
	wait  time.Duration
}

// after judges an attempt of f that ended with resp or err: to be tried again after a wait, or
// resolved with the verdict's response or the error returned, the response's body read into
// memory unless f streams. ctx is the request's own context, not the attempt's.
func (r *retrier) after(t *AsyncTransport, f *Future, ctx context.Context, resp *http.Response, err error) (verdict, error) {
	attempts := int(f.attempts.Load())
	if attempts == 1 {
		r.budget.add(time.Now(), 1, 0)
	}
	again, checkErr := r.CheckRetry(ctx, resp, err)
	if checkErr == nil && !again && err == nil && !f.is(flagStream) {
		// The body is part of the attempt: a connection reset halfway through it fails the
		// attempt too, and is judged as such.
		if err = readBody(resp, t.maxBody); err != nil {
			resp = nil
			var re *bodyReadError
			if !errors.As(err, &re) {
				return verdict{}, err // too large: no attempt will do better
			}
			again, checkErr = r.CheckRetry(ctx, nil, re.err)
		}
	}
	if !again {
		if checkErr != nil { // as in retryablehttp: the policy's error stands for the attempt's
			discard(resp, 0)
			return verdict{}, fmt.Errorf("httpfutures: retry policy: %w", checkErr)
		}
		return verdict{resp: resp}, err
	}
	if checkErr != nil {
		err = checkErr
	}
	wait := r.Backoff(r.MinWait, r.MaxWait, attempts-1, resp)
	wait = min(max(wait, 0), t.sched.maxRetryAfter)
	if reason := r.refuse(t, f, ctx, wait); reason != nil {
		return giveUp(resp, &RetryError{Attempts: attempts, Reason: reason, Err: err})
	}
	if hasBody(f.req) {
		body, gerr := f.req.GetBody()
		if gerr != nil {
			return giveUp(resp, &RetryError{Attempts: attempts, Reason: ErrNotReplayable, Err: gerr})
		}
		f.moreState().nextBody = body
	}
	if fn := t.sched.obs.Retried; fn != nil {
		tell2(fn, f, retryOf(attempts, wait, resp, err))
	}
	discard(resp, r.MaxDrain)
	t.countRetry()
	return verdict{retry: true, wait: wait}, nil
}

// retryOf describes an attempt that is to be tried again after wait, for an Observer.
func retryOf(attempt int, wait time.Duration, resp *http.Response, err error) Retry {
	r := Retry{Attempt: attempt, Wait: wait, Err: err}
	if resp != nil {
		r.StatusCode, r.Err = resp.StatusCode, nil
	}
	return r
}

// giveUp is the verdict on an attempt that is not tried again: its response, if it had one, its
// body intact (a RoundTripper returns a response whatever its status), and err if it had none.
func giveUp(resp *http.Response, err *RetryError) (verdict, error) {
	if resp != nil {
		return verdict{resp: resp}, nil
	}
	return verdict{}, err
}

// refuse returns why f may not be tried again after wait, or nil. ctx is the request's own
// context: a retry due after its deadline is not waited for. A retry its host's adaptive
// throttle rejects is not either.
func (r *retrier) refuse(t *AsyncTransport, f *Future, ctx context.Context, wait time.Duration) error {
	switch {
	case int(f.attempts.Load()) > r.MaxRetries:
		return ErrRetriesExhausted
	case !r.RetryNonIdempotent && !idempotent(f.req):
		return ErrNotIdempotent
	case hasBody(f.req) && f.req.GetBody == nil:
		return ErrNotReplayable
	case retryUnmet(ctx, wait):
		return errRetryDeadline
	case t.sched.throttle != nil && t.sched.throttleRetry(f.host):
		return f.host.guard.throttled
	case !r.budget.take(time.Now()):
		return ErrRetryBudget // checked last: a retry allowed is spent at once
	}
	return nil
}

func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// idempotent reports whether req may be sent twice: its method is idempotent (RFC 9110), or it
// carries an Idempotency-Key.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// discard reads up to limit bytes of resp's body, so that its connection can be reused, and
// closes it.
func discard(resp *http.Response, limit int64) {
	if resp == nil {
		return
	}
	if limit > 0 {
		io.CopyN(io.Discard, resp.Body, limit)
	}
	resp.Body.Close()
}

// retryBudget counts requests and retries over its window, and spends retries from it.
type retryBudget struct {
	ratio      float64
	minRetries int

	mu     sync.Mutex
	counts window // requests (a) and retries (b); requires mu held
}

// withDefaults returns c with its zero fields set to their defaults.
func (c RetryBudget) withDefaults() RetryBudget {
	if c.Ratio == 0 {
		c.Ratio = defaultBudgetRatio
	}
	if c.MinRetries == 0 {
		c.MinRetries = defaultBudgetMin
	}
	if c.Window == 0 {
		c.Window = defaultBudgetWindow
	}
	return c
}

// init sets the budget up as c says, its defaults filled in.
func (b *retryBudget) init(c RetryBudget) {
	b.ratio, b.minRetries = c.Ratio, c.MinRetries
	b.counts.init(c.Window)
}

func (b *retryBudget) add(now time.Time, reqs, retries int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.counts.add(now, reqs, retries)
}

// take spends a retry from the budget at now, if one fits in it.
func (b *retryBudget) take(now time.Time) bool {
	if math.IsInf(b.ratio, 1) {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	reqs, retries := b.counts.sums(now)
	if float64(retries+1) > max(float64(b.minRetries), b.ratio*float64(reqs)) {
		return false
	}
	b.counts.add(now, 0, 1)
	return true
}
