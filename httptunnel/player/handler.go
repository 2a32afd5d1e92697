package player

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
)

// Protocol is the relay.SubscribeOptions.Protocol of page viewers, the key of their
// count in relay.StreamStats.Subscribers.
const Protocol = "page"

// Errors that end a page viewer.
var (
	// ErrHandlerClosed ends viewers when Handler.Close is called.
	ErrHandlerClosed = errors.New("player: handler closed")
	// ErrPanic ends a viewer whose fMP4 muxing (ours or mediacommon's, on the
	// publisher's data) panicked; the panic value and stack are logged, and the
	// viewer's connection is aborted.
	ErrPanic = errors.New("player: viewer panicked")
)

//go:embed page/player.html
var playerPage []byte

//go:embed page/list.html
var listPage string

var listTmpl = template.Must(template.New("list").Parse(listPage))

// Hub is what the handler needs of *relay.Hub.
type Hub interface {
	Subscribe(key string, opts relay.SubscribeOptions) (*relay.Subscriber, error)
	Stream(key string) (relay.StreamStats, bool)
	Streams() []relay.StreamStats
}

// Config tunes a Handler. A zero value means the documented default.
type Config struct {
	// RTMPPort is the port shown in the stream list's rtmp:// URLs. Default 1935.
	RTMPPort int
	// WriteTimeout drops a viewer whose connection accepts no write for this long.
	// Default 10s.
	WriteTimeout time.Duration
	// StartTimeout bounds the wait for the codec parameters of a live stream; then
	// 503. Default 10s.
	StartTimeout time.Duration
	// MaxViewers caps the page viewers at once; more get 503. Default 10000.
	MaxViewers int
	// Access decides on every fMP4 stream request (relay.ActionPlay, Protocol
	// "page", the request's query, which the page passes on from its own URL, and
	// client address); a refusal is answered 403, a rename serves the other stream.
	// Nil allows everyone.
	Access relay.AccessController
	// AccessTimeout bounds one Access decision. Default 5s.
	AccessTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultRTMPPort     = 1935
	DefaultWriteTimeout = 10 * time.Second
	DefaultStartTimeout = 10 * time.Second
	DefaultMaxViewers   = 10000
)

func (c Config) withDefaults() (Config, error) {
	if c.RTMPPort < 0 || c.RTMPPort > 65535 {
		return c, fmt.Errorf("player: Config.RTMPPort %d out of range", c.RTMPPort)
	}
	if c.WriteTimeout < 0 || c.StartTimeout < 0 || c.MaxViewers < 0 {
		return c, errors.New("player: Config.WriteTimeout, StartTimeout and MaxViewers must not be negative")
	}
	if c.RTMPPort == 0 {
		c.RTMPPort = DefaultRTMPPort
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.MaxViewers == 0 {
		c.MaxViewers = DefaultMaxViewers
	}
	if c.AccessTimeout <= 0 {
		c.AccessTimeout = 5 * time.Second
	}
	return c, nil
}

// Handler serves the stream list, the player page and its fMP4 streams.
type Handler struct {
	cfg Config         // immutable after New
	log zerolog.Logger // immutable after New
	hub Hub            // immutable after New

	ctx    context.Context // canceled by Close; viewers' requests are bound to it
	stop   context.CancelCauseFunc
	wg     sync.WaitGroup // viewer handler goroutines
	mu     sync.Mutex
	closed bool         // guarded by mu
	count  atomic.Int64 // viewers being served
	panics atomic.Int64 // viewers ended by a recovered panic

	// testHookFrame, if set (by package tests, before the first request), is called
	// by each viewer for every frame before the frame is muxed.
	testHookFrame func(relay.Frame)
}

// New returns a Handler for the streams of hub.
func New(cfg Config, log zerolog.Logger, hub Hub) (*Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, errors.New("player: nil Hub")
	}
	h := &Handler{cfg: cfg, log: log.With().Str("component", "player").Logger(), hub: hub}
	h.ctx, h.stop = context.WithCancelCause(context.Background())
	return h, nil
}

// Mount registers the handler's routes on mux: the stream list at GET / (exactly)
// and GET /streams (which stays the list when a console takes over / on an outer
// mux), GET /play/{app}/{stream} and GET /play/{app}/{stream}/live.mp4.
func (h *Handler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", h.serveList)
	mux.HandleFunc("GET /streams", h.serveList)
	mux.HandleFunc("GET /play/{app}/{stream}", h.servePage)
	mux.HandleFunc("GET /play/{app}/{stream}/live.mp4", h.serveStream)
}

// ServeHTTP serves the handler's routes; requests for other paths get 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mux := http.NewServeMux()
	h.Mount(mux)
	mux.ServeHTTP(w, r)
}

// Viewers returns the number of fMP4 streams being served.
func (h *Handler) Viewers() int { return int(h.count.Load()) }

// Panics returns how many viewers were ended by a recovered panic.
func (h *Handler) Panics() int64 { return h.panics.Load() }

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	if relay.ValidateKey(r.PathValue("app")+"/"+r.PathValue("stream")) != nil {
		http.NotFound(w, r)
		return
	}
	writePage(w, playerPage)
}

// writePage answers with one of the embedded player pages (live or VOD).
func writePage(w http.ResponseWriter, page []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'; media-src 'self' blob:; img-src 'self' data:")
	w.Write(page)
}

// listEntry is one row of the stream list.
type listEntry struct {
	Key, Play, RTMP, RTMPT, FLV, HLS string
	Live                             bool
	Media                            relay.MediaInfo
	Viewers                          map[string]int
}

func (h *Handler) serveList(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	hostname, _, err := net.SplitHostPort(host)
	if err != nil {
		hostname = host
	}
	if ip := net.ParseIP(hostname); ip != nil && ip.To4() == nil {
		hostname = "[" + hostname + "]"
	}
	scheme, tunnel := "http", "rtmpt"
	if r.TLS != nil {
		scheme, tunnel = "https", "rtmpts"
	}
	var rows []listEntry
	for _, st := range h.hub.Streams() {
		if !st.Live {
			continue
		}
		rows = append(rows, listEntry{
			Key:     st.Key,
			Play:    "/play/" + st.Key,
			RTMP:    "rtmp://" + hostname + ":" + strconv.Itoa(h.cfg.RTMPPort) + "/" + st.Key,
			RTMPT:   tunnel + "://" + host + "/" + st.Key,
			FLV:     scheme + "://" + host + "/" + st.Key + ".flv",
			HLS:     scheme + "://" + host + "/" + st.Key + "/index.m3u8",
			Live:    st.Live,
			Media:   st.Media,
			Viewers: st.Subscribers,
		})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if err := listTmpl.Execute(w, rows); err != nil {
		h.log.Debug().Err(err).Msg("stream list")
	}
}

// serveStream streams fMP4 to one page viewer until the publisher leaves.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("app") + "/" + r.PathValue("stream")
	if relay.ValidateKey(key) != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "no-cache, no-store")
	newKey, err := h.authorize(w, r, key)
	if err != nil {
		h.log.Warn().Str("stream", key).Str("remote", r.RemoteAddr).Err(err).Msg("page viewer refused")
		return
	}
	key = newKey
	st, ok := h.hub.Stream(key)
	if !ok || !st.Live {
		http.Error(w, "stream offline", http.StatusNotFound)
		return
	}
	if err := flv.CheckCodecs(st.Media.VideoCodec, st.Media.AudioCodec); err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	if !h.admit(w) {
		return
	}
	defer h.leave()
	ctx, cancel, release := h.viewerContext(r.Context())
	defer release()
	log := h.log.With().Str("stream", key).Str("remote", r.RemoteAddr).Logger()

	rc := http.NewResponseController(w)
	// The hub may call OnEvict from another goroutine until sub.Close returns; the
	// connection must not be touched once this handler returned (it may serve the
	// next request), hence returned, set under evictMu before returning.
	var evictMu sync.Mutex
	returned := false
	defer func() { evictMu.Lock(); returned = true; evictMu.Unlock() }()
	sub, err := h.hub.Subscribe(key, relay.SubscribeOptions{
		Protocol: Protocol,
		Remote:   r.RemoteAddr,
		OnEvict: func(err error) {
			// A slow viewer may be blocked in a write: end that write now rather
			// than at its WriteTimeout. write checks ctx after moving the deadline.
			cancel(err)
			evictMu.Lock()
			defer evictMu.Unlock()
			if !returned {
				_ = rc.SetWriteDeadline(time.Now())
			}
		},
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer func() { sub.CloseReason(relay.EndReasonOf(err)) }() // why it ended, for Hub.SubscriberEnds
	err = h.safeStream(ctx, rc, w, sub, log)
	if c := context.Cause(ctx); c != nil && !errors.Is(err, ErrPanic) {
		err = c
	}
	ss := sub.Stats()
	ev := log.Debug()
	if errors.Is(err, relay.ErrSlowSubscriber) || errors.Is(err, os.ErrDeadlineExceeded) {
		ev = log.Info()
	}
	ev.AnErr("reason", err).Int64("packets", ss.Packets).Int64("dropped", ss.Dropped).Msg("page viewer left")
	if errors.Is(err, ErrPanic) {
		panic(http.ErrAbortHandler) // the fMP4 stream may be cut mid-box: drop the connection
	}
}

// authorize asks Config.Access whether r may watch key and returns the key to serve
// (Access may rename it). A refusal is answered 403 and returned; with no Access,
// everyone may watch key.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, key string) (string, error) {
	if h.cfg.Access == nil {
		return key, nil
	}
	newKey, _, err := relay.Decide(r.Context(), h.cfg.Access, h.cfg.AccessTimeout, relay.AccessRequest{
		Action: relay.ActionPlay, Key: key, Query: r.URL.RawQuery, Protocol: Protocol, Remote: r.RemoteAddr,
	})
	if err != nil {
		http.Error(w, "player: forbidden: "+relay.DenialReason(err), http.StatusForbidden)
		return "", err
	}
	return newKey, nil
}

// admit counts a new viewer, or answers 503 and returns false when the handler is
// closed or at Config.MaxViewers. An admitted viewer calls leave when it ends, and
// Close waits for it.
func (h *Handler) admit(w http.ResponseWriter) bool {
	h.mu.Lock()
	if h.closed || h.count.Load() >= int64(h.cfg.MaxViewers) {
		h.mu.Unlock()
		http.Error(w, "player: too many viewers", http.StatusServiceUnavailable)
		return false
	}
	h.wg.Add(1)
	h.count.Add(1)
	h.mu.Unlock()
	return true
}

// leave ends a viewer counted by admit.
func (h *Handler) leave() { h.count.Add(-1); h.wg.Done() }

// viewerContext returns a viewer's context: parent's, also canceled with
// ErrHandlerClosed by Close. The viewer calls release when it ends.
func (h *Handler) viewerContext(parent context.Context) (ctx context.Context, cancel context.CancelCauseFunc, release func()) {
	ctx, cancel = context.WithCancelCause(parent)
	stopOnClose := context.AfterFunc(h.ctx, func() { cancel(ErrHandlerClosed) })
	return ctx, cancel, func() { stopOnClose(); cancel(nil) }
}

// safeStream is stream with a panic turned into ErrPanic, logged with its stack and
// counted; it ends only this viewer.
func (h *Handler) safeStream(ctx context.Context, rc *http.ResponseController, w http.ResponseWriter, sub *relay.Subscriber, log zerolog.Logger) (err error) {
	defer func() {
		if p := recover(); p != nil {
			h.panics.Add(1)
			err = fmt.Errorf("%w: %v", ErrPanic, p)
			log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("page viewer panicked")
		}
	}()
	return h.stream(ctx, rc, w, sub)
}

func (h *Handler) stream(ctx context.Context, rc *http.ResponseController, w http.ResponseWriter, sub *relay.Subscriber) error {
	var m muxer
	frames := make([]relay.Frame, 0, 64)
	startBy := time.Now().Add(h.cfg.StartTimeout)
	readCtx, cancelRead := context.WithDeadline(ctx, startBy)
	defer cancelRead()
	for {
		var err error
		frames, err = sub.Read(readCtx, frames[:0])
		if err != nil && !m.started {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				http.Error(w, "player: no media from the stream yet", http.StatusServiceUnavailable)
			}
			return err
		}
		var out [][]byte
		for _, f := range frames {
			if h.testHookFrame != nil {
				h.testHookFrame(f)
			}
			ready, ferr := m.frame(f)
			if ready {
				init, ierr := m.init()
				if ierr != nil {
					http.Error(w, ierr.Error(), http.StatusInternalServerError)
					return ierr
				}
				w.Header().Set("Content-Type", "video/mp4")
				w.Header().Set("X-Codecs", m.codecs())
				w.Header().Set("Access-Control-Expose-Headers", "X-Codecs")
				w.WriteHeader(http.StatusOK)
				out = append(out, init)
				cancelRead()
				readCtx = ctx
			}
			if ferr != nil {
				err = ferr
				break
			}
		}
		clear(frames)
		if err != nil && !m.started {
			if errors.Is(err, flv.ErrUnsupportedCodec) {
				http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
			} else {
				http.Error(w, "stream offline", http.StatusNotFound)
			}
			return err
		}
		if m.started {
			if err := h.write(ctx, rc, w, out); err != nil {
				return err
			}
			frag, ferr := m.fragment()
			if ferr != nil {
				return ferr
			}
			if err := h.write(ctx, rc, w, [][]byte{frag}); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
	}
}

// write sends bufs and flushes them, within Config.WriteTimeout.
func (h *Handler) write(ctx context.Context, rc *http.ResponseController, w http.ResponseWriter, bufs [][]byte) error {
	if len(bufs) == 0 {
		return nil
	}
	_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	if err := context.Cause(ctx); err != nil {
		// Evicted after OnEvict moved the deadline to now: do not write with the
		// deadline just moved back out.
		return err
	}
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return rc.Flush()
}

// Close ends every viewer and waits for them until ctx is done.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.stop(ErrHandlerClosed)
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("player close: %w", context.Cause(ctx))
	}
}

var _ http.Handler = (*Handler)(nil)
