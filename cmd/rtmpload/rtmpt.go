package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// A minimal RTMPT client (shared/reference/rtmpt.md §3): each tunnel is a
// net.Conn whose writes are buffered and whose reads drive the HTTP
// requests, exactly like ffmpeg's rtmphttp.c: when the last reply is used
// up, POST /send/<id>/<seq> with what is buffered, or, with nothing to
// send, sleep 50 ms if the last reply was empty and POST /idle/<id>/<seq>.
// No goroutine of its own: the player goroutine does the requests.

// rtmptIdleDelay is how long a client waits after an empty reply before its
// next idle request (ffmpeg rtmphttp.c: 50 ms).
const rtmptIdleDelay = 50 * time.Millisecond

// maxRTMPTReply caps one reply body.
const maxRTMPTReply = 64 << 20

// errRTMPT is a tunnel-level failure.
var errRTMPT = errors.New("rtmpload: rtmpt")

// rtmptClient opens tunnels to one HTTP address; its http.Client is shared
// by every tunnel (one keep-alive TCP connection per busy tunnel).
type rtmptClient struct {
	base string // http://host:port, immutable
	hc   *http.Client
}

func newRTMPTClient(addr string, conns int) *rtmptClient {
	tr := &http.Transport{
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &rtmptClient{base: "http://" + addr, hc: &http.Client{Transport: tr}}
}

// closeIdle closes the client's idle keep-alive connections.
func (c *rtmptClient) closeIdle() { c.hc.CloseIdleConnections() }

// post sends one request and returns its body (at most maxRTMPTReply bytes).
func (c *rtmptClient) post(ctx context.Context, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-fcs")
	req.Header.Set("User-Agent", "Shockwave Flash")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRTMPTReply))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %w", path, resp.Status, errRTMPT)
	}
	return b, nil
}

// open starts a tunnel: POST /open/1 with one 0x00 byte, reply "<id>\n".
func (c *rtmptClient) open(ctx context.Context) (net.Conn, error) {
	b, err := c.post(ctx, "/open/1", []byte{0})
	if err != nil {
		return nil, fmt.Errorf("rtmpt open: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, "/ ") {
		return nil, fmt.Errorf("rtmpt open: bad session id %q: %w", id, errRTMPT)
	}
	return &rtmptConn{c: c, id: id}, nil
}

// rtmptConn is one tunnel as a net.Conn. Read and Write are called from one
// goroutine (the player's); Close and the deadline setters may be called
// from another, so the fields they touch are guarded by mu.
type rtmptConn struct {
	c  *rtmptClient // immutable
	id string       // immutable

	// Owned by the reading goroutine.
	seq     int
	in      []byte // reply bytes not read yet
	inBuf   []byte
	lastNil bool // the last reply carried no data

	mu       sync.Mutex
	out      []byte    // guarded by mu: written, not yet sent
	deadline time.Time // guarded by mu: read and write deadline
	closed   bool      // guarded by mu
	cancel   context.CancelFunc
}

var _ net.Conn = (*rtmptConn)(nil)

// Read returns reply bytes, doing send or idle requests until some arrive.
func (t *rtmptConn) Read(p []byte) (int, error) {
	for len(t.in) == 0 {
		if err := t.roundTrip(); err != nil {
			return 0, err
		}
	}
	n := copy(p, t.in)
	t.in = t.in[n:]
	return n, nil
}

// roundTrip does one /send or /idle request.
func (t *rtmptConn) roundTrip() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return net.ErrClosed
	}
	out := t.out
	t.out = nil
	dl := t.deadline
	t.mu.Unlock()
	if len(out) == 0 && t.lastNil {
		d := rtmptIdleDelay
		if !dl.IsZero() {
			d = min(d, time.Until(dl))
		}
		if d > 0 {
			time.Sleep(d)
		}
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !dl.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, dl)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel()
		return net.ErrClosed
	}
	t.cancel = cancel
	t.mu.Unlock()
	defer cancel()

	path := fmt.Sprintf("/idle/%s/%d", t.id, t.seq)
	body := []byte{0}
	if len(out) > 0 {
		path, body = fmt.Sprintf("/send/%s/%d", t.id, t.seq), out
	}
	t.seq++
	b, err := t.c.post(ctx, path, body)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("rtmpt %s: %w", path, os.ErrDeadlineExceeded)
		}
		return fmt.Errorf("rtmpt %s: %w", path, err)
	}
	if len(b) == 0 {
		return fmt.Errorf("rtmpt %s: empty reply: %w", path, errRTMPT)
	}
	t.in = append(t.inBuf[:0], b[1:]...) // b[0] is the polling interval
	t.inBuf = t.in
	t.lastNil = len(t.in) == 0
	return nil
}

// Write buffers p until the next request.
func (t *rtmptConn) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, net.ErrClosed
	}
	t.out = append(t.out, p...)
	return len(p), nil
}

// Close ends the tunnel with POST /close/<id>/<seq> (best effort, 2 s).
func (t *rtmptConn) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.cancel != nil {
		t.cancel()
	}
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// seq may race with a Read in flight; the server answers an old number
	// harmlessly, and the tunnel is reaped on idle anyway.
	_, _ = t.c.post(ctx, fmt.Sprintf("/close/%s/%d", t.id, t.seq), []byte{0})
	return nil
}

// LocalAddr returns a placeholder: a tunnel spans many TCP connections.
func (t *rtmptConn) LocalAddr() net.Addr { return rtmptAddr(t.id) }

// RemoteAddr returns the tunnel's base URL.
func (t *rtmptConn) RemoteAddr() net.Addr { return rtmptAddr(t.c.base) }

// SetDeadline bounds the requests of later reads; a deadline in the past
// also cancels the request in flight.
func (t *rtmptConn) SetDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deadline = d
	if !d.IsZero() && time.Until(d) <= 0 && t.cancel != nil {
		t.cancel()
	}
	return nil
}

// SetReadDeadline is SetDeadline: only reads do I/O.
func (t *rtmptConn) SetReadDeadline(d time.Time) error { return t.SetDeadline(d) }

// SetWriteDeadline does nothing: writes only buffer.
func (t *rtmptConn) SetWriteDeadline(time.Time) error { return nil }

type rtmptAddr string

func (a rtmptAddr) Network() string { return "rtmpt" }
func (a rtmptAddr) String() string  { return string(a) }
