package httptunnel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// ConnHandler serves one tunnel as a net.Conn; cmd/mtrelay passes *rtmp.Server. The
// Server runs ServeConn in its own goroutine per tunnel and waits for it in Close. ctx
// is canceled when the tunnel ends (its cause is one of the Err… causes) or the Server
// closes. ServeConn should return once c's Read or Write fails.
type ConnHandler interface {
	ServeConn(ctx context.Context, c net.Conn)
}

// ConnHandlerFunc adapts a function to a ConnHandler.
type ConnHandlerFunc func(ctx context.Context, c net.Conn)

// ServeConn calls f(ctx, c).
func (f ConnHandlerFunc) ServeConn(ctx context.Context, c net.Conn) { f(ctx, c) }

// Server serves RTMPT tunnels over HTTP (Red5 RTMPT; rtmpt.md §3). It is an
// http.Handler for POST /open/1, /send/<id>/<seq>, /idle/<id>/<seq>, /close/<id>/<seq>
// and /fcs/ident2 (always 404); mount it with Mount or on those paths yourself. One
// Server may serve the HTTP and the HTTPS listener at once (see Config.Protocol).
//
// Sequence numbers (rtmpt.md §3.1: 0 after /open/1, +1 per send, idle and close):
//   - the next expected number is processed;
//   - a replay of the last processed number gets the very same reply again and its body
//     is not fed again, so a proxy that retries a request whose reply it lost neither
//     loses nor duplicates bytes;
//   - an older number gets the polling byte alone and consumes nothing;
//   - a number ahead of the next expected one waits up to Config.ReorderWait for the gap
//     to fill (requests from different connections may overtake each other), then gets
//     400; more than 64 ahead gets 400 at once;
//   - /close is accepted with any number: the client is leaving anyway.
type Server struct {
	cfg  Config                 // immutable after New; for the fields of Limits, read lim
	lim  atomic.Pointer[Limits] // never nil after New; replaced by SetLimits (limits.go)
	log  zerolog.Logger         // immutable after New
	h    ConnHandler            // immutable after New
	ctx  context.Context        // parent of the tunnels' contexts; canceled by Close
	stop context.CancelCauseFunc
	bufs sync.Pool // *[]byte request body buffers

	refusals refusalLog // rate-limited warn lines for refused requests

	closeOnce sync.Once
	mu        sync.Mutex
	closed    bool                   // guarded by mu: Close was called; /open/1 gets 503
	tunnels   map[string]*tunnelConn // guarded by mu: tunnels that serve requests
	live      int                    // guarded by mu: tunnels counted against MaxTunnels
	perIP     map[netip.Addr]int     // guarded by mu: live tunnels per client IP
	running   int                    // guarded by mu: goroutines started by the Server, not yet returned
	allDone   chan struct{}          // closed (under mu) once closed and running == 0; never reopened

	panics atomic.Int64 // handler panics recovered
}

// New returns a Server that hands every tunnel to h. It validates cfg (zero fields get
// the defaults documented on Config) and starts the idle reaper; call Close to stop it.
func New(cfg Config, log zerolog.Logger, h ConnHandler) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("httptunnel: nil ConnHandler")
	}
	ctx, stop := context.WithCancelCause(context.Background())
	s := &Server{
		cfg:     cfg,
		log:     log.With().Str("component", "httptunnel").Logger(),
		h:       h,
		ctx:     ctx,
		stop:    stop,
		tunnels: make(map[string]*tunnelConn),
		perIP:   make(map[netip.Addr]int),
		allDone: make(chan struct{}),
	}
	s.refusals.log = s.log
	s.lim.Store(limitsOf(cfg))
	s.mu.Lock()
	s.goLocked(s.reap)
	s.mu.Unlock()
	return s, nil
}

// Mount registers s on mux for the RTMPT paths: /open/, /send/, /idle/, /close/ and
// /fcs/ident2.
func (s *Server) Mount(mux *http.ServeMux) {
	for _, p := range []string{"/open/", "/send/", "/idle/", "/close/", "/fcs/ident2"} {
		mux.Handle(p, s)
	}
}

// Tunnels returns the number of open tunnels: opened and not yet both ended and
// returned from ServeConn. This is the number MaxTunnels limits.
func (s *Server) Tunnels() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// Drain waits until every tunnel whose handler has returned has handed its last queued
// output to its client (on the client's next /idle) and ended, or until ctx is done.
// Tunnels whose handler still runs are not waited for. Shutdown calls it after players
// were told their stream ended and before Close, so RTMPT players get that message too.
func (s *Server) Drain(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		flushing := 0
		s.mu.Lock()
		for _, t := range s.tunnels {
			// In the map with one reference left: ServeConn has returned (it held
			// the other), output may still be queued.
			if t.refs.Load() == 1 {
				flushing++
			}
		}
		s.mu.Unlock()
		if flushing == 0 {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("httptunnel: drain: %d tunnels still flushing: %w", flushing, context.Cause(ctx))
		}
	}
}

// Close refuses new tunnels, ends every tunnel (the conns' Read returns io.EOF, the
// handlers' ctx is canceled with ErrServerClosed) and waits until the reaper and every
// ServeConn goroutine returned, or ctx is done. It may be called more than once.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		ts := make([]*tunnelConn, 0, len(s.tunnels))
		for _, t := range s.tunnels {
			ts = append(ts, t)
		}
		if s.running == 0 {
			close(s.allDone)
		}
		s.mu.Unlock()
		s.stop(ErrServerClosed)
		for _, t := range ts {
			t.closeRemote(ErrServerClosed)
		}
	})
	select {
	case <-s.allDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("httptunnel: close: %w", context.Cause(ctx))
	}
}

// goLocked runs f in a goroutine that Close waits for. s.mu is held.
func (s *Server) goLocked(f func()) {
	s.running++
	go func() {
		defer func() {
			s.mu.Lock()
			s.running--
			if s.closed && s.running == 0 {
				close(s.allDone)
			}
			s.mu.Unlock()
		}()
		f()
	}()
}

// reap closes tunnels that saw no request for IdleTimeout. It checks every
// IdleTimeout/4, so a tunnel ends between 1 and 1.25 IdleTimeout after its last request.
// It also logs the refusal counts that refusalLog held back.
func (s *Server) reap() {
	period := max(s.limits().IdleTimeout/4, time.Millisecond)
	tick := time.NewTicker(period)
	defer tick.Stop()
	var ts []*tunnelConn // owned by reap
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		idleTimeout := s.limits().IdleTimeout // SetLimits may have changed it
		if p := max(idleTimeout/4, time.Millisecond); p != period {
			period = p
			tick.Reset(p)
		}
		ts = ts[:0]
		s.mu.Lock()
		for _, t := range s.tunnels {
			ts = append(ts, t)
		}
		s.mu.Unlock()
		now := time.Now()
		s.refusals.flush(now)
		for i, t := range ts {
			t.mu.Lock()
			idle := now.Sub(t.lastActive) >= idleTimeout
			t.mu.Unlock()
			if idle {
				t.closeRemote(ErrIdleTimeout)
			}
			ts[i] = nil
		}
	}
}

// remove unregisters an ended tunnel. Called once per tunnel, by afterEnd.
func (s *Server) remove(t *tunnelConn) {
	s.mu.Lock()
	if s.tunnels[t.id] == t {
		delete(s.tunnels, t.id)
	}
	s.mu.Unlock()
	s.unref(t)
}

// unref drops one of the tunnel's two references (map entry, ServeConn goroutine); the
// last one frees its slot in the limits.
func (s *Server) unref(t *tunnelConn) {
	if t.refs.Add(-1) != 0 {
		return
	}
	s.mu.Lock()
	s.live--
	if n := s.perIP[t.ip] - 1; n > 0 {
		s.perIP[t.ip] = n
	} else {
		delete(s.perIP, t.ip)
	}
	s.mu.Unlock()
}

func (s *Server) lookup(id string) *tunnelConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tunnels[id]
}

// runTunnel runs the handler for t; a panic there ends only this tunnel.
func (s *Server) runTunnel(t *tunnelConn) {
	defer s.unref(t)
	defer func() {
		t.log.Debug().AnErr("cause", context.Cause(t.ctx)).Msg("tunnel handler returned")
		t.cancel(context.Canceled)
	}()
	defer t.Close()
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			t.log.Error().Str("panic", fmt.Sprint(p)).Str("stack", string(debug.Stack())).Msg("handler panic, tunnel closed")
		}
	}()
	s.h.ServeConn(t.ctx, t)
}

// Static reply bodies and header values. Header value slices have len == cap, so a
// later Add by someone else copies instead of writing into them.
var (
	hdrContentType = []string{"application/x-fcs"}
	hdrNoCache     = []string{"no-cache"}
	hdrKeepAlive   = []string{"Keep-Alive"}
	pollTable      = func() (b [256]byte) {
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()
)

// writeReply writes a 200 reply exactly as ffmpeg and librtmp need it (rtmpt.md §3.2):
// explicit Content-Length (never chunked), Content-Type application/x-fcs,
// Cache-Control no-cache, Connection Keep-Alive.
func writeReply(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = hdrContentType
	h["Cache-Control"] = hdrNoCache
	h["Connection"] = hdrKeepAlive
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(http.StatusOK)
	w.Write(body) //nolint:errcheck // the client went away; nothing to do
}

func fail(w http.ResponseWriter, code int) {
	http.Error(w, http.StatusText(code), code)
}

// isFCS reports whether a Content-Type value is application/x-fcs. Header names are
// case-insensitive already (ffmpeg sends "Content-type"); the value is compared
// case-insensitively and parameters are ignored.
func isFCS(v string) bool {
	mt, _, _ := strings.Cut(v, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/x-fcs")
}

// ServeHTTP serves one RTMPT request. Statuses: 404 for an unknown path, /fcs/ident2
// and an unknown or ended tunnel id; 405 for a method other than POST; 400 for a
// missing or wrong Content-Type, a malformed sequence number or a sequence gap that
// did not fill; 413 for a body above MaxBodyBytes; 503 on /open/1 above MaxTunnels or
// MaxTunnelsPerIP or after Close. The 503s of the limits, 413 and the 404 of an
// unknown id are logged at warn, at most one line per reason per refusalLogInterval
// (refusalLog); every refusal is logged at debug.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cmd, id, seq, err := parsePath(r.URL.Path)
	switch {
	case errors.Is(err, errBadSeq):
		fail(w, http.StatusBadRequest)
		return
	case err != nil, cmd == cmdIdent:
		fail(w, http.StatusNotFound)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		fail(w, http.StatusMethodNotAllowed)
		return
	case !isFCS(r.Header.Get("Content-Type")):
		fail(w, http.StatusBadRequest)
		return
	case r.ContentLength > s.limits().MaxBodyBytes:
		s.refuse(w, r, refusedBodyTooLarge)
		return
	}
	if cmd == cmdOpen {
		s.serveOpen(w, r)
		return
	}
	t := s.lookup(id)
	if t == nil {
		s.refuse(w, r, refusedUnknownID)
		return
	}
	t.touch()
	bp := s.getBuf()
	defer s.putBuf(bp)
	body, err := s.readBody(w, r, (*bp)[:0])
	*bp = body
	if err != nil {
		s.failBody(w, r, err)
		return
	}
	if cmd == cmdClose {
		t.closeRemote(ErrClientClosed)
		writeReply(w, pollTable[0:1]) // R5 and rtmplite answer /close with 0x00
		return
	}
	act, code := t.acquire(r.Context(), seq)
	if code != 0 {
		fail(w, code)
		return
	}
	defer t.release()
	var reply []byte
	switch act {
	case seqReplay:
		reply = t.reply
		t.log.Debug().Uint64("seq", seq).Msg("replayed request, reply resent")
	case seqStale:
		reply = pollTable[t.delay+1 : t.delay+2]
		t.log.Debug().Uint64("seq", seq).Msg("stale request ignored")
	default:
		if cmd == cmdSend {
			if code := t.feed(r.Context(), body); code != 0 {
				fail(w, code)
				return
			}
		}
		reply = t.respond(r.Context(), cmd, seq)
	}
	writeReply(w, reply)
	t.touch()
}

// serveOpen creates a tunnel and starts its handler (POST /open/1; rtmpt.md §3.4).
// The reply is "<id>\n" without a polling byte: librtmp takes Content-Length-1 bytes
// as the id.
func (s *Server) serveOpen(w http.ResponseWriter, r *http.Request) {
	bp := s.getBuf()
	body, err := s.readBody(w, r, (*bp)[:0])
	*bp = body
	s.putBuf(bp)
	if err != nil {
		s.failBody(w, r, err)
		return
	}
	remote, ip := remoteAddr(r.RemoteAddr)
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local == nil {
		local = &net.TCPAddr{}
	}
	proto := s.cfg.Protocol
	if proto == "" {
		proto = ProtocolRTMPT
		if r.TLS != nil {
			proto = ProtocolRTMPTS
		}
	}
	t := &tunnelConn{
		s:      s,
		proto:  proto,
		ip:     ip,
		local:  local,
		remote: remote,
		done:   make(chan struct{}),
		sem:    make(chan struct{}, 1),
		rdl:    makeDeadline(),
		wdl:    makeDeadline(),
		timer:  time.NewTimer(time.Hour),
	}
	t.timer.Stop()
	t.refs.Store(2)
	t.lastActive = time.Now()

	s.mu.Lock()
	closed := s.closed
	why := refusal(-1)
	switch {
	case closed:
	case s.live >= s.limits().MaxTunnels:
		why = refusedMaxTunnels
	case s.perIP[ip] >= s.limits().MaxTunnelsPerIP:
		why = refusedMaxTunnelsPerIP
	}
	if closed || why >= 0 {
		s.mu.Unlock()
		if closed { // shutting down: expected, not worth a warning
			s.log.Debug().Str("remote", r.RemoteAddr).Msg("tunnel refused: server closed")
			fail(w, http.StatusServiceUnavailable)
			return
		}
		s.refuse(w, r, why)
		return
	}
	for t.id == "" || s.tunnels[t.id] != nil {
		t.id = newID()
	}
	t.short = t.id[:8]
	t.log = s.log.With().Str("conn", t.short).Str("remote", remote.String()).Str("protocol", proto).Logger()
	t.ctx, t.cancel = context.WithCancelCause(s.ctx)
	s.tunnels[t.id] = t
	s.live++
	s.perIP[ip]++
	s.goLocked(func() { s.runTunnel(t) })
	s.mu.Unlock()

	t.log.Debug().Msg("tunnel opened")
	reply := make([]byte, 0, len(t.id)+1)
	writeReply(w, append(append(reply, t.id...), '\n'))
}

// newID returns a tunnel id: 128 bits from crypto/rand as 32 lowercase hex characters
// (alphanumeric, below the 62 bytes clients accept; rtmpt.md §3.4).
func newID() string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// remoteAddr turns http.Request.RemoteAddr into the conn's RemoteAddr and the key of
// the per-IP limit.
func remoteAddr(s string) (net.Addr, netip.Addr) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return textAddr(s), netip.Addr{}
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return net.TCPAddrFromAddrPort(ap), ap.Addr().WithZone("")
}

// textAddr is a net.Addr for a RemoteAddr that is not ip:port.
type textAddr string

// Network returns "tcp".
func (a textAddr) Network() string { return "tcp" }

// String returns the address as the HTTP server gave it.
func (a textAddr) String() string { return string(a) }

// readBody reads a request body of at most MaxBodyBytes into buf. A body with a
// declared length is already limited by it (checked against MaxBodyBytes in
// ServeHTTP); a chunked one goes through http.MaxBytesReader.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	var body io.Reader = r.Body
	if r.ContentLength < 0 {
		body = http.MaxBytesReader(w, r.Body, s.limits().MaxBodyBytes)
	} else if int64(cap(buf)) < r.ContentLength {
		buf = make([]byte, 0, r.ContentLength)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *Server) failBody(w http.ResponseWriter, r *http.Request, err error) {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		s.refuse(w, r, refusedBodyTooLarge)
		return
	}
	fail(w, http.StatusBadRequest)
}

// refuse answers r with why's status and logs it: at debug every time, at warn
// rate-limited by s.refusals. The path is not logged: it holds the tunnel id, the
// only credential of a live tunnel.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, why refusal) {
	info := refusalInfo[why]
	s.log.Debug().Str("remote", r.RemoteAddr).Str("reason", info.reason).Msg("request refused")
	s.refusals.refused(why, r.RemoteAddr)
	fail(w, info.status)
}

func (s *Server) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 2048)
	return &b
}

func (s *Server) putBuf(bp *[]byte) {
	if cap(*bp) <= keepBufBytes {
		*bp = (*bp)[:0]
		s.bufs.Put(bp)
	}
}
