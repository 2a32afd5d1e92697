package httptunnel

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Tuning constants that are not worth a Config field.
const (
	// maxReorder is how far ahead of the next expected sequence number a request may
	// be and still wait for the gap to fill; further ahead it is refused at once (400).
	maxReorder = 64
	// keepBufBytes: a drained inbound or output buffer larger than this is released,
	// so an idle tunnel does not pin a past burst.
	keepBufBytes = 256 << 10
	// minOutBuf is the first allocation of the output buffer.
	minOutBuf = 4 << 10
	// redPollStart and redPollMax: Red5 RTMPTConnection doubles its polling delay after
	// more than redPollStart consecutive empty replies, up to redPollMax (rtmpt.md §3.2).
	redPollStart = 10
	redPollMax   = 32
)

// tunnelConn is one RTMPT tunnel and the virtual net.Conn handed to the ConnHandler.
// Read returns the bytes of /send bodies in sequence order; Write queues bytes that the
// next send/idle replies carry. It also has Protocol() string.
//
// Lock order: tunnelConn.mu is never held together with Server.mu; deadline.mu is only
// taken without tunnelConn.mu.
type tunnelConn struct {
	s      *Server        // immutable after newTunnel
	id     string         // immutable: 32 lowercase hex characters
	short  string         // immutable: id prefix for logs
	proto  string         // immutable: ProtocolRTMPT or ProtocolRTMPTS
	ip     netip.Addr     // immutable: key of the per-IP limit (zero if unparsable)
	local  net.Addr       // immutable: the HTTP server's address of the /open/1 request
	remote net.Addr       // immutable: the HTTP client's address of the /open/1 request
	log    zerolog.Logger // immutable
	ctx    context.Context
	cancel context.CancelCauseFunc // called by endLocked (with the cause) and when ServeConn returned
	done   chan struct{}           // closed by endLocked when the tunnel stops serving requests; never reopened
	sem    chan struct{}           // capacity 1: held by the one request being processed
	refs   atomic.Int32            // 2 at start: the map entry and the ServeConn goroutine

	rdl, wdl deadline // read and write deadlines; own locks

	mu          sync.Mutex
	in          []byte        // guarded by mu: unread inbound bytes are in[inHead:]
	inHead      int           // guarded by mu
	out         ring          // guarded by mu: queued output, at most cfg.MaxPending bytes
	readWaiting bool          // guarded by mu: Read is blocked because in is empty
	localClosed bool          // guarded by mu: Close was called (or ServeConn returned)
	ended       bool          // guarded by mu: no more requests are served; done is closed
	cause       error         // guarded by mu: why the client side ended (nil after a drained local close)
	wake        chan struct{} // guarded by mu: closed and cleared by notifyLocked on every change
	lastActive  time.Time     // guarded by mu: start or end of the last request
	nextSeq     uint64        // guarded by mu: next expected sequence number

	// Owned by the request that holds sem.
	timer      *time.Timer // stopped when sem is released
	reply      []byte      // the last reply, kept for a replay of its sequence number
	replySeq   uint64      // sequence number of reply
	replyValid bool        // reply holds the reply to replySeq
	empties    int         // consecutive empty replies
	delay      byte        // Red5 polling delay; the polling byte is delay+1
}

var _ net.Conn = (*tunnelConn)(nil)

// Protocol returns "rtmpt" or "rtmpts". The RTMP server checks for this method to log
// the transport.
func (t *tunnelConn) Protocol() string { return t.proto }

// LocalAddr returns the HTTP server's address of the request that opened the tunnel.
func (t *tunnelConn) LocalAddr() net.Addr { return t.local }

// RemoteAddr returns the HTTP client's address ("ip:port") of the request that opened
// the tunnel.
func (t *tunnelConn) RemoteAddr() net.Addr { return t.remote }

// SetDeadline sets the read and write deadlines.
func (t *tunnelConn) SetDeadline(d time.Time) error {
	t.rdl.set(d)
	t.wdl.set(d)
	return nil
}

// SetReadDeadline sets the deadline of pending and future Reads.
func (t *tunnelConn) SetReadDeadline(d time.Time) error {
	t.rdl.set(d)
	return nil
}

// SetWriteDeadline sets the deadline of pending and future Writes. A Write blocked on
// a full output queue returns os.ErrDeadlineExceeded when it passes.
func (t *tunnelConn) SetWriteDeadline(d time.Time) error {
	t.wdl.set(d)
	return nil
}

func (t *tunnelConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: t.proto, Source: t.local, Addr: t.remote, Err: err}
}

// Read reads bytes the client sent in /send bodies. After the client side ended
// (/close, idle timeout, Server.Close) it returns the bytes still buffered, then io.EOF.
func (t *tunnelConn) Read(p []byte) (int, error) {
	for {
		dl := t.rdl.wait()
		t.mu.Lock()
		switch {
		case t.localClosed:
			t.mu.Unlock()
			return 0, t.opErr("read", net.ErrClosed)
		case isClosedChan(dl):
			t.readWaiting = false
			t.mu.Unlock()
			return 0, t.opErr("read", os.ErrDeadlineExceeded)
		case len(t.in) > t.inHead:
			n := copy(p, t.in[t.inHead:])
			t.inHead += n
			if t.inHead == len(t.in) {
				t.in, t.inHead = t.in[:0], 0
				if cap(t.in) > keepBufBytes {
					t.in = nil
				}
			}
			t.readWaiting = false
			t.notifyLocked()
			t.mu.Unlock()
			return n, nil
		case t.ended:
			t.mu.Unlock()
			return 0, io.EOF
		case len(p) == 0:
			t.mu.Unlock()
			return 0, nil
		}
		if !t.readWaiting {
			// A /send waits for this: the handler consumed everything and asks for more,
			// so the answer to the last body has been written.
			t.readWaiting = true
			t.notifyLocked()
		}
		ch := t.waitChLocked()
		t.mu.Unlock()
		select {
		case <-ch:
		case <-dl:
		}
	}
}

// Write queues p for the client. It blocks while the queue holds cfg.MaxPending bytes,
// until the client fetches some, the write deadline passes or the tunnel ends; then it
// returns how much of p it queued and the error.
func (t *tunnelConn) Write(p []byte) (int, error) {
	written := 0
	for {
		dl := t.wdl.wait()
		t.mu.Lock()
		switch {
		case t.localClosed:
			t.mu.Unlock()
			return written, t.opErr("write", net.ErrClosed)
		case t.ended:
			err := t.cause
			t.mu.Unlock()
			if err == nil {
				err = net.ErrClosed
			}
			return written, t.opErr("write", err)
		case isClosedChan(dl):
			t.mu.Unlock()
			return written, t.opErr("write", os.ErrDeadlineExceeded)
		}
		if space := t.s.cfg.MaxPending - t.pendingLocked(); space > 0 && written < len(p) {
			k := min(space, len(p)-written)
			t.out.write(p[written:written+k], t.s.cfg.MaxPending)
			written += k
			t.notifyLocked()
		}
		if written == len(p) {
			t.mu.Unlock()
			return written, nil
		}
		ch := t.waitChLocked()
		t.mu.Unlock()
		select {
		case <-ch:
		case <-dl:
		}
	}
}

// Close closes the conn from the handler's side: Read and Write fail with
// net.ErrClosed. Output already queued is still delivered to the client's next
// requests; once it is drained the tunnel ends and later requests get 404.
// Close is idempotent.
func (t *tunnelConn) Close() error {
	t.mu.Lock()
	if t.localClosed {
		t.mu.Unlock()
		return nil
	}
	t.localClosed = true
	t.in, t.inHead, t.readWaiting = nil, 0, false
	ended := t.pendingLocked() == 0 && t.endLocked(nil)
	t.notifyLocked()
	t.mu.Unlock()
	if ended {
		t.afterEnd(nil)
	}
	return nil
}

// closeRemote ends the tunnel from the client's side (or the server's) with cause:
// Read returns io.EOF once the buffered input is consumed, Write fails, requests get 404.
func (t *tunnelConn) closeRemote(cause error) bool {
	t.mu.Lock()
	ended := t.endLocked(cause)
	t.mu.Unlock()
	if ended {
		t.afterEnd(cause)
	}
	return ended
}

// endLocked marks the tunnel ended; it reports whether this call did it. The caller
// must call afterEnd after releasing mu when it returns true.
func (t *tunnelConn) endLocked(cause error) bool {
	if t.ended {
		return false
	}
	t.ended = true
	t.cause = cause
	if cause != nil {
		// Before anybody can see the end: the handler's ctx must carry this cause,
		// not the plain cancel of runTunnel.
		t.cancel(cause)
	}
	close(t.done)
	t.notifyLocked()
	return true
}

// afterEnd logs and unregisters an ended tunnel. Called once.
func (t *tunnelConn) afterEnd(cause error) {
	if cause != nil {
		t.log.Debug().Err(cause).Msg("tunnel ended")
	}
	t.s.remove(t)
}

func (t *tunnelConn) pendingLocked() int { return t.out.n }

func (t *tunnelConn) inLenLocked() int { return len(t.in) - t.inHead }

// notifyLocked wakes every goroutine waiting for a change of the tunnel's state.
func (t *tunnelConn) notifyLocked() {
	if t.wake != nil {
		close(t.wake)
		t.wake = nil
	}
}

// waitChLocked returns a channel closed at the next notifyLocked. It only allocates
// when somebody waits.
func (t *tunnelConn) waitChLocked() <-chan struct{} {
	if t.wake == nil {
		t.wake = make(chan struct{})
	}
	return t.wake
}

// appendInLocked appends a /send body to the inbound bytes.
func (t *tunnelConn) appendInLocked(b []byte) {
	if cap(t.in)-len(t.in) < len(b) && t.inHead > 0 {
		n := copy(t.in, t.in[t.inHead:])
		t.in, t.inHead = t.in[:n], 0
	}
	t.in = append(t.in, b...)
}

// touch records request activity for the idle reaper.
func (t *tunnelConn) touch() {
	t.mu.Lock()
	t.lastActive = time.Now()
	t.mu.Unlock()
}

// sleepLocked releases mu until the tunnel's state changes, until passes or ctx is done,
// and reports whether a change woke it. The caller holds mu and sem (it uses t.timer).
func (t *tunnelConn) sleepLocked(ctx context.Context, until time.Time) bool {
	d := time.Until(until)
	if d <= 0 {
		return false
	}
	ch := t.waitChLocked()
	t.mu.Unlock()
	t.timer.Reset(d)
	woke := false
	select {
	case <-ch:
		woke = true
	case <-t.timer.C:
	case <-ctx.Done():
	}
	t.timer.Stop()
	t.mu.Lock()
	return woke
}

// seqAction is what a request does, decided by its sequence number.
type seqAction uint8

const (
	seqNext   seqAction = iota + 1 // the next expected request: process it
	seqReplay                      // the last processed one again: resend its reply
	seqStale                       // an older one: the polling byte alone, nothing consumed
)

// acquire takes sem for a request with sequence number seq. A request ahead of
// sequence waits, without sem, for the missing ones for up to cfg.ReorderWait. On
// failure it returns the HTTP status to answer with, and does not hold sem.
func (t *tunnelConn) acquire(ctx context.Context, seq uint64) (seqAction, int) {
	var expired <-chan time.Time
	for {
		select {
		case t.sem <- struct{}{}:
		case <-t.done:
			return 0, 404
		case <-ctx.Done():
			return 0, 503
		}
		t.mu.Lock()
		if t.ended {
			t.mu.Unlock()
			<-t.sem
			return 0, 404
		}
		next := t.nextSeq
		switch {
		case seq == next:
			t.mu.Unlock()
			return seqNext, 0
		case seq < next:
			t.mu.Unlock()
			if t.replyValid && seq == t.replySeq {
				return seqReplay, 0
			}
			return seqStale, 0
		case seq-next > maxReorder:
			t.mu.Unlock()
			<-t.sem
			return 0, 400
		}
		ch := t.waitChLocked()
		t.mu.Unlock()
		<-t.sem
		if expired == nil {
			tm := time.NewTimer(t.s.cfg.ReorderWait)
			defer tm.Stop()
			expired = tm.C
		}
		select {
		case <-ch:
		case <-expired:
			return 0, 400
		case <-t.done:
			return 0, 404
		case <-ctx.Done():
			return 0, 503
		}
	}
}

// release gives sem back.
func (t *tunnelConn) release() { <-t.sem }

// feed appends a /send body to the inbound bytes (sem held). While more than
// cfg.MaxBodyBytes are unread it waits for the handler to read, for at most
// cfg.IdleTimeout; then the tunnel ends with ErrInputStalled. It returns the status to
// answer with on failure, 0 on success.
func (t *tunnelConn) feed(ctx context.Context, body []byte) int {
	t.mu.Lock()
	var until time.Time
	for t.inLenLocked() > int(t.s.cfg.MaxBodyBytes) && !t.localClosed && !t.ended {
		if until.IsZero() {
			until = time.Now().Add(t.s.cfg.IdleTimeout)
		}
		if !t.sleepLocked(ctx, until) {
			if ctx.Err() != nil {
				t.mu.Unlock()
				return 503
			}
			if !time.Now().Before(until) {
				t.mu.Unlock()
				t.closeRemote(ErrInputStalled)
				return 503
			}
		}
	}
	switch {
	case t.ended:
		t.mu.Unlock()
		return 404
	case t.localClosed:
		// Nobody reads any more; the bytes are dropped like on a closed socket.
	default:
		t.appendInLocked(body)
		t.notifyLocked()
	}
	t.mu.Unlock()
	return 0
}

// respond waits for output as cmd allows, takes up to cfg.ReplyMaxBytes of it into
// t.reply behind the polling byte and advances the sequence (sem held). The returned
// slice stays valid while sem is held.
func (t *tunnelConn) respond(ctx context.Context, cmd command, seq uint64) []byte {
	t.mu.Lock()
	t.awaitOutputLocked(ctx, cmd)
	n := min(t.pendingLocked(), t.s.cfg.ReplyMaxBytes)
	t.reply = append(t.reply[:0], t.pollByte(n > 0))
	t.reply = t.out.read(t.reply, n)
	if t.out.n == 0 && len(t.out.buf) > keepBufBytes {
		t.out.buf = nil
	}
	t.replySeq, t.replyValid = seq, true
	t.nextSeq = seq + 1
	t.lastActive = time.Now()
	t.notifyLocked() // room for blocked Writes; the next sequence number for waiting requests
	ended := t.localClosed && t.pendingLocked() == 0 && t.endLocked(nil)
	t.mu.Unlock()
	if ended {
		t.afterEnd(nil)
	}
	return t.reply
}

// awaitOutputLocked decides when a reply goes out (mu and sem held).
//
// /send: wait until the handler has read the whole body and blocks in Read again (so
// its synchronous answer, such as S0+S1+S2, is queued), then until no new output came
// for cfg.SendQuiet; all of it bounded by cfg.SendWait.
//
// /idle: answer at once when output is queued. Otherwise hold for up to cfg.IdleHold
// until output appears, then until no new output came for cfg.SendQuiet (still within
// IdleHold).
//
// Both stop early when a full reply (cfg.ReplyMaxBytes) is queued or the tunnel is
// closed on either side.
func (t *tunnelConn) awaitOutputLocked(ctx context.Context, cmd command) {
	cfg := &t.s.cfg
	stop := func() bool {
		return t.pendingLocked() >= cfg.ReplyMaxBytes || t.ended || t.localClosed
	}
	var until time.Time
	if cmd == cmdSend {
		until = time.Now().Add(cfg.SendWait)
		for !stop() && !(t.readWaiting && t.inLenLocked() == 0) {
			if !t.sleepLocked(ctx, until) && (ctx.Err() != nil || !time.Now().Before(until)) {
				return
			}
		}
	} else {
		if t.pendingLocked() > 0 {
			return
		}
		until = time.Now().Add(cfg.IdleHold)
		for !stop() && t.pendingLocked() == 0 {
			if !t.sleepLocked(ctx, until) && (ctx.Err() != nil || !time.Now().Before(until)) {
				return
			}
		}
	}
	if cfg.SendQuiet <= 0 {
		return
	}
	last := t.pendingLocked()
	quietEnd := minTime(time.Now().Add(cfg.SendQuiet), until)
	for !stop() {
		if !t.sleepLocked(ctx, quietEnd) && (ctx.Err() != nil || !time.Now().Before(quietEnd)) {
			return
		}
		if n := t.pendingLocked(); n != last {
			last = n
			quietEnd = minTime(time.Now().Add(cfg.SendQuiet), until)
		}
	}
}

// pollByte returns the polling byte of a reply (sem held): Red5's pollingDelay+1,
// where the delay is 0 while data flows and doubles 0→2→4→…→32 after more than
// redPollStart consecutive empty replies, giving 0x01, 0x03, 0x05, 0x09, 0x11, 0x21
// (rtmpt.md §3.2). Clients ignore the value; ffmpeg and librtmp only need the byte.
func (t *tunnelConn) pollByte(data bool) byte {
	if data {
		t.empties, t.delay = 0, 0
	} else {
		t.empties++
		if t.empties > redPollStart {
			switch {
			case t.delay == 0:
				t.delay = 2
			case t.delay < redPollMax:
				t.delay *= 2
			}
		}
	}
	return t.delay + 1
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// ring is a byte FIFO. Its buffer grows by doubling up to a limit and bytes are never
// moved except when it grows, so a full queue that is drained and refilled a little
// at a time costs no copying. Guarded by its owner's lock.
type ring struct {
	buf []byte // the whole slice is storage; queued bytes start at r and may wrap
	r   int    // read position
	n   int    // queued bytes
}

// write queues b. The caller ensures n+len(b) <= limit; the buffer never grows beyond
// max(limit, n+len(b)).
func (q *ring) write(b []byte, limit int) {
	if need := q.n + len(b); need > len(q.buf) {
		nb := make([]byte, min(max(2*len(q.buf), need, minOutBuf), max(limit, need)))
		if q.n > 0 {
			k := copy(nb, q.buf[q.r:min(q.r+q.n, len(q.buf))])
			copy(nb[k:q.n], q.buf)
		}
		q.buf, q.r = nb, 0
	}
	w := q.r + q.n
	if w >= len(q.buf) {
		w -= len(q.buf)
	}
	k := copy(q.buf[w:], b)
	copy(q.buf, b[k:])
	q.n += len(b)
}

// read appends the first k queued bytes (k <= n) to dst and dequeues them.
func (q *ring) read(dst []byte, k int) []byte {
	if k == 0 {
		return dst
	}
	end := q.r + k
	if end <= len(q.buf) {
		dst = append(dst, q.buf[q.r:end]...)
	} else {
		dst = append(dst, q.buf[q.r:]...)
		end -= len(q.buf)
		dst = append(dst, q.buf[:end]...)
	}
	q.r, q.n = end, q.n-k
	if q.r == len(q.buf) || q.n == 0 {
		q.r = 0
	}
	return dst
}
