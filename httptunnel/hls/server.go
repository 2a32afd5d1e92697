package hls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
)

// Protocol is the relay.SubscribeOptions.Protocol of the muxers' subscribers, the key
// of the HLS viewer count in relay.StreamStats.Subscribers.
const Protocol = "hls"

// Errors of the package.
var (
	// ErrIdle ends a muxer that received no request for Config.IdleTimeout.
	ErrIdle = errors.New("hls: muxer idle")
	// ErrStreamEnded ends a muxer whose publisher left or changed codec parameters.
	ErrStreamEnded = errors.New("hls: stream ended")
	// ErrServerClosed means Server.Close was called.
	ErrServerClosed = errors.New("hls: server closed")
	// ErrPanic ends a muxer whose code (ours, gohlslib's or mediacommon's) panicked on
	// the stream's data; the panic value and stack are logged.
	ErrPanic = errors.New("hls: muxer panicked")
)

// Hub is what the server needs of *relay.Hub.
type Hub interface {
	Subscribe(key string, opts relay.SubscribeOptions) (*relay.Subscriber, error)
	Stream(key string) (relay.StreamStats, bool)
}

// Config tunes a Server. A zero value means the documented default.
type Config struct {
	// IdleTimeout frees a stream's muxer after no request for this long. Default 30s.
	IdleTimeout time.Duration
	// ViewerWindow: a client counts as an HLS viewer for this long after its last
	// request. Default 10s.
	ViewerWindow time.Duration
	// StartTimeout bounds how long the first request waits for the stream's codec
	// parameters; then 503. Default 5s.
	StartTimeout time.Duration
	// SegmentCount is the number of segments kept per stream (at least 7 for LL-HLS).
	// Default 7.
	SegmentCount int
	// SegmentMinDuration is the minimum segment duration (a segment starts on a
	// keyframe). Default 1s.
	SegmentMinDuration time.Duration
	// PartMinDuration is the minimum LL-HLS part duration. Default 200ms.
	PartMinDuration time.Duration
	// SegmentMaxSize bounds one segment in bytes. Default 16 MiB.
	SegmentMaxSize uint64
	// MaxStreams caps the muxers running at once; more get 503. Default 1000.
	MaxStreams int
	// Access decides on viewers (relay.ActionPlay, Protocol "hls", the request's
	// query without _HLS_ parameters, client address), asked on playlist requests
	// only (access.go); a refusal is answered 403, a rename serves the other
	// stream. Nil allows everyone.
	Access relay.AccessController
	// AccessTimeout bounds one Access decision. Default 5s.
	AccessTimeout time.Duration
	// AccessTTL is how long an allowed playlist request stands for the same stream,
	// query and client IP: playlist requests within it are not asked again, and
	// segments are served for this long after the last playlist request. Default 10s.
	AccessTTL time.Duration
}

// Defaults of Config.
const (
	DefaultIdleTimeout        = 30 * time.Second
	DefaultViewerWindow       = 10 * time.Second
	DefaultStartTimeout       = 5 * time.Second
	DefaultSegmentCount       = 7
	DefaultSegmentMinDuration = time.Second
	DefaultPartMinDuration    = 200 * time.Millisecond
	DefaultSegmentMaxSize     = 16 << 20
	DefaultMaxStreams         = 1000
	maxClientsPerStream       = 100000 // bounds the viewer-tracking map
)

func (c Config) withDefaults() (Config, error) {
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"IdleTimeout", &c.IdleTimeout, DefaultIdleTimeout},
		{"ViewerWindow", &c.ViewerWindow, DefaultViewerWindow},
		{"StartTimeout", &c.StartTimeout, DefaultStartTimeout},
		{"SegmentMinDuration", &c.SegmentMinDuration, DefaultSegmentMinDuration},
		{"PartMinDuration", &c.PartMinDuration, DefaultPartMinDuration},
		{"AccessTimeout", &c.AccessTimeout, 5 * time.Second},
		{"AccessTTL", &c.AccessTTL, 10 * time.Second},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("hls: Config.%s must not be negative", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.SegmentCount == 0 {
		c.SegmentCount = DefaultSegmentCount
	}
	if c.SegmentCount < 7 {
		return c, errors.New("hls: Config.SegmentCount must be at least 7 (LL-HLS)")
	}
	if c.SegmentMaxSize == 0 {
		c.SegmentMaxSize = DefaultSegmentMaxSize
	}
	if c.MaxStreams < 0 {
		return c, errors.New("hls: Config.MaxStreams must not be negative")
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	return c, nil
}

// Server serves the HLS playlists and media of every live stream of a hub.
type Server struct {
	cfg Config         // immutable after New
	log zerolog.Logger // immutable after New
	hub Hub            // immutable after New

	ctx  context.Context // parent of the muxers' contexts; canceled by Close
	stop context.CancelCauseFunc
	wg   sync.WaitGroup // janitor and muxer goroutines

	panics atomic.Int64 // muxers and requests ended by a recovered panic
	grants grants       // allowed viewers (access.go)

	// testHookFrame, if set (by package tests, before the first request), is called
	// by each muxer with its stream key for every frame before the frame is muxed.
	testHookFrame func(key string, f relay.Frame)

	mu      sync.Mutex
	closed  bool              // guarded by mu
	streams map[string]*entry // guarded by mu
}

// New returns a Server for the streams of hub and starts its janitor; call Close.
func New(cfg Config, log zerolog.Logger, hub Hub) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, errors.New("hls: nil Hub")
	}
	s := &Server{
		cfg:     cfg,
		log:     log.With().Str("component", "hls").Logger(),
		hub:     hub,
		streams: make(map[string]*entry),
	}
	s.ctx, s.stop = context.WithCancelCause(context.Background())
	s.wg.Go(s.janitor)
	return s, nil
}

// Mount registers s on mux for GET /{app}/{stream}/{file}.
func (s *Server) Mount(mux *http.ServeMux) { mux.Handle("GET /{app}/{stream}/{file}", s) }

// Viewers returns the HLS viewers of the stream key: distinct clients seen within
// Config.ViewerWindow.
func (s *Server) Viewers(key string) int {
	s.mu.Lock()
	e := s.streams[key]
	s.mu.Unlock()
	if e == nil {
		return 0
	}
	return int(e.viewers.Load())
}

// Panics returns how many muxers and requests were ended by a recovered panic.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Muxers returns the number of running muxers.
func (s *Server) Muxers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// entry is one stream's muxer.
type entry struct {
	key    string
	cancel context.CancelCauseFunc // ends run
	done   chan struct{}           // closed when run returned
	ready  chan struct{}           // closed when muxer or err is set
	muxer  *gohlslib.Muxer         // written before ready is closed, immutable after
	err    error                   // written before ready is closed, immutable after

	broken  atomic.Bool  // a request panicked in gohlslib: run closes the muxer aside
	lastReq atomic.Int64 // unix nanos of the last request
	viewers atomic.Int64 // distinct clients within ViewerWindow

	cmu     sync.Mutex
	clients map[string]time.Time // guarded by cmu: client id → last request
}

// touch records a request of client at now and recounts the viewers.
func (e *entry) touch(client string, now time.Time, window time.Duration) {
	e.lastReq.Store(now.UnixNano())
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if _, ok := e.clients[client]; ok || len(e.clients) < maxClientsPerStream {
		e.clients[client] = now
	}
	e.recountLocked(now, window)
}

func (e *entry) recountLocked(now time.Time, window time.Duration) {
	for c, t := range e.clients {
		if now.Sub(t) > window {
			delete(e.clients, c)
		}
	}
	e.viewers.Store(int64(len(e.clients)))
}

// clientID identifies an HLS client across its requests: remote IP and User-Agent.
func clientID(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host + "|" + r.UserAgent()
}

// ServeHTTP serves one playlist, init file, segment or part.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("app") + "/" + r.PathValue("stream")
	if relay.ValidateKey(key) != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	key, ok := s.authorize(w, r, key) // access.go
	if !ok {
		return
	}
	e, status, msg := s.entry(key, r.PathValue("file") == "index.m3u8")
	if e == nil {
		http.Error(w, msg, status)
		return
	}
	e.touch(clientID(r), time.Now(), s.cfg.ViewerWindow)
	t := time.NewTimer(s.cfg.StartTimeout)
	defer t.Stop()
	select {
	case <-e.ready:
	case <-t.C:
		http.Error(w, "hls: stream not ready", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	if e.err != nil {
		if errors.Is(e.err, flv.ErrUnsupportedCodec) {
			http.Error(w, e.err.Error(), http.StatusUnsupportedMediaType)
		} else {
			http.Error(w, e.err.Error(), http.StatusServiceUnavailable)
		}
		return
	}
	rw := &recorder{ResponseWriter: w}
	s.handle(e, rw, r)
	if !rw.wrote {
		http.NotFound(w, r) // gohlslib answers nothing for unknown files
	}
}

// handle passes a request to the stream's gohlslib muxer. A panic there (gohlslib
// parses the request's LL-HLS query parameters) ends that muxer, whose state may be
// broken, and that request; it is logged with its stack, and net/http's own recovery
// is told to stay quiet with http.ErrAbortHandler.
func (s *Server) handle(e *entry, w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			err := fmt.Errorf("%w: %v", ErrPanic, p)
			s.log.Error().Str("stream", e.key).Str("remote", r.RemoteAddr).Str("url", r.URL.String()).
				Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("hls request panicked")
			e.broken.Store(true)
			e.cancel(err)
			panic(http.ErrAbortHandler)
		}
	}()
	e.muxer.Handle(w, r)
}

// recorder tells whether gohlslib wrote a response.
type recorder struct {
	http.ResponseWriter
	wrote bool
}

// WriteHeader records that a response was written.
func (rw *recorder) WriteHeader(code int) { rw.wrote = true; rw.ResponseWriter.WriteHeader(code) }

// Write records that a response was written.
func (rw *recorder) Write(p []byte) (int, error) {
	rw.wrote = true
	return rw.ResponseWriter.Write(p)
}

// entry returns the muxer of key, starting it if start is set and the stream is live.
// On failure it returns nil with an HTTP status and message.
func (s *Server) entry(key string, start bool) (*entry, int, string) {
	s.mu.Lock()
	e := s.streams[key]
	s.mu.Unlock()
	if e != nil {
		return e, 0, ""
	}
	if !start {
		return nil, http.StatusNotFound, "hls: stream not live"
	}
	st, ok := s.hub.Stream(key)
	if !ok || !st.Live {
		return nil, http.StatusNotFound, "hls: stream not live"
	}
	if err := flv.CheckCodecs(st.Media.VideoCodec, st.Media.AudioCodec); err != nil {
		return nil, http.StatusUnsupportedMediaType, err.Error()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.streams[key]; e != nil {
		return e, 0, ""
	}
	if s.closed {
		return nil, http.StatusServiceUnavailable, ErrServerClosed.Error()
	}
	if len(s.streams) >= s.cfg.MaxStreams {
		return nil, http.StatusServiceUnavailable, "hls: too many streams"
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	e = &entry{
		key:     key,
		cancel:  cancel,
		done:    make(chan struct{}),
		ready:   make(chan struct{}),
		clients: make(map[string]time.Time),
	}
	e.lastReq.Store(time.Now().UnixNano())
	sub, err := s.hub.Subscribe(key, relay.SubscribeOptions{
		Protocol: Protocol,
		Remote:   "hls-muxer",
		OnEvict:  func(err error) { cancel(err) },
		Viewers:  func() int { return int(e.viewers.Load()) },
	})
	if err != nil {
		cancel(err)
		return nil, http.StatusServiceUnavailable, err.Error()
	}
	s.streams[key] = e
	s.wg.Go(func() {
		defer close(e.done)
		m := &muxer{s: s, e: e, sub: sub, log: s.log.With().Str("stream", key).Logger()}
		err := m.run(ctx)
		sub.Close()
		s.mu.Lock()
		if s.streams[key] == e {
			delete(s.streams, key)
		}
		s.mu.Unlock()
		if c := context.Cause(ctx); c != nil {
			err = c
		}
		ev := m.log.Debug()
		if !errors.Is(err, ErrIdle) && !errors.Is(err, ErrStreamEnded) && !errors.Is(err, ErrServerClosed) &&
			!errors.Is(err, relay.ErrClosed) && !errors.Is(err, relay.ErrNoPublisher) {
			ev = m.log.Warn()
		}
		ev.AnErr("reason", err).Int64("encode_errors", m.encodeErrs.Load()).Msg("hls muxer stopped")
	})
	return e, 0, ""
}

// janitor frees idle muxers and recounts viewers once a second.
func (s *Server) janitor() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			list := make([]*entry, 0, len(s.streams))
			for _, e := range s.streams {
				list = append(list, e)
			}
			s.mu.Unlock()
			for _, e := range list {
				if now.Sub(time.Unix(0, e.lastReq.Load())) > s.cfg.IdleTimeout {
					e.cancel(ErrIdle)
				}
				e.cmu.Lock()
				e.recountLocked(now, s.cfg.ViewerWindow)
				e.cmu.Unlock()
			}
		}
	}
}

// Close stops every muxer and the janitor and waits for them until ctx is done.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop(ErrServerClosed)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hls close: %w", context.Cause(ctx))
	}
}

// muxer feeds one stream's frames into gohlslib. Owned by the entry's goroutine.
type muxer struct {
	s   *Server
	e   *entry
	sub *relay.Subscriber
	log zerolog.Logger

	videoCfg, audioCfg []byte // sequence headers seen (payload after the FLV headers)
	avc                flv.AVCConfig
	asc                mpeg4audio.AudioSpecificConfig
	hasVideo, hasAudio bool
	video, audio       *gohlslib.Track
	mux                *gohlslib.Muxer
	start              time.Time // wall time of timestamp 0
	nalus              [][]byte  // reused
	encodeErrs         atomic.Int64
}

// run feeds the muxer until the stream ends, the muxer idles or fails. A panic (in
// gohlslib, mediacommon or our code, on the publisher's data) ends only this muxer as
// ErrPanic; it is logged with its stack and counted.
func (m *muxer) run(ctx context.Context) (err error) {
	panicked := false
	defer func() {
		if m.mux != nil {
			if panicked || m.e.broken.Load() {
				// gohlslib may have panicked holding its lock, which Close takes:
				// close it aside so that this stream can get a new muxer at once.
				// Should Close never return, Server.Close reports it.
				m.s.wg.Go(m.mux.Close)
			} else {
				m.mux.Close()
			}
		} else {
			// Release waiting requests.
			if err == nil {
				err = ErrStreamEnded
			}
			m.e.err = err
			close(m.e.ready)
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			panicked = true
			m.s.panics.Add(1)
			err = fmt.Errorf("%w: %v", ErrPanic, p)
			m.e.cancel(err)
			m.log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("hls muxer panicked")
		}
	}()
	frames := make([]relay.Frame, 0, 64)
	for {
		frames, err = m.sub.Read(ctx, frames[:0])
		if err != nil {
			return err
		}
		for _, f := range frames {
			if err := m.frame(f); err != nil {
				return err
			}
		}
		clear(frames)
	}
}

func (m *muxer) frame(f relay.Frame) error {
	if m.s.testHookFrame != nil {
		m.s.testHookFrame(m.e.key, f)
	}
	p := f.Packet
	switch p.Kind {
	case relay.KindStreamEnd:
		return ErrStreamEnded
	case relay.KindVideo:
		v, err := flv.ParseVideo(p.Payload)
		if err != nil {
			return nil // not decodable: skip, as a player would
		}
		if err := flv.CheckVideo(v); err != nil {
			return err
		}
		if p.SeqHeader {
			if m.mux != nil {
				if bytes.Equal(v.Data, m.videoCfg) {
					return nil
				}
				return fmt.Errorf("%w: new H.264 configuration", ErrStreamEnded)
			}
			cfg, err := flv.ParseAVCConfig(v.Data)
			if err != nil {
				return err
			}
			m.avc, m.videoCfg, m.hasVideo = cfg, bytes.Clone(v.Data), true
			return nil
		}
		if v.PacketType != flv.AVCNALU {
			return nil
		}
		if err := m.ensure(); err != nil {
			return err
		}
		if m.video == nil {
			return nil
		}
		m.nalus, err = flv.SplitAVCC(m.nalus[:0], v.Data, m.avc.LengthSize)
		if err != nil || len(m.nalus) == 0 {
			m.encodeError(fmt.Errorf("bad AVC access unit: %w", err))
			return nil
		}
		if v.Keyframe && !hasSPS(m.nalus) {
			// gohlslib's DTS extractor reads the SPS in band, as MPEG-TS and RTSP
			// sources carry it; FLV carries it only in the sequence header.
			m.nalus = append(m.nalus, nil, nil)
			copy(m.nalus[2:], m.nalus)
			m.nalus[0], m.nalus[1] = m.avc.SPS[0], m.avc.PPS[0]
		}
		pts := (f.Timestamp + int64(v.CTS)) * 90
		if err := m.mux.WriteH264(m.video, m.start.Add(time.Duration(f.Timestamp)*time.Millisecond), pts, m.nalus); err != nil {
			m.encodeError(err)
		}
		clear(m.nalus)
	case relay.KindAudio:
		a, err := flv.ParseAudio(p.Payload)
		if err != nil {
			return nil
		}
		if err := flv.CheckAudio(a); err != nil {
			return err
		}
		if p.SeqHeader {
			if m.mux != nil {
				if bytes.Equal(a.Data, m.audioCfg) {
					return nil
				}
				return fmt.Errorf("%w: new AAC configuration", ErrStreamEnded)
			}
			if err := m.asc.Unmarshal(a.Data); err != nil {
				return fmt.Errorf("AAC config: %w", err)
			}
			m.audioCfg, m.hasAudio = bytes.Clone(a.Data), true
			return nil
		}
		if err := m.ensure(); err != nil {
			return err
		}
		if m.audio == nil || len(a.Data) == 0 {
			return nil
		}
		pts := f.Timestamp * int64(m.asc.SampleRate) / 1000
		if err := m.mux.WriteMPEG4Audio(m.audio, m.start.Add(time.Duration(f.Timestamp)*time.Millisecond), pts, [][]byte{a.Data}); err != nil {
			m.encodeError(err)
		}
	}
	return nil
}

// ensure starts the gohlslib muxer at the first media frame, when the sequence headers
// (delivered by the hub before the GOP) tell the tracks.
func (m *muxer) ensure() error {
	if m.mux != nil {
		return nil
	}
	var tracks []*gohlslib.Track
	if m.hasVideo {
		m.video = &gohlslib.Track{Codec: &codecs.H264{SPS: m.avc.SPS[0], PPS: m.avc.PPS[0]}, ClockRate: 90000}
		tracks = append(tracks, m.video)
	}
	if m.hasAudio {
		m.audio = &gohlslib.Track{Codec: &codecs.MPEG4Audio{Config: m.asc}, ClockRate: m.asc.SampleRate}
		tracks = append(tracks, m.audio)
	}
	if len(tracks) == 0 {
		return fmt.Errorf("%w: media before any H.264 or AAC sequence header", flv.ErrUnsupportedCodec)
	}
	mux := &gohlslib.Muxer{
		Tracks:             tracks,
		Variant:            gohlslib.MuxerVariantLowLatency,
		SegmentCount:       m.s.cfg.SegmentCount,
		SegmentMinDuration: m.s.cfg.SegmentMinDuration,
		PartMinDuration:    m.s.cfg.PartMinDuration,
		SegmentMaxSize:     m.s.cfg.SegmentMaxSize,
		OnEncodeError:      m.encodeError,
	}
	if err := mux.Start(); err != nil {
		return fmt.Errorf("hls muxer start: %w", err)
	}
	m.mux = mux
	m.start = time.Now()
	m.e.muxer = mux
	close(m.e.ready)
	m.log.Debug().Bool("video", m.hasVideo).Bool("audio", m.hasAudio).Msg("hls muxer started")
	return nil
}

// encodeError bridges gohlslib's OnEncodeError to zerolog: the first error and then
// one in every 100 are logged, so a broken stream cannot flood the log.
func (m *muxer) encodeError(err error) {
	if n := m.encodeErrs.Add(1); n == 1 || n%100 == 0 {
		m.log.Warn().Err(err).Int64("count", n).Msg("hls encode error")
	}
}

var _ http.Handler = (*Server)(nil)

// hasSPS reports whether an access unit carries a sequence parameter set.
func hasSPS(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && n[0]&0x1F == 7 {
			return true
		}
	}
	return false
}
