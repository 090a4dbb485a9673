package httpfutures

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Typed is a Future whose response is decoded into a value of type T in the worker, before the
// Future resolves: the decoding is done in the background, off the caller's goroutine.
type Typed[T any] struct {
	*Future
	value T // written by the worker before the Future resolves
}

// Value waits for the Future and returns the decoded value, or the error of the round trip or
// of the decoding.
func (t *Typed[T]) Value() (T, error) {
	_, err := t.Result()
	return t.value, err
}

// ValueContext is like Value but returns ctx.Err() if ctx ends first, leaving the request to go
// on.
func (t *Typed[T]) ValueContext(ctx context.Context) (T, error) {
	if _, err := t.Wait(ctx); err != nil {
		var zero T
		return zero, err
	}
	return t.value, nil
}

// Decode starts req on s and decodes its response with decode, in the worker, after the hooks.
// An error from decode becomes the Future's error, and the response is discarded.
func Decode[T any](s *Session, req *http.Request, decode func(*http.Response) (T, error)) *Typed[T] {
	t := &Typed[T]{}
	t.Future = s.do(req, func(resp *http.Response) error {
		v, err := decode(resp)
		if err != nil {
			return err
		}
		t.value = v
		return nil
	})
	return t
}

// GetJSON starts a GET of url on s and decodes the JSON response into a T; see DecodeJSON.
func GetJSON[T any](s *Session, url string) *Typed[T] {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return &Typed[T]{Future: failedFuture(s.Transport(), nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err))}
	}
	req.Header.Set("Accept", "application/json")
	return Decode(s, req, DecodeJSON[T])
}

// DecodeJSON decodes a JSON response body into a T. A response whose status is not 2xx is not
// decoded: DecodeJSON returns a *StatusError.
func DecodeJSON[T any](resp *http.Response) (T, error) {
	var v T
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return v, newStatusError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("httpfutures: decoding JSON from %s: %w", resp.Request.URL.Redacted(), err)
	}
	return v, nil
}

// StatusError is the error of a decoding helper given a response whose status is not 2xx.
type StatusError struct {
	StatusCode int
	Status     string
	Body       []byte // the start of the body, at most 1 KiB
}

// Error reports the status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("httpfutures: unexpected status %s", e.Status)
}

func newStatusError(resp *http.Response) *StatusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return &StatusError{StatusCode: resp.StatusCode, Status: resp.Status, Body: body}
}
