package tunneltest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// idleDelay is how long the client waits before an /idle that follows an empty
// reply, as ffmpeg's rtmphttp.c does (50 ms; rtmpt.md §3.3). librtmp does not wait,
// and neither does the Pipelined mode.
const idleDelay = 50 * time.Millisecond

// maxSendBody caps one /send body, below the server's default MaxBodyBytes (1 MiB).
// ffmpeg has no cap, but it never buffers more than rtmp_flush_interval packets.
const maxSendBody = 256 << 10

// closeTimeout bounds Close: the wait for a request in flight and the /close itself.
const closeTimeout = 5 * time.Second

// Option tunes Dial.
type Option func(*options)

type options struct {
	client    *http.Client
	pipelined bool
	tlsConfig *tls.Config
	replay    bool
	idleDelay time.Duration
}

// WithHTTPClient makes Dial send its requests with c, e.g. one whose Transport has
// a Proxy or a TLSClientConfig. The default is a client of its own with one
// keep-alive connection, closed by Close. Ignored in Pipelined mode.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// Pipelined makes the conn behave like librtmp (rtmpt.md §3.1, LR 4405-4481): it
// writes every POST on one raw keep-alive TCP (or TLS, for an https base URL)
// connection as soon as the RTMP side writes, without waiting for the reply to the
// previous one, and reads the replies in order when the RTMP side reads; it sends
// /idle only when no reply is outstanding, and /close without reading its reply.
func Pipelined() Option { return func(o *options) { o.pipelined = true } }

// WithTLSConfig sets the TLS configuration of the raw connection in Pipelined mode
// for an https base URL. The default verifies nothing (tests use self-signed
// certificates).
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tlsConfig = c } }

// WithReplay makes the conn send every /send and /idle twice with the same sequence
// number and body, like a proxy that retries a request whose reply it lost; the
// server must answer the replay with the very same bytes and consume nothing (Read
// fails otherwise). Ignored in Pipelined mode.
func WithReplay() Option { return func(o *options) { o.replay = true } }

// WithIdleDelay sets the pause before an /idle that follows an empty reply; the
// default is ffmpeg's 50 ms, and a negative d means none (as librtmp).
func WithIdleDelay(d time.Duration) Option { return func(o *options) { o.idleDelay = d } }

// Conn is the client side of one RTMPT tunnel as a net.Conn, for Go tests that
// drive an RTMPT server (rtmptest.NewClient over it). By default it behaves like
// ffmpeg's rtmphttp.c (rtmpt.md §3.3): Write only buffers; a Read with nothing
// buffered sends the buffered bytes as one /send, or else an /idle (after 50 ms if
// the last reply was empty), and returns the reply's bytes after the polling byte.
// At most one request is outstanding. Close sends /close.
//
// Read may be called from one goroutine while others Write; deadlines apply to Read
// only (Write never blocks on the network except in Pipelined mode). A request
// interrupted by a read deadline keeps running, and its reply is returned by the
// next Read, so a deadline never loses bytes.
type Conn struct {
	base   *url.URL // immutable: scheme://host[:port] of the tunnel server
	id     string   // immutable: tunnel id from /open/1
	opts   options  // immutable
	client *http.Client
	own    *http.Transport // the client's transport if Dial made it; closed by Close
	local  net.Addr        // immutable
	remote net.Addr        // immutable

	// Pipelined mode only.
	raw net.Conn      // immutable; closed by Close
	br  *bufio.Reader // owned by the goroutine with a request in flight
	wmu sync.Mutex    // guards writes to raw and seq in Pipelined mode

	mu        sync.Mutex
	seq       uint64         // guarded by mu (and wmu in Pipelined mode): next sequence number
	out       []byte         // guarded by mu: written, not sent yet (default mode)
	in        []byte         // guarded by mu: received, not read yet
	inflight  *call          // guarded by mu: the request in flight, nil if none
	unackd    int            // guarded by mu: Pipelined POSTs whose reply is unread
	lastEmpty bool           // guarded by mu: the last reply carried no RTMP bytes
	err       error          // guarded by mu: sticky error of the tunnel
	closed    bool           // guarded by mu
	closeCh   chan struct{}  // closed by Close
	rdl       time.Time      // guarded by mu: read deadline
	rdlChange chan struct{}  // guarded by mu: closed and replaced when rdl changes
	stats     map[string]int // guarded by mu: requests sent per command
}

// call is one request in flight, run by its own goroutine.
type call struct {
	done chan struct{} // closed by the goroutine once res is set
	res  result        // written once, before done is closed
}

// result is what a request goroutine hands back to Read.
type result struct {
	data []byte // reply bytes after the polling byte
	err  error
}

func (cl *call) finish(r result) {
	cl.res = r
	close(cl.done)
}

// Dial opens an RTMPT tunnel (POST /open/1) on the server at baseURL
// ("http://127.0.0.1:8080" or "https://…"; a path is ignored) and returns it as
// a net.Conn. ctx bounds the /open/1 request only.
func Dial(ctx context.Context, baseURL string, opts ...Option) (*Conn, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("tunneltest: dial %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("tunneltest: dial %q: want http:// or https://host:port", baseURL)
	}
	c := &Conn{
		base:      &url.URL{Scheme: u.Scheme, Host: u.Host},
		closeCh:   make(chan struct{}),
		rdlChange: make(chan struct{}),
		stats:     map[string]int{},
	}
	for _, o := range opts {
		o(&c.opts)
	}
	if c.opts.idleDelay == 0 {
		c.opts.idleDelay = idleDelay
	}
	if c.opts.pipelined {
		c.opts.idleDelay = 0
		if err := c.dialRaw(ctx); err != nil {
			return nil, err
		}
	} else {
		c.client = c.opts.client
		if c.client == nil {
			c.own = &http.Transport{
				MaxConnsPerHost: 1, // one keep-alive connection, like ffmpeg
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
			}
			c.client = &http.Client{Transport: c.own}
		}
	}
	body, err := c.openTunnel(ctx)
	if err != nil {
		c.shutdown()
		return nil, fmt.Errorf("tunneltest: open %s: %w", c.base, err)
	}
	// ffmpeg strips trailing whitespace; librtmp takes Content-Length-1 bytes.
	c.id = strings.TrimRight(string(body), " \r\n\t")
	if c.id == "" || len(body) != len(c.id)+1 || body[len(body)-1] != '\n' {
		c.shutdown()
		return nil, fmt.Errorf("tunneltest: open %s: reply %q is not <id>\\n", c.base, body)
	}
	if c.local == nil {
		c.local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	}
	if c.remote == nil {
		c.remote = tcpAddr(u.Host)
	}
	return c, nil
}

func tcpAddr(hostport string) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", hostport); err == nil {
		return a
	}
	return &net.TCPAddr{}
}

// dialRaw opens the raw connection of Pipelined mode.
func (c *Conn) dialRaw(ctx context.Context) error {
	host := c.base.Host
	if c.base.Port() == "" {
		port := "80"
		if c.base.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(c.base.Hostname(), port)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("tunneltest: dial %s: %w", host, err)
	}
	if c.base.Scheme == "https" {
		cfg := c.opts.tlsConfig
		if cfg == nil {
			cfg = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return fmt.Errorf("tunneltest: tls %s: %w", host, err)
		}
		raw = tc
	}
	c.raw, c.br = raw, bufio.NewReader(raw)
	c.local, c.remote = raw.LocalAddr(), raw.RemoteAddr()
	return nil
}

// openTunnel sends /open/1 (body 0x00; rtmpt.md §3.1) and returns the reply body.
func (c *Conn) openTunnel(ctx context.Context) ([]byte, error) {
	if !c.opts.pipelined {
		return c.roundTrip(ctx, "/open/1", []byte{0})
	}
	if d, ok := ctx.Deadline(); ok {
		c.raw.SetDeadline(d)
		defer c.raw.SetDeadline(time.Time{})
	}
	if err := c.writeRequest("/open/1", []byte{0}); err != nil {
		return nil, err
	}
	return c.readResponse()
}

// ID returns the tunnel id the server gave.
func (c *Conn) ID() string { return c.id }

// Requests returns how many requests of each kind ("send", "idle", "close",
// including replays) the conn has sent so far.
func (c *Conn) Requests() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.stats))
	for k, v := range c.stats {
		m[k] = v
	}
	return m
}

// roundTrip POSTs body to path with the headers ffmpeg sends (rtmpt.md §3.1) and
// returns the reply body; a status other than 200 is an error.
func (c *Conn) roundTrip(ctx context.Context, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Content-type"] = []string{"application/x-fcs"} // ffmpeg's spelling
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", "Shockwave Flash")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return checkReply(path, resp)
}

// checkReply reads a reply and checks what ffmpeg and librtmp need (rtmpt.md
// §3.2): HTTP/1.1 200 with a Content-Length, not chunked, no Connection: close.
func checkReply(path string, resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: read reply: %w", path, err)
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, &StatusError{Path: path, Code: resp.StatusCode}
	case resp.ProtoMajor != 1 || resp.ProtoMinor != 1:
		return nil, fmt.Errorf("%s: reply is %s, want HTTP/1.1", path, resp.Proto)
	case resp.ContentLength != int64(len(b)):
		return nil, fmt.Errorf("%s: reply has Content-Length %d for %d bytes (chunked: %v)",
			path, resp.ContentLength, len(b), resp.TransferEncoding)
	case resp.Close:
		return nil, fmt.Errorf("%s: reply asks to close the connection", path)
	}
	return b, nil
}

// StatusError is a reply with a status other than 200.
type StatusError struct {
	Path string // request path
	Code int    // HTTP status
}

// Error names the path and the status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("tunneltest: %s: HTTP %d %s", e.Path, e.Code, http.StatusText(e.Code))
}

// writeRequest writes one POST on the raw connection (Pipelined mode) with
// librtmp's headers (rtmpt.md §3.1, LR 4405-4412).
func (c *Conn) writeRequest(path string, body []byte) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\nUser-Agent: Shockwave Flash\r\n"+
		"Connection: Keep-Alive\r\nCache-Control: no-cache\r\nContent-type: application/x-fcs\r\n"+
		"Content-length: %d\r\n\r\n", path, c.base.Host, len(body))
	b.Write(body)
	_, err := c.raw.Write(b.Bytes())
	return err
}

// readResponse reads the next reply from the raw connection (Pipelined mode).
func (c *Conn) readResponse() ([]byte, error) {
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return checkReply("reply", resp)
}

// path returns the request path of cmd with the next sequence number and advances
// it. c.mu is held.
func (c *Conn) pathLocked(cmd string) string {
	p := "/" + cmd + "/" + c.id + "/" + strconv.FormatUint(c.seq, 10)
	c.seq++
	c.stats[cmd]++
	return p
}

// Read returns bytes the server sent, polling for them as described on Conn.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		c.mu.Lock()
		switch {
		case c.closed:
			c.mu.Unlock()
			return 0, c.opErr("read", net.ErrClosed)
		case len(c.in) > 0:
			n := copy(p, c.in)
			c.in = c.in[n:]
			c.mu.Unlock()
			return n, nil
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			return 0, err
		case len(p) == 0:
			c.mu.Unlock()
			return 0, nil
		}
		if c.inflight == nil {
			c.startLocked()
		}
		cl, dl, dlChange := c.inflight, c.rdl, c.rdlChange
		c.mu.Unlock()

		var timeout <-chan time.Time
		var tm *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, c.opErr("read", os.ErrDeadlineExceeded)
			}
			tm = time.NewTimer(d)
			timeout = tm.C
		}
		expired := false
		select {
		case <-cl.done:
			c.mu.Lock()
			if c.inflight == cl {
				c.inflight = nil
				if cl.res.err != nil && c.err == nil {
					c.err = c.opErr("read", cl.res.err)
				}
				c.in = append(c.in, cl.res.data...)
				c.lastEmpty = len(cl.res.data) == 0
			}
			c.mu.Unlock()
		case <-timeout:
			expired = true
		case <-dlChange:
		case <-c.closeCh:
		}
		if tm != nil {
			tm.Stop()
		}
		if expired {
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		}
	}
}

// startLocked starts the next request in its own goroutine: in default mode a /send
// with the buffered bytes or an /idle; in Pipelined mode an /idle if no reply is
// outstanding, then the read of the next reply. c.mu is held.
func (c *Conn) startLocked() {
	cl := &call{done: make(chan struct{})}
	c.inflight = cl
	if c.opts.pipelined {
		// librtmp sends an idle only when no reply is outstanding (LR 1409).
		idle := c.unackd == 0
		if idle {
			c.unackd++
		}
		go func() {
			if idle {
				c.wmu.Lock()
				c.mu.Lock()
				path := c.pathLocked("idle")
				c.mu.Unlock()
				err := c.writeRequest(path, []byte{0})
				c.wmu.Unlock()
				if err != nil {
					cl.finish(result{err: err})
					return
				}
			}
			body, err := c.readResponse()
			cl.finish(c.stripPoll(body, err))
		}()
		return
	}
	cmd, body := "idle", []byte{0}
	if len(c.out) > 0 {
		// One /send carries at most maxSendBody; the rest goes in the next.
		n := min(len(c.out), maxSendBody)
		cmd, body = "send", c.out[:n:n]
		c.out = c.out[n:]
		if len(c.out) == 0 {
			c.out = nil
		}
	}
	delay := time.Duration(0)
	if cmd == "idle" && c.lastEmpty && c.opts.idleDelay > 0 {
		delay = c.opts.idleDelay
	}
	path := c.pathLocked(cmd)
	replay := c.opts.replay
	if replay {
		c.stats[cmd]++
	}
	go func() {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-c.closeCh:
				cl.finish(result{err: net.ErrClosed})
				return
			}
		}
		ctx := context.Background()
		reply, err := c.roundTrip(ctx, path, body)
		if err == nil && replay {
			again, err2 := c.roundTrip(ctx, path, []byte("replayed body must not be fed"))
			switch {
			case err2 != nil:
				err = fmt.Errorf("replay of %s: %w", path, err2)
			case !bytes.Equal(again, reply):
				err = fmt.Errorf("replay of %s: reply of %d bytes differs from the first one (%d bytes)", path, len(again), len(reply))
			}
		}
		cl.finish(c.stripPoll(reply, err))
	}()
}

// stripPoll checks and removes the polling byte every send/idle reply starts with.
func (c *Conn) stripPoll(body []byte, err error) result {
	if err != nil {
		return result{err: err}
	}
	if len(body) == 0 {
		return result{err: errors.New("empty send/idle reply: no polling byte")}
	}
	if c.opts.pipelined {
		c.mu.Lock()
		c.unackd--
		c.mu.Unlock()
	}
	return result{data: body[1:]}
}

// Write buffers p for the next /send (default mode) or POSTs it at once as a
// /send (Pipelined mode).
func (c *Conn) Write(p []byte) (int, error) {
	if c.opts.pipelined {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.mu.Lock()
		if c.closed || c.err != nil {
			err := c.err
			c.mu.Unlock()
			if err == nil {
				err = c.opErr("write", net.ErrClosed)
			}
			return 0, err
		}
		path := c.pathLocked("send")
		c.unackd++
		c.mu.Unlock()
		if err := c.writeRequest(path, p); err != nil {
			return 0, c.opErr("write", err)
		}
		return len(p), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, c.opErr("write", net.ErrClosed)
	}
	if c.err != nil {
		return 0, c.err
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

// Close ends the tunnel like the client it imitates: ffmpeg (default) waits for the
// request in flight, drops unsent bytes and sends /close (rtmpt.md §3.3); librtmp
// (Pipelined) writes /close and closes the connection without reading the reply.
func (c *Conn) Close() error {
	return c.close(true)
}

// Abandon stops the conn without /close, like a client that crashed or lost its
// network: the server only learns from its idle timeout.
func (c *Conn) Abandon() error {
	return c.close(false)
}

func (c *Conn) close(sendClose bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.closeCh)
	cl := c.inflight
	c.mu.Unlock()

	var err error
	if sendClose {
		err = c.sendClose(cl)
	}
	c.shutdown()
	return err
}

func (c *Conn) sendClose(inflight *call) error {
	if c.opts.pipelined {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.mu.Lock()
		path := c.pathLocked("close")
		c.mu.Unlock()
		c.raw.SetWriteDeadline(time.Now().Add(closeTimeout))
		return c.writeRequest(path, []byte{0})
	}
	if inflight != nil {
		select {
		case <-inflight.done:
		case <-time.After(closeTimeout):
			return errors.New("tunneltest: close: request in flight did not finish")
		}
	}
	c.mu.Lock()
	path := c.pathLocked("close")
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	b, err := c.roundTrip(ctx, path, []byte{0})
	if err != nil {
		return fmt.Errorf("tunneltest: close: %w", err)
	}
	if len(b) != 1 {
		return fmt.Errorf("tunneltest: close: reply %q, want one byte", b)
	}
	return nil
}

// shutdown releases the connections.
func (c *Conn) shutdown() {
	if c.raw != nil {
		c.raw.Close()
	}
	if c.own != nil {
		c.own.CloseIdleConnections()
	}
}

func (c *Conn) opErr(op string, err error) error {
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return err
	}
	return &net.OpError{Op: op, Net: "rtmpt", Source: c.local, Addr: c.remote, Err: err}
}

// LocalAddr returns the client's address of the raw connection in Pipelined mode,
// else 127.0.0.1.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the server's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read deadline; writes never wait for the network.
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline sets the deadline of pending and future Reads.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	close(c.rdlChange)
	c.rdlChange = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline does nothing: Write only buffers (default mode) or writes a
// request (Pipelined mode, bounded by TCP buffers).
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

var _ net.Conn = (*Conn)(nil)
