// Package compat has no API: its tests run client libraries that users put an AsyncTransport
// under (resty and go-retryablehttp), unchanged, against loopback servers, so that a change that
// breaks them shows in CI. Each library meets what users meet with it: JSON decoded and a body
// left unclosed, retries, redirects, and TLS configured on the transport underneath.
package compat
