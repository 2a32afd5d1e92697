package httptunnel

import "errors"

// Causes of a tunnel's end. They are the context cause of the ctx passed to
// ConnHandler.ServeConn and are wrapped (in a *net.OpError) by the conn's Write once the
// tunnel has ended; Read returns io.EOF instead, like a TCP conn whose peer went away.
var (
	// ErrClientClosed means the client sent /close/<id>/<seq>.
	ErrClientClosed = errors.New("httptunnel: tunnel closed by client")
	// ErrIdleTimeout means no request came for the tunnel for Config.IdleTimeout.
	ErrIdleTimeout = errors.New("httptunnel: tunnel idle timeout")
	// ErrServerClosed means Server.Close was called.
	ErrServerClosed = errors.New("httptunnel: server closed")
	// ErrInputStalled means the handler did not read the client's bytes for
	// Config.IdleTimeout while a /send waited for room in the inbound buffer.
	ErrInputStalled = errors.New("httptunnel: handler stopped reading")
)

// Errors of the request path parser; they never leave the package.
var (
	// errNotFound: not an RTMPT path (404).
	errNotFound = errors.New("httptunnel: not an rtmpt path")
	// errBadSeq: an RTMPT path whose sequence number is not a canonical decimal uint64 (400).
	errBadSeq = errors.New("httptunnel: bad sequence number")
)
