package httptunnel

import (
	"net"
	"syscall"
)

// QuickAckListener wraps a TCP listener for the RTMPT port so that every accepted
// connection acknowledges received data at once (Linux TCP_QUICKACK, re-armed after
// every read, because the kernel leaves quick-ack mode by itself).
//
// Why: ffmpeg writes each RTMPT POST as two writes, the headers and then the body,
// without TCP_NODELAY (rtmphttp.c via http.c http_connect). Nagle's algorithm holds the
// body until the headers are acknowledged, and the server's kernel delays that ACK (up
// to 40 ms) because it expects to piggyback it on a reply, which cannot come before
// the body. Every /send then costs about 40 ms: an ffmpeg RTMPT publisher with
// -rtmp_flush_interval 1 falls behind real time. Acknowledging at once removes the
// stall. On systems without TCP_QUICKACK the listener is returned unchanged.
func QuickAckListener(ln net.Listener) net.Listener {
	if tcpQuickAck == 0 {
		return ln
	}
	if _, ok := ln.(*net.TCPListener); !ok {
		return ln
	}
	return quickAckListener{ln}
}

type quickAckListener struct{ net.Listener }

func (l quickAckListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	qc := &quickAckConn{TCPConn: tc, rc: rc}
	qc.arm()
	return qc, nil
}

// quickAckConn is a *net.TCPConn that re-arms TCP_QUICKACK after every read.
type quickAckConn struct {
	*net.TCPConn
	rc syscall.RawConn // immutable
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		c.arm()
	}
	return n, err
}

func (c *quickAckConn) arm() {
	c.rc.Control(func(fd uintptr) { //nolint:errcheck // best effort
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpQuickAck, 1) //nolint:errcheck // best effort
	})
}
