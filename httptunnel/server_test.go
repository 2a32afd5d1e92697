package httptunnel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// rawConn is a raw TCP client of an httptest server, to see the exact reply bytes and
// to pipeline requests the way librtmp does.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// request formats a POST the way ffmpeg does (rtmpt.md §3.1), including its
// lowercase "Content-type".
func request(path string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nAccept: */*\r\nConnection: keep-alive\r\nHost: 127.0.0.1\r\n"+
		"Content-Length: %d\r\nIcy-MetaData: 1\r\nCache-Control: no-cache\r\n"+
		"Content-type: application/x-fcs\r\nUser-Agent: Shockwave Flash\r\n\r\n", path, len(body))
	b.Write(body)
	return b.Bytes()
}

func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

// readReply reads one reply byte by byte as librtmp does and checks the status line
// and headers it needs (rtmpt.md §3.2).
func (rc *rawConn) readReply() []byte {
	rc.t.Helper()
	status, err := rc.br.ReadString('\n')
	if err != nil {
		rc.t.Fatal(err)
	}
	if status != "HTTP/1.1 200 OK\r\n" {
		rc.t.Fatalf("status line %q, want HTTP/1.1 200 OK", status)
	}
	h, err := textproto.NewReader(rc.br).ReadMIMEHeader()
	if err != nil {
		rc.t.Fatal(err)
	}
	for k, v := range map[string]string{"Content-Type": fcs, "Cache-Control": "no-cache", "Connection": "Keep-Alive"} {
		if h.Get(k) != v {
			rc.t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if te := h.Get("Transfer-Encoding"); te != "" {
		rc.t.Errorf("Transfer-Encoding %q: replies must not be chunked", te)
	}
	var n int
	if _, err := fmt.Sscan(h.Get("Content-Length"), &n); err != nil {
		rc.t.Fatalf("Content-Length %q: %v", h.Get("Content-Length"), err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.br, body); err != nil {
		rc.t.Fatal(err)
	}
	return body
}

func (rc *rawConn) open() string {
	rc.t.Helper()
	rc.write(request("/open/1", []byte{0}))
	body := rc.readReply()
	id, ok := strings.CutSuffix(string(body), "\n")
	if !ok || len(id) != 32 || !validID(id) {
		rc.t.Fatalf("open reply %q", body)
	}
	return id
}

// TestWireFormat checks the exact reply bytes over a real socket, with ffmpeg's
// request headers, and the conn's addresses and protocol.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	conns := make(chan net.Conn, 1)
	s := newServer(t, Config{}, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
		conns <- c
		echo(ctx, c)
	}))
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	rc := dialRaw(t, hs.Listener.Addr().String())
	id := rc.open()
	c := <-conns
	if got, want := c.RemoteAddr().String(), rc.c.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %q, want %q", got, want)
	}
	if got, want := c.LocalAddr().String(), rc.c.RemoteAddr().String(); got != want {
		t.Errorf("LocalAddr %q, want %q", got, want)
	}
	if p := c.(interface{ Protocol() string }).Protocol(); p != ProtocolRTMPT {
		t.Errorf("Protocol %q, want rtmpt", p)
	}
	rc.write(request(path(cmdSend, id, 0), []byte("hello")))
	if got := rc.readReply(); string(got) != "\x01hello" {
		t.Errorf("send reply %q", got)
	}
	rc.write(request(path(cmdIdle, id, 1), []byte{0}))
	if got := rc.readReply(); len(got) != 1 || got[0] != 0x01 {
		t.Errorf("idle reply %q, want the polling byte 0x01 alone", got)
	}
	rc.write(request(path(cmdClose, id, 2), []byte{0}))
	if got := rc.readReply(); !bytes.Equal(got, []byte{0}) {
		t.Errorf("close reply %q, want 0x00", got)
	}
}

// TestPipelined sends several POSTs back to back before reading any reply, as librtmp
// does (rtmpt.md §3.1), and checks that the replies come in order with the right data.
func TestPipelined(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	s := newServer(t, Config{}, rec)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	rc := dialRaw(t, hs.Listener.Addr().String())
	id := rc.open()

	var batch []byte
	batch = append(batch, request(path(cmdSend, id, 0), []byte("one"))...)
	batch = append(batch, request(path(cmdSend, id, 1), []byte("two"))...)
	batch = append(batch, request(path(cmdIdle, id, 2), []byte{0})...)
	batch = append(batch, request(path(cmdSend, id, 3), []byte("three"))...)
	rc.write(batch)

	var got []byte
	for i := range 4 {
		r := rc.readReply()
		if len(r) == 0 {
			t.Fatalf("reply %d empty", i)
		}
		got = append(got, r[1:]...)
	}
	if string(got) != "onetwothree" {
		t.Errorf("echoed %q, want onetwothree", got)
	}
	if in := rec.input(); in != "onetwothree" {
		t.Errorf("handler read %q, want onetwothree", in)
	}
}

// TestHandshakeInOneReply: the handler reads C0+C1 (1537 bytes) and answers
// S0+S1+S2 (3073 bytes) in three writes; the /send reply carries all of it, as ffmpeg
// expects (rtmpt.md §3.3).
func TestHandshakeInOneReply(t *testing.T) {
	t.Parallel()
	s0s1s2 := make([]byte, 3073)
	for i := range s0s1s2 {
		s0s1s2[i] = byte(i * 7)
	}
	s0s1s2[0] = 3
	c2ok := make(chan bool, 1)
	s := newServer(t, Config{SendWait: 10 * time.Second}, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
		c0c1 := make([]byte, 1537)
		if _, err := io.ReadFull(c, c0c1); err != nil {
			return
		}
		c.Write(s0s1s2[:1])
		c.Write(s0s1s2[1:1537])
		time.Sleep(time.Millisecond) // an answer that takes a moment
		c.Write(s0s1s2[1537:])
		c2 := make([]byte, 1536)
		_, err := io.ReadFull(c, c2)
		c2ok <- err == nil && bytes.Equal(c2, s0s1s2[1:1537])
		io.Copy(io.Discard, c)
	}))
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	cl := hs.Client()

	id := strings.TrimSpace(string(httpPost(t, cl, hs.URL+"/open/1", []byte{0})))
	reply := httpPost(t, cl, hs.URL+path(cmdSend, id, 0), make([]byte, 1537))
	if len(reply) != 1+3073 || reply[0] != 0x01 || !bytes.Equal(reply[1:], s0s1s2) {
		t.Fatalf("send reply: %d bytes, want 0x01 + S0+S1+S2 (3074)", len(reply))
	}
	httpPost(t, cl, hs.URL+path(cmdSend, id, 1), s0s1s2[1:1537])
	if !<-c2ok {
		t.Error("handler did not read C2 intact")
	}
}

func httpPost(t *testing.T, cl *http.Client, url string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-type", fcs)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(b)) || len(b) == 0 {
		t.Fatalf("POST %s: %s, Content-Length %d, %d bytes", url, resp.Status, resp.ContentLength, len(b))
	}
	return b
}

// TestStatusCodes covers every refusal of a request (rtmpt.md §3.4, issue 3).
func TestStatusCodes(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{MaxBodyBytes: 100}, ConnHandlerFunc(echo))
	id := open(t, s)
	closed := open(t, s)
	post(t, s, path(cmdClose, closed, 0), []byte{0})
	unknown := strings.Repeat("ab", 16)

	cases := []struct {
		name, method, path, ctype string
		body                      io.Reader
		want                      int
	}{
		{"ident2", "POST", "/fcs/ident2", fcs, nil, 404},
		{"unknown path", "POST", "/foo", fcs, nil, 404},
		{"open 2", "POST", "/open/2", fcs, nil, 404},
		{"unknown id", "POST", path(cmdIdle, unknown, 0), fcs, nil, 404},
		{"closed id", "POST", path(cmdIdle, closed, 1), fcs, nil, 404},
		{"close closed id", "POST", path(cmdClose, closed, 1), fcs, nil, 404},
		{"bad id chars", "POST", "/idle/a-b/0", fcs, nil, 404},
		{"seq leading zero", "POST", "/idle/" + id + "/01", fcs, nil, 400},
		{"seq not a number", "POST", "/idle/" + id + "/x", fcs, nil, 400},
		{"seq overflow", "POST", "/idle/" + id + "/18446744073709551616", fcs, nil, 400},
		{"seq far ahead", "POST", path(cmdIdle, id, 1000), fcs, nil, 400},
		{"GET open", "GET", "/open/1", fcs, nil, 405},
		{"PUT send", "PUT", path(cmdSend, id, 0), fcs, nil, 405},
		{"no content type", "POST", path(cmdIdle, id, 0), "", nil, 400},
		{"wrong content type", "POST", "/open/1", "text/plain", nil, 400},
		{"body too large", "POST", path(cmdSend, id, 0), fcs, bytes.NewReader(make([]byte, 101)), 413},
		{"chunked body too large", "POST", path(cmdSend, id, 0), fcs, io.MultiReader(bytes.NewReader(make([]byte, 101))), 413},
		{"open body too large", "POST", "/open/1", fcs, bytes.NewReader(make([]byte, 101)), 413},
		{"content type with params and case", "POST", path(cmdIdle, id, 0), "Application/X-FCS; charset=binary", nil, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, tc.body)
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, w.Code, tc.want)
			}
			if tc.want == 405 && w.Header().Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
		})
	}
}

// TestTunnelLimits checks MaxTunnels and MaxTunnelsPerIP (503 on /open/1) and that a
// closed tunnel frees its slot.
func TestTunnelLimits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Config{MaxTunnels: 3, MaxTunnelsPerIP: 2}, ConnHandlerFunc(echo))
		openFrom := func(ip string) (int, string) {
			r := httptest.NewRequest("POST", "/open/1", bytes.NewReader([]byte{0}))
			r.RemoteAddr = ip + ":5555"
			r.Header.Set("Content-Type", fcs)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			return w.Code, strings.TrimSpace(w.Body.String())
		}
		_, a1 := openFrom("10.0.0.1")
		if code, _ := openFrom("10.0.0.1"); code != 200 {
			t.Fatalf("second tunnel from one IP: %d", code)
		}
		if code, _ := openFrom("10.0.0.1"); code != 503 {
			t.Errorf("third tunnel from one IP: %d, want 503", code)
		}
		if code, _ := openFrom("[::ffff:10.0.0.1]"); code != 503 {
			t.Errorf("third tunnel from one IP, 4in6 form: %d, want 503", code)
		}
		if code, _ := openFrom("10.0.0.2"); code != 200 {
			t.Fatalf("tunnel from another IP: %d", code)
		}
		if code, _ := openFrom("10.0.0.3"); code != 503 {
			t.Errorf("tunnel above MaxTunnels: %d, want 503", code)
		}
		if n := s.Tunnels(); n != 3 {
			t.Errorf("Tunnels() = %d, want 3", n)
		}
		post(t, s, path(cmdClose, a1, 0), []byte{0})
		synctest.Wait() // the handler returns
		if n := s.Tunnels(); n != 2 {
			t.Errorf("Tunnels() after close = %d, want 2", n)
		}
		if code, _ := openFrom("10.0.0.1"); code != 200 {
			t.Errorf("open after a close freed the slot: %d", code)
		}
		s.Close(t.Context())
		if code, _ := openFrom("10.0.0.4"); code != 503 {
			t.Errorf("open after Close: %d, want 503", code)
		}
	})
}

// TestPollByte checks Red5's adaptive polling byte (rtmpt.md §3.2) and that no reply
// is ever empty.
func TestPollByte(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Config{}, ConnHandlerFunc(echo))
		id := open(t, s)
		var seq uint64
		next := func(cmd command, body []byte) []byte {
			r := post(t, s, path(cmd, id, seq), body)
			seq++
			return r
		}
		want := []byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 5, 9, 0x11, 0x21, 0x21}
		for i, w := range want {
			if r := next(cmdIdle, []byte{0}); len(r) != 1 || r[0] != w {
				t.Errorf("empty reply %d: %x, want %02x", i+1, r, w)
			}
		}
		if r := next(cmdSend, []byte("x")); string(r) != "\x01x" {
			t.Errorf("data reply %q, want 0x01 x", r)
		}
		if r := next(cmdSend, []byte{}); !bytes.Equal(r, []byte{1}) {
			t.Errorf("empty send reply %x, want 01", r)
		}
	})
}

// TestIdleHold checks that an /idle long-polls for at most IdleHold and returns as
// soon as output appears (plus SendQuiet).
func TestIdleHold(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{IdleHold: 200 * time.Millisecond, SendQuiet: 2 * time.Millisecond}
		writeAt := make(chan time.Duration, 1)
		s := newServer(t, cfg, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			for d := range writeAt {
				time.Sleep(d)
				c.Write([]byte("ab"))
				c.Write([]byte("c"))
			}
		}))
		t.Cleanup(func() { close(writeAt) })
		id := open(t, s)

		start := time.Now()
		if r := post(t, s, path(cmdIdle, id, 0), []byte{0}); len(r) != 1 {
			t.Errorf("idle reply %q, want the polling byte alone", r)
		}
		if d := time.Since(start); d != cfg.IdleHold {
			t.Errorf("empty idle held %v, want %v", d, cfg.IdleHold)
		}

		writeAt <- 30 * time.Millisecond
		start = time.Now()
		if r := post(t, s, path(cmdIdle, id, 1), []byte{0}); string(r[1:]) != "abc" {
			t.Errorf("idle reply %q, want abc", r)
		}
		if d := time.Since(start); d != 30*time.Millisecond+cfg.SendQuiet {
			t.Errorf("idle answered after %v, want %v", d, 30*time.Millisecond+cfg.SendQuiet)
		}

		writeAt <- 0
		synctest.Wait()
		start = time.Now()
		if r := post(t, s, path(cmdIdle, id, 2), []byte{0}); string(r[1:]) != "abc" {
			t.Errorf("idle reply %q, want abc", r)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("idle with queued output took %v, want 0", d)
		}
	})
}

// TestSendWaitBounded: a /send to a handler that does not read is answered after
// SendWait with the polling byte.
func TestSendWaitBounded(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{SendWait: 50 * time.Millisecond}
		s := newServer(t, cfg, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			<-ctx.Done()
		}))
		id := open(t, s)
		start := time.Now()
		if r := post(t, s, path(cmdSend, id, 0), []byte("x")); len(r) != 1 {
			t.Errorf("reply %q, want the polling byte alone", r)
		}
		if d := time.Since(start); d != cfg.SendWait {
			t.Errorf("send answered after %v, want %v", d, cfg.SendWait)
		}
	})
}

// TestReplayAndReorder: a replayed request gets the same reply and is not fed again;
// an older one consumes nothing; one ahead of sequence waits for the gap (bounded).
func TestReplayAndReorder(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{ReorderWait: 500 * time.Millisecond}
		rec := &recorder{}
		s := newServer(t, cfg, rec)
		id := open(t, s)

		r0 := post(t, s, path(cmdSend, id, 0), []byte("aa"))
		if string(r0) != "\x01aa" {
			t.Fatalf("reply %q", r0)
		}
		if again := post(t, s, path(cmdSend, id, 0), []byte("aa")); !bytes.Equal(again, r0) {
			t.Errorf("replay reply %q, want %q", again, r0)
		}
		post(t, s, path(cmdSend, id, 1), []byte("bb"))
		if r := post(t, s, path(cmdSend, id, 0), []byte("zz")); len(r) != 1 {
			t.Errorf("stale reply %q, want the polling byte alone", r)
		}
		if in := rec.input(); in != "aabb" {
			t.Errorf("handler read %q, want aabb", in)
		}

		// seq 3 overtakes seq 2.
		var wg sync.WaitGroup
		var r3 []byte
		wg.Go(func() { r3 = post(t, s, path(cmdSend, id, 3), []byte("dd")) })
		synctest.Wait()
		r2 := post(t, s, path(cmdSend, id, 2), []byte("cc"))
		wg.Wait()
		if string(r2) != "\x01cc" || string(r3) != "\x01dd" {
			t.Errorf("replies %q %q", r2, r3)
		}
		if in := rec.input(); in != "aabbccdd" {
			t.Errorf("handler read %q, want aabbccdd", in)
		}

		// A gap that never fills.
		start := time.Now()
		if w := do(t, s, "POST", path(cmdSend, id, 10), fcs, []byte("ee")); w.Code != 400 {
			t.Errorf("gap: status %d, want 400", w.Code)
		}
		if d := time.Since(start); d != cfg.ReorderWait {
			t.Errorf("gap refused after %v, want %v", d, cfg.ReorderWait)
		}
		post(t, s, path(cmdSend, id, 4), []byte("ff"))
		if in := rec.input(); in != "aabbccddff" {
			t.Errorf("handler read %q, want aabbccddff", in)
		}
	})
}

// TestReaper: a tunnel without requests for IdleTimeout is closed, its handler's Read
// returns io.EOF and its ctx ends with ErrIdleTimeout; an active one survives.
func TestReaper(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{IdleTimeout: time.Second}
		idle, busy := &recorder{}, &recorder{}
		hs := []*recorder{idle, busy}
		var n atomic.Int32
		s := newServer(t, cfg, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			hs[n.Add(1)-1].ServeConn(ctx, c)
		}))
		idleID := open(t, s)
		synctest.Wait()
		busyID := open(t, s)
		for seq := range uint64(6) {
			time.Sleep(cfg.IdleTimeout / 2)
			post(t, s, path(cmdIdle, busyID, seq), []byte{0})
		}
		synctest.Wait()
		if err := idle.err(); err != io.EOF {
			t.Errorf("reaped handler's Read: %v, want io.EOF", err)
		}
		if c := context.Cause(idle.ctx); !errors.Is(c, ErrIdleTimeout) {
			t.Errorf("ctx cause %v, want ErrIdleTimeout", c)
		}
		if w := do(t, s, "POST", path(cmdIdle, idleID, 0), fcs, []byte{0}); w.Code != 404 {
			t.Errorf("request to a reaped tunnel: %d, want 404", w.Code)
		}
		if err := busy.err(); err != nil {
			t.Errorf("active tunnel ended: %v", err)
		}
		if n := s.Tunnels(); n != 1 {
			t.Errorf("Tunnels() = %d, want 1", n)
		}
	})
}

// TestBoundedPending: a handler writing to a tunnel nobody polls blocks at MaxPending,
// gets a timeout at its write deadline, and an error once the tunnel is reaped; memory
// never exceeds MaxPending.
func TestBoundedPending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{MaxPending: 64 << 10, IdleTimeout: time.Second}
		type result struct {
			written int
			err     error
			at      time.Duration
		}
		results := make(chan result, 2)
		start := time.Now()
		s := newServer(t, cfg, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			chunk := make([]byte, 1000)
			written := 0
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			for {
				n, err := c.Write(chunk)
				written += n
				if err != nil {
					results <- result{written, err, time.Since(start)}
					if errors.Is(err, os.ErrDeadlineExceeded) {
						c.SetWriteDeadline(time.Time{})
						written = 0
						continue
					}
					return
				}
			}
		}))
		id := open(t, s)

		r := <-results
		var ne net.Error
		if !errors.As(r.err, &ne) || !ne.Timeout() || !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Errorf("blocked Write: %v, want a timeout", r.err)
		}
		if r.at != 100*time.Millisecond || r.written != cfg.MaxPending {
			t.Errorf("timeout after %v with %d bytes queued, want 100ms and %d", r.at, r.written, cfg.MaxPending)
		}
		tc := s.lookup(id)
		tc.mu.Lock()
		pending, capacity := tc.pendingLocked(), len(tc.out.buf)
		tc.mu.Unlock()
		if pending != cfg.MaxPending || capacity > cfg.MaxPending {
			t.Errorf("pending %d (buffer %d), want %d", pending, capacity, cfg.MaxPending)
		}

		r = <-results
		if !errors.Is(r.err, ErrIdleTimeout) || r.written != 0 {
			t.Errorf("Write after reaping: %d, %v; want 0, ErrIdleTimeout", r.written, r.err)
		}
		if r.at < cfg.IdleTimeout || r.at > cfg.IdleTimeout*5/4 {
			t.Errorf("reaped after %v, want between %v and %v", r.at, cfg.IdleTimeout, cfg.IdleTimeout*5/4)
		}
	})
}

// TestBackpressure: a client that polls receives every byte, in order, in replies of
// at most ReplyMaxBytes, while the writer is held at MaxPending.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{MaxPending: 10000, ReplyMaxBytes: 3000}
		const total = 100000
		s := newServer(t, cfg, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			msg := make([]byte, 700)
			for i := 0; i < total; i += len(msg) {
				for j := range msg {
					msg[j] = byte(i + j)
				}
				if _, err := c.Write(msg[:min(len(msg), total-i)]); err != nil {
					return
				}
			}
			c.Close()
		}))
		id := open(t, s)
		var got []byte
		for seq := uint64(0); ; seq++ {
			w := do(t, s, "POST", path(cmdIdle, id, seq), fcs, []byte{0})
			if w.Code == 404 {
				break
			}
			checkWire(t, w, true)
			if w.Body.Len() > 1+cfg.ReplyMaxBytes {
				t.Fatalf("reply of %d bytes, cap %d", w.Body.Len(), cfg.ReplyMaxBytes)
			}
			got = append(got, w.Body.Bytes()[1:]...)
		}
		if len(got) != total {
			t.Fatalf("received %d bytes, want %d", len(got), total)
		}
		for i, b := range got {
			if b != byte(i) {
				t.Fatalf("byte %d = %d, want %d", i, b, byte(i))
			}
		}
	})
}

// TestClose: /close replies 0x00, ends the tunnel (Read returns io.EOF, ctx cause
// ErrClientClosed) and later requests get 404.
func TestClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s := newServer(t, Config{}, rec)
		id := open(t, s)
		post(t, s, path(cmdSend, id, 0), []byte("x"))
		if r := post(t, s, path(cmdClose, id, 7), []byte{0}); !bytes.Equal(r, []byte{0}) {
			t.Errorf("close reply %x, want 00", r)
		}
		synctest.Wait()
		if err := rec.err(); err != io.EOF {
			t.Errorf("handler Read after /close: %v, want io.EOF", err)
		}
		if c := context.Cause(rec.ctx); !errors.Is(c, ErrClientClosed) {
			t.Errorf("ctx cause %v, want ErrClientClosed", c)
		}
		if w := do(t, s, "POST", path(cmdIdle, id, 1), fcs, []byte{0}); w.Code != 404 {
			t.Errorf("idle after close: %d, want 404", w.Code)
		}
		if n := s.Tunnels(); n != 0 {
			t.Errorf("Tunnels() = %d, want 0", n)
		}
	})
}

// TestHandlerCloseDeliversPending: bytes written before the handler closes the conn
// still reach the client (like a TCP close after a write); then the tunnel is gone.
func TestHandlerCloseDeliversPending(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t, Config{}, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			c.Write([]byte("bye"))
			c.Close()
			if _, err := c.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close: %v, want net.ErrClosed", err)
			}
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close: %v, want net.ErrClosed", err)
			}
		}))
		id := open(t, s)
		synctest.Wait()
		if r := post(t, s, path(cmdIdle, id, 0), []byte{0}); string(r) != "\x01bye" {
			t.Errorf("reply %q, want 0x01 bye", r)
		}
		if w := do(t, s, "POST", path(cmdIdle, id, 1), fcs, []byte{0}); w.Code != 404 {
			t.Errorf("after the drain: %d, want 404", w.Code)
		}
	})
}

// TestServerCloseWaits: Close ends every tunnel and returns only after every handler
// returned; with a handler that ignores its conn it gives up at ctx's deadline.
func TestServerCloseWaits(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var returned atomic.Int32
		release := make(chan struct{})
		s, err := New(Config{}, testLogger(t), ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			defer returned.Add(1)
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Errorf("Read at Close: %v, want io.EOF", err)
			}
			if c.RemoteAddr().String() == "10.9.9.9:1" {
				<-release // ignores the shutdown
			}
			time.Sleep(10 * time.Millisecond) // slow cleanup
		}))
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			open(t, s)
		}
		r := httptest.NewRequest("POST", "/open/1", bytes.NewReader([]byte{0}))
		r.RemoteAddr = "10.9.9.9:1"
		r.Header.Set("Content-Type", fcs)
		s.ServeHTTP(httptest.NewRecorder(), r)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close with a stuck handler: %v, want DeadlineExceeded", err)
		}
		if n := returned.Load(); n != 5 {
			t.Errorf("%d handlers returned, want 5", n)
		}
		close(release)
		if err := s.Close(t.Context()); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if n := returned.Load(); n != 6 {
			t.Errorf("%d handlers returned, want 6", n)
		}
		if n := s.Tunnels(); n != 0 {
			t.Errorf("Tunnels() = %d, want 0", n)
		}
	})
}

// TestHandlerPanic: a panic in one handler ends only its tunnel.
func TestHandlerPanic(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		s := newServer(t, Config{}, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
			if n.Add(1) == 1 {
				panic("boom")
			}
			echo(ctx, c)
		}))
		bad := open(t, s)
		synctest.Wait()
		good := open(t, s)
		if w := do(t, s, "POST", path(cmdIdle, bad, 0), fcs, []byte{0}); w.Code != 404 {
			t.Errorf("panicked tunnel: %d, want 404", w.Code)
		}
		if r := post(t, s, path(cmdSend, good, 0), []byte("ok")); string(r) != "\x01ok" {
			t.Errorf("other tunnel: %q", r)
		}
		if s.panics.Load() != 1 {
			t.Errorf("panics = %d, want 1", s.panics.Load())
		}
	})
}

// TestProtocol: per request (TLS or not) unless Config.Protocol forces it.
func TestProtocol(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cfg string
		tls       bool
		want      string
	}{
		{"plain", "", false, ProtocolRTMPT},
		{"tls", "", true, ProtocolRTMPTS},
		{"forced", ProtocolRTMPTS, false, ProtocolRTMPTS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan string, 1)
			s := newServer(t, Config{Protocol: tc.cfg}, ConnHandlerFunc(func(ctx context.Context, c net.Conn) {
				got <- c.(interface{ Protocol() string }).Protocol()
			}))
			var hs *httptest.Server
			if tc.tls {
				hs = httptest.NewTLSServer(s)
			} else {
				hs = httptest.NewServer(s)
			}
			t.Cleanup(hs.Close)
			httpPost(t, hs.Client(), hs.URL+"/open/1", []byte{0})
			if p := <-got; p != tc.want {
				t.Errorf("Protocol() = %q, want %q", p, tc.want)
			}
		})
	}
}

// TestNewValidation: New names the field at fault.
func TestNewValidation(t *testing.T) {
	t.Parallel()
	h := ConnHandlerFunc(echo)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{MaxBodyBytes: -1}, "MaxBodyBytes"},
		{Config{MaxTunnels: -1}, "MaxTunnels"},
		{Config{MaxTunnelsPerIP: -1}, "MaxTunnelsPerIP"},
		{Config{IdleTimeout: -1}, "IdleTimeout"},
		{Config{MaxPending: -1}, "MaxPending"},
		{Config{ReplyMaxBytes: -1}, "ReplyMaxBytes"},
		{Config{SendWait: -1}, "SendWait"},
		{Config{IdleHold: -1}, "IdleHold"},
		{Config{ReorderWait: -1}, "ReorderWait"},
		{Config{Protocol: "http"}, "Protocol"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if _, err := New(tc.cfg, testLogger(t), h); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}, testLogger(t), nil); err == nil {
		t.Error("New with a nil handler: no error")
	}
	s := newServer(t, Config{SendQuiet: -1}, h)
	if s.cfg.SendQuiet != 0 || s.cfg.MaxBodyBytes != DefaultMaxBodyBytes || s.cfg.IdleHold != DefaultIdleHold {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
}

// TestMount: Mount routes the RTMPT paths to the Server.
func TestMount(t *testing.T) {
	t.Parallel()
	s := newServer(t, Config{}, ConnHandlerFunc(echo))
	mux := http.NewServeMux()
	s.Mount(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	id := strings.TrimSpace(string(httpPost(t, hs.Client(), hs.URL+"/open/1", []byte{0})))
	if r := httpPost(t, hs.Client(), hs.URL+path(cmdSend, id, 0), []byte("m")); string(r) != "\x01m" {
		t.Errorf("reply %q", r)
	}
}
