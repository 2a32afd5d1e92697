package rtmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/relay"
	"github.com/mtrelay/mtrelay/relay/netio"
)

// Sentinel errors of the RTMP server.
var (
	// ErrTooManyConns is the close reason of a connection refused by Config.MaxConns.
	ErrTooManyConns = errors.New("rtmp: too many connections")
	// ErrServerClosed is returned by Serve after Close.
	ErrServerClosed = errors.New("rtmp: server closed")

	errBadHandshake = errors.New("rtmp: bad handshake")
	errProtocol     = errors.New("rtmp: protocol error")
)

// Config tunes the RTMP server. A zero value means the documented default.
type Config struct {
	// ChunkSize is the outgoing chunk size announced to every peer; default 4096.
	ChunkSize uint32
	// HandshakeTimeout bounds the handshake; default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that is not playing and sent nothing for this
	// long (an idle publisher); default 30s.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection whose writes make no progress for this long (a
	// dead player), give or take half of it; default 10s.
	WriteTimeout time.Duration
	// MaxMessageSize is the largest message a peer may send; default 8 MiB.
	MaxMessageSize uint32
	// MaxConns caps concurrent connections (TCP and tunnelled); default 4096.
	MaxConns int
	// AckWindow is the acknowledgement window announced to peers; default 2500000.
	AckWindow uint32
	// Access decides on every publish and play; nil allows everything.
	Access relay.AccessController
	// AccessTimeout bounds one Access decision; default 5s.
	AccessTimeout time.Duration
	// WriteCoalesce, when positive, lets a player's writer hold audio for up to this
	// long so it goes out with the next video frame in one write (fewer syscalls per
	// player, more audio latency, like SRS's merged writes). Video is never held.
	// Default 0: every batch is written at once.
	WriteCoalesce time.Duration
	// VOD, when set, lets play reach recorded files (vod.go): a name that is not
	// live but names a file plays the file at real-time pace, with seek and pause.
	// nil: live streams only.
	VOD VODSource
}

func (c *Config) setDefaults() error {
	if c.ChunkSize == 0 {
		c.ChunkSize = 4096
	}
	if c.ChunkSize < 128 || c.ChunkSize > 0xFFFFFF {
		return fmt.Errorf("rtmp config: ChunkSize %d outside 128..16777215", c.ChunkSize)
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 8 << 20
	}
	if c.MaxConns == 0 {
		c.MaxConns = 4096
	}
	if c.AckWindow == 0 {
		c.AckWindow = 2500000
	}
	if c.Access == nil {
		c.Access = relay.AllowAll
	}
	if c.AccessTimeout == 0 {
		c.AccessTimeout = 5 * time.Second
	}
	switch {
	case c.HandshakeTimeout < 0:
		return errors.New("rtmp config: HandshakeTimeout is negative")
	case c.IdleTimeout < 0:
		return errors.New("rtmp config: IdleTimeout is negative")
	case c.WriteTimeout < 0:
		return errors.New("rtmp config: WriteTimeout is negative")
	case c.MaxConns < 0:
		return errors.New("rtmp config: MaxConns is negative")
	}
	return nil
}

// Server serves RTMP connections from TCP listeners and from any net.Conn handed to
// ServeConn (RTMPT tunnels, TLS), publishing into and playing from one relay.Hub.
type Server struct {
	cfg  Config // immutable after New
	log  zerolog.Logger
	hub  *relay.Hub      // never nil
	base context.Context // canceled by Close; parent of every connection's context
	stop context.CancelFunc

	nextID   atomic.Uint64
	maxConns atomic.Int64             // Config.MaxConns, changed live by SetMaxConns
	timeouts atomic.Pointer[Timeouts] // Config's timeouts, changed live by SetTimeouts; read once per connection
	active   atomic.Int64             // connections being served
	players  atomic.Int64             // plays in progress
	stats    serverStats              // cumulative counters for Stats
	wg       sync.WaitGroup           // connection goroutines started by Serve and ServeConn

	mu           sync.Mutex
	conns        map[*conn]struct{} // guarded by mu
	poller       netio.LazyPoller   // where waiting players park (parker)
	noPollerOnce sync.Once          // logs once that there is no poller
}

// New returns a server that publishes into and plays from hub.
func New(cfg Config, log zerolog.Logger, hub *relay.Hub) (*Server, error) {
	if hub == nil {
		return nil, errors.New("rtmp: nil hub")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	base, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg:   cfg,
		log:   log.With().Str("component", "rtmp").Logger(),
		hub:   hub,
		base:  base,
		stop:  stop,
		conns: make(map[*conn]struct{}),
	}
	s.maxConns.Store(int64(cfg.MaxConns))
	s.timeouts.Store(&Timeouts{HandshakeTimeout: cfg.HandshakeTimeout, IdleTimeout: cfg.IdleTimeout})
	return s, nil
}

// Timeouts are the Config timeouts SetTimeouts changes.
type Timeouts struct{ HandshakeTimeout, IdleTimeout time.Duration }

// SetTimeouts changes Config.HandshakeTimeout and Config.IdleTimeout while the server
// runs (a config reload), for connections accepted from now on; running connections
// keep theirs.
func (s *Server) SetTimeouts(t Timeouts) error {
	if t.HandshakeTimeout <= 0 || t.IdleTimeout <= 0 {
		return fmt.Errorf("rtmp: timeouts must be positive (handshake %s, idle %s)", t.HandshakeTimeout, t.IdleTimeout)
	}
	s.timeouts.Store(&t)
	return nil
}

// connConfig returns the configuration a connection starting now runs with.
func (s *Server) connConfig() *Config {
	c := s.cfg
	t := s.timeouts.Load()
	c.HandshakeTimeout, c.IdleTimeout = t.HandshakeTimeout, t.IdleTimeout
	return &c
}

// SetMaxConns changes Config.MaxConns while the server runs (a config reload). It
// applies to connections accepted from now on; connections above a lowered limit are
// not closed.
func (s *Server) SetMaxConns(n int) error {
	if n <= 0 {
		return errors.New("rtmp: MaxConns must be positive")
	}
	s.maxConns.Store(int64(n))
	return nil
}

// Serve accepts connections on ln until ctx is done or Close is called, then closes ln.
// Connections it accepted keep running until they end or Close is called, so a caller
// can stop accepting first and let players hear that their stream ended.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	stopBase := context.AfterFunc(s.base, func() { ln.Close() })
	defer stopBase()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if s.base.Err() != nil {
				return ErrServerClosed
			}
			if !errors.Is(err, net.ErrClosed) {
				// Back off on transient accept errors (EMFILE and the like) instead of
				// spinning, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil
				}
				continue
			}
			return fmt.Errorf("rtmp accept: %w", err)
		}
		delay = 0
		s.wg.Add(1)
		go s.serveConn(s.base, nc, s.parker(), s.wg.Done)
	}
}

// ServeConn serves one connection (a TCP, TLS or tunnelled conn) until it ends, ctx is
// done or the server is closed. It closes nc. If nc has a method Protocol() string, its
// result names the protocol in logs and stats ("rtmpt"); otherwise "rtmps" for
// *tls.Conn and "rtmp".
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) {
	s.wg.Add(1)
	defer s.wg.Done()
	if s.base.Err() != nil {
		nc.Close()
		return
	}
	stop := context.AfterFunc(s.base, func() { nc.Close() })
	defer stop()
	s.serveConn(ctx, nc, nil, func() {}) // no parking: it returns when the connection ended
}

// Conns returns the number of connections being served.
func (s *Server) Conns() int { return int(s.active.Load()) }

// Parked returns the number of connections parked now: players waiting for their
// peer with no goroutine of their own (see relay/netio.Poller).
func (s *Server) Parked() int { return s.poller.Parked() }

// Players returns the number of plays in progress. After the hub is closed it falls to
// zero as players are told their stream ended, which shutdown waits for.
func (s *Server) Players() int { return int(s.players.Load()) }

// Close closes every connection and waits until their goroutines are gone or ctx is
// done. Serve calls return.
func (s *Server) Close(ctx context.Context) error {
	s.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	defer s.poller.Close() // connections closed above were taken back from it (netio.Conn.Shut)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rtmp close: %w", context.Cause(ctx))
	}
}

// serveConn serves nc and calls done once the connection has ended. With a poller,
// a waiting player may park (conn.park): serveConn then returns early and the
// goroutine that resumes the connection ends it and calls done.
func (s *Server) serveConn(ctx context.Context, nc net.Conn, poller *netio.Poller, done func()) {
	n := s.active.Add(1)
	c := newConn(s, nc)
	s.stats.accepted.Add(1)
	if limit := s.maxConns.Load(); n > limit {
		s.stats.handshake[iHandshakeRefused].Add(1)
		c.log.Warn().Int64("max_conns", limit).Msg("connection refused: too many connections")
		nc.Close()
		s.active.Add(-1)
		done()
		return
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.leave = func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.active.Add(-1)
		done()
	}
	if c.raw != nil {
		c.poller = poller
	}
	if !c.run(ctx) {
		c.leave()
	}
}

// parker returns the poller accepted connections park with, starting it on first use;
// nil when parking is not available (not Linux) or the server is closed.
func (s *Server) parker() *netio.Poller {
	if s.base.Err() != nil {
		return nil
	}
	p, err := s.poller.Get()
	if err != nil {
		s.noPollerOnce.Do(func() { s.log.Debug().Err(err).Msg("players keep a goroutine each: no poller") })
	}
	return p
}
