package rtmp

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/rtmp/chunk"
)

// Reasons a connection ends, the keys of ServerStats.Closes. Every key is always
// present, so a monitoring series exists (at zero) before its first event.
const (
	CloseClient      = "client_closed" // the peer closed (EOF) or the connection was reset
	CloseTimeout     = "timeout"       // idle publisher (IdleTimeout) or a write that made no progress (WriteTimeout)
	CloseSlow        = "slow"          // evicted by the hub: behind for longer than its SlowGrace
	CloseNoPublisher = "no_publisher"  // a player waited longer than the hub's PlayWait
	CloseKicked      = "kicked"        // relay.Hub.Kick
	CloseBadInput    = "bad_input"     // protocol, chunk or AMF error from the peer, a recovered panic, or a peer that reads none of its replies
	CloseRefused     = "refused"       // Config.Access refused its connect (allow list, --on-connect hook)
	CloseShutdown    = "shutdown"      // Server.Close or the hub closing
)

// Reasons a handshake fails, the keys of ServerStats.HandshakeFailures.
const (
	HandshakeTimeout = "timeout"     // no complete handshake within HandshakeTimeout
	HandshakeBad     = "bad_version" // C0 is not plain RTMP (3): TLS or HTTP on the RTMP port, scanners
	HandshakeClosed  = "closed"      // the peer went away mid-handshake (health checks, port scans)
	HandshakeRefused = "max_conns"   // refused before the handshake: MaxConns reached
)

// Indexes into serverStats, in the order of closeReasons and handshakeReasons.
const (
	iClient = iota
	iTimeout
	iSlow
	iNoPublisher
	iKicked
	iBadInput
	iRefused
	iShutdown
	closeReasonsN
)

const (
	iHandshakeTimeout = iota
	iHandshakeBad
	iHandshakeClosed
	iHandshakeRefused
	handshakeReasonsN
)

var (
	closeReasons     = [closeReasonsN]string{CloseClient, CloseTimeout, CloseSlow, CloseNoPublisher, CloseKicked, CloseBadInput, CloseRefused, CloseShutdown}
	handshakeReasons = [handshakeReasonsN]string{HandshakeTimeout, HandshakeBad, HandshakeClosed, HandshakeRefused}
)

// ServerStats are a server's cumulative counters since New.
type ServerStats struct {
	Accepted          int64            // connections served (TCP, TLS and tunnelled), refused ones included
	Closes            map[string]int64 // connections that completed the handshake, by why they ended (Close* keys)
	HandshakeFailures map[string]int64 // connections that never completed the handshake, by reason (Handshake* keys)
}

// serverStats holds the counters behind ServerStats; each connection touches them
// once when it starts and once when it ends.
type serverStats struct {
	accepted  atomic.Int64
	closes    [closeReasonsN]atomic.Int64
	handshake [handshakeReasonsN]atomic.Int64
}

// Stats returns the server's cumulative counters.
func (s *Server) Stats() ServerStats {
	ss := ServerStats{
		Accepted:          s.stats.accepted.Load(),
		Closes:            make(map[string]int64, closeReasonsN),
		HandshakeFailures: make(map[string]int64, handshakeReasonsN),
	}
	for i, r := range closeReasons {
		ss.Closes[r] = s.stats.closes[i].Load()
	}
	for i, r := range handshakeReasons {
		ss.HandshakeFailures[r] = s.stats.handshake[i].Load()
	}
	return ss
}

// countEnd counts how c ended, err being the reason run logs.
func (c *conn) countEnd(err error) {
	st := &c.srv.stats
	if c.w == nil { // the handshake did not complete (c.w is made right after it)
		i := iHandshakeClosed
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			i = iHandshakeTimeout
		} else if errors.Is(err, errBadHandshake) {
			i = iHandshakeBad
		}
		st.handshake[i].Add(1)
		return
	}
	st.closes[closeReasonIndex(err, c.kicked.Load(), c.srv.base.Err() != nil)].Add(1)
}

// closeReasonIndex classifies the end of a connection that completed its handshake.
func closeReasonIndex(err error, kicked, shuttingDown bool) int {
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return iTimeout
	}
	switch {
	case errors.Is(err, relay.ErrSlowSubscriber):
		return iSlow
	case errors.Is(err, relay.ErrNoPublisher):
		return iNoPublisher
	case kicked:
		return iKicked
	case errors.Is(err, relay.ErrClosed), errors.Is(err, context.Canceled), shuttingDown:
		return iShutdown
	case errors.Is(err, relay.ErrAccessDenied):
		return iRefused
	case err == nil, isClosing(err):
		return iClient
	case errors.Is(err, errProtocol), errors.Is(err, errBacklog), isChunkError(err):
		return iBadInput
	}
	if _, ok := errors.AsType[net.Error](err); ok || errors.Is(err, io.ErrUnexpectedEOF) {
		return iClient // reset by peer and the like
	}
	return iBadInput // AMF decoding errors and the rest come from what the peer sent
}

func isChunkError(err error) bool {
	for _, e := range []error{chunk.ErrMessageTooLarge, chunk.ErrBadChunkSize, chunk.ErrNoPreviousHeader,
		chunk.ErrTooManyChunkStreams, chunk.ErrShortControlMessage} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
