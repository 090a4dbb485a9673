package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/httpfutures/httpfutures"
)

// The kinds that failed requests are grouped by. Error strings differ from request to request
// (local ports, URLs), so the report counts kinds and keeps one message of each as an example.
const (
	kindTimeout  = "timeout"
	kindRefused  = "connection refused"
	kindReset    = "connection reset"
	kindClosed   = "connection closed by peer"
	kindDNS      = "dns lookup failed"
	kindTLS      = "tls"
	kindCanceled = "canceled"
	kindShutdown = "transport closed"
	kindOther    = "other"
)

// ErrorKind names the kind of a request's error, for grouping in the report: a timeout, a
// refused or reset connection, DNS, TLS, and so on.
func ErrorKind(err error) string {
	var (
		netErr   net.Error
		dnsErr   *net.DNSError
		recErr   tls.RecordHeaderError
		certErr  *tls.CertificateVerificationError
		unkAuth  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalErr x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, httpfutures.ErrClosed):
		return kindShutdown
	case errors.Is(err, context.Canceled):
		return kindCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return kindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return kindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return kindReset
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return kindTimeout
		}
		return kindDNS
	case errors.As(err, &netErr) && netErr.Timeout():
		return kindTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return kindClosed
	case errors.As(err, &recErr), errors.As(err, &certErr), errors.As(err, &unkAuth),
		errors.As(err, &hostErr), errors.As(err, &invalErr):
		return kindTLS
	default:
		return kindOther
	}
}

// ErrorKindOf names the kind of a request's error from its message, as a results file keeps
// it: the report of such files groups by the same kinds as a run's, where errorKind reads the
// error itself. The phrases are those of the errors errorKind tells apart.
func ErrorKindOf(msg string) string {
	has := func(phrases ...string) bool {
		for _, p := range phrases {
			if strings.Contains(msg, p) {
				return true
			}
		}
		return false
	}
	switch {
	case isStatusLine(msg):
		return msg // a response that is not a success: its status line is its kind, as in a run
	case has(httpfutures.ErrClosed.Error()):
		return kindShutdown
	case has(context.Canceled.Error()):
		return kindCanceled
	case has("timeout", "deadline exceeded", "Timeout"):
		return kindTimeout
	case has("connection refused"):
		return kindRefused
	case has("connection reset", "connection aborted", "broken pipe"):
		return kindReset
	case has("no such host", "lookup "):
		return kindDNS
	case strings.HasSuffix(msg, "EOF"):
		return kindClosed
	case has("tls: ", "x509: "):
		return kindTLS
	default:
		return kindOther
	}
}

// isStatusLine reports whether msg is a status line as a results file keeps the error of a
// response that is not a success: three digits, then a space and the reason, or nothing.
func isStatusLine(msg string) bool {
	if len(msg) < 3 || len(msg) > 3 && msg[3] != ' ' {
		return false
	}
	for _, c := range msg[:3] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
