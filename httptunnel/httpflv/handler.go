package httpflv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/flv"
	"github.com/mtrelay/mtrelay/relay"
)

// Protocol is the relay.SubscribeOptions.Protocol of HTTP-FLV viewers, the key of
// their count in relay.StreamStats.Subscribers.
const Protocol = "http-flv"

// Errors that end a viewer (logged as its reason; the client only sees the stream end).
var (
	// ErrClientGone means the client closed its connection.
	ErrClientGone = errors.New("httpflv: client disconnected")
	// ErrHandlerClosed means Handler.Close was called.
	ErrHandlerClosed = errors.New("httpflv: handler closed")
)

// Hub is what the handler needs of *relay.Hub.
type Hub interface {
	Subscribe(key string, opts relay.SubscribeOptions) (*relay.Subscriber, error)
	Stream(key string) (relay.StreamStats, bool)
}

// Config tunes a Handler. A zero value means the documented default.
type Config struct {
	// WriteTimeout drops a viewer whose connection accepts no write for this long.
	// Default 10s.
	WriteTimeout time.Duration
	// BatchFrames is how many frames one write carries at most. Default 128.
	BatchFrames int
	// MaxViewers caps the HTTP-FLV viewers at once; more get 503. Default 10000.
	MaxViewers int
}

// Defaults of Config.
const (
	DefaultWriteTimeout = 10 * time.Second
	DefaultBatchFrames  = 128
	DefaultMaxViewers   = 10000
)

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.WriteTimeout < 0:
		return c, errors.New("httpflv: Config.WriteTimeout must not be negative")
	case c.BatchFrames < 0:
		return c, errors.New("httpflv: Config.BatchFrames must not be negative")
	case c.MaxViewers < 0:
		return c, errors.New("httpflv: Config.MaxViewers must not be negative")
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.BatchFrames == 0 {
		c.BatchFrames = DefaultBatchFrames
	}
	if c.MaxViewers == 0 {
		c.MaxViewers = DefaultMaxViewers
	}
	return c, nil
}

// Handler serves GET /{app}/{stream}.flv.
type Handler struct {
	cfg Config         // immutable after New
	log zerolog.Logger // immutable after New
	hub Hub            // immutable after New

	wg      sync.WaitGroup // viewers' handler and reader goroutines
	mu      sync.Mutex
	closed  bool                 // guarded by mu
	viewers map[*viewer]struct{} // guarded by mu
	count   atomic.Int64         // len(viewers), for Viewers
	nextID  atomic.Uint64        // viewer ids for logs
}

// New returns a Handler that serves the streams of hub.
func New(cfg Config, log zerolog.Logger, hub Hub) (*Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if hub == nil {
		return nil, errors.New("httpflv: nil Hub")
	}
	return &Handler{
		cfg:     cfg,
		log:     log.With().Str("component", "http-flv").Logger(),
		hub:     hub,
		viewers: make(map[*viewer]struct{}),
	}, nil
}

// Mount registers h on mux for GET /{app}/{file}; ServeHTTP answers 404 unless file
// ends in ".flv".
func (h *Handler) Mount(mux *http.ServeMux) { mux.Handle("GET /{app}/{file}", h) }

// Viewers returns the number of viewers being served.
func (h *Handler) Viewers() int { return int(h.count.Load()) }

// StreamKey returns the hub key of an HTTP-FLV request path's app and file
// ("live", "x.flv" → "live/x"); false if file does not end in ".flv" or the key is
// invalid.
func StreamKey(app, file string) (string, bool) {
	name, ok := strings.CutSuffix(file, ".flv")
	if !ok {
		return "", false
	}
	key := app + "/" + name
	return key, relay.ValidateKey(key) == nil
}

// viewer is one HTTP-FLV client.
type viewer struct {
	id     uint64
	conn   net.Conn                // immutable; closed by end
	cancel context.CancelCauseFunc // ends the viewer with a cause
}

func (v *viewer) end(cause error) {
	v.cancel(cause)
	v.conn.Close() // unblocks a Write and the reader
}

// ServeHTTP streams one viewer until it ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := StreamKey(r.PathValue("app"), r.PathValue("file"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	if st, ok := h.hub.Stream(key); ok {
		if err := flv.CheckCodecs(st.Media.VideoCodec, st.Media.AudioCodec); err != nil {
			http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
			return
		}
	}
	if r.Method == http.MethodHead {
		setHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		return
	}
	h.mu.Lock()
	if h.closed || len(h.viewers) >= h.cfg.MaxViewers {
		h.mu.Unlock()
		http.Error(w, "http-flv: too many viewers", http.StatusServiceUnavailable)
		return
	}
	h.wg.Add(1) // this handler goroutine; Close waits for it
	h.mu.Unlock()
	defer h.wg.Done()

	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "http-flv needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		h.log.Debug().Err(err).Msg("hijack failed")
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	v := &viewer{id: h.nextID.Add(1), conn: conn, cancel: cancel}
	log := h.log.With().Uint64("conn", v.id).Str("stream", key).Str("remote", r.RemoteAddr).Logger()
	if !h.add(v) {
		conn.Close()
		cancel(ErrHandlerClosed)
		return
	}
	defer h.remove(v)

	sub, err := h.hub.Subscribe(key, relay.SubscribeOptions{
		Protocol: Protocol,
		Remote:   r.RemoteAddr,
		OnEvict:  v.end,
	})
	if err != nil {
		v.end(err)
		log.Debug().Err(err).Msg("subscribe failed")
		return
	}
	defer sub.Close()

	// The reader notices a client that goes away while no media flows.
	h.wg.Go(func() {
		_, _ = io.Copy(io.Discard, brw.Reader)
		v.end(ErrClientGone)
	})

	log.Debug().Msg("viewer joined")
	err = h.stream(ctx, v, sub)
	v.end(err)
	if c := context.Cause(ctx); c != nil {
		err = c
	}
	ev := log.Debug()
	if errors.Is(err, relay.ErrSlowSubscriber) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, flv.ErrUnsupportedCodec) {
		ev = log.Info()
	}
	ss := sub.Stats()
	ev.AnErr("reason", err).Int64("packets", ss.Packets).Int64("dropped", ss.Dropped).Msg("viewer left")
}

func (h *Handler) add(v *viewer) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.viewers[v] = struct{}{}
	h.count.Store(int64(len(h.viewers)))
	return true
}

func (h *Handler) remove(v *viewer) {
	h.mu.Lock()
	delete(h.viewers, v)
	h.count.Store(int64(len(h.viewers)))
	h.mu.Unlock()
}

func setHeaders(hd http.Header) {
	hd.Set("Content-Type", "video/x-flv")
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Cache-Control", "no-cache, no-store")
}

// responseHead is the HTTP/1.1 response the hijacked connection starts with.
const responseHead = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: video/x-flv\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"Connection: close\r\n\r\n"

// chunkWriter frames writes as HTTP/1.1 chunks (RFC 9112 §7.1) on a hijacked conn,
// one writev per chunk. Owned by the viewer's handler goroutine.
type chunkWriter struct {
	conn    net.Conn
	timeout time.Duration
	head    [24]byte    // chunk-size line
	bufs    net.Buffers // head, payload buffers, CRLF; reused
	out     net.Buffers // writev consumes it
}

var crlf = []byte("\r\n")

// write sends one chunk made of the batch's buffers (and an optional prefix).
func (cw *chunkWriter) write(prefix []byte, b *flv.Batch) error {
	size := len(prefix) + b.Len()
	if size == 0 {
		return nil
	}
	hl := strconv.AppendInt(cw.head[:0], int64(size), 16)
	hl = append(hl, '\r', '\n')
	cw.bufs = append(cw.bufs[:0], hl)
	if len(prefix) > 0 {
		cw.bufs = append(cw.bufs, prefix)
	}
	cw.bufs = b.AppendBuffers(cw.bufs)
	cw.bufs = append(cw.bufs, crlf)
	cw.conn.SetWriteDeadline(time.Now().Add(cw.timeout))
	cw.out = cw.bufs
	_, err := cw.out.WriteTo(cw.conn)
	cw.out = nil
	clear(cw.bufs)
	b.Reset()
	return err
}

// stream writes the response until the viewer ends; it returns why.
func (h *Handler) stream(ctx context.Context, v *viewer, sub *relay.Subscriber) error {
	cw := &chunkWriter{conn: v.conn, timeout: h.cfg.WriteTimeout}
	var b flv.Batch
	// Head and FLV header go out in the first write.
	v.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	if _, err := io.WriteString(v.conn, responseHead); err != nil {
		return err
	}
	if err := cw.write(flv.Header(true, true), &b); err != nil {
		return err
	}
	frames := make([]relay.Frame, 0, h.cfg.BatchFrames)
	var cc codecCheck
	for {
		var err error
		frames, err = sub.Read(ctx, frames[:0])
		for i, f := range frames {
			p := f.Packet
			if cerr := cc.check(p); cerr != nil {
				// The viewer joined before the codec was known and got 200: send
				// what came before, then end the chunked body cleanly.
				clear(frames[i:])
				err = cerr
				break
			}
			var typ flv.TagType
			switch p.Kind {
			case relay.KindVideo:
				typ = flv.TagVideo
			case relay.KindAudio:
				typ = flv.TagAudio
			case relay.KindMetadata:
				typ = flv.TagScript
			default:
				continue // stream start/end: the FLV simply goes on with the next publisher
			}
			_ = b.Add(typ, f.Timestamp, p.Payload) // payloads come from RTMP messages, < 16 MiB
		}
		clear(frames) // do not keep packets alive while waiting
		if werr := cw.write(nil, &b); werr != nil {
			return fmt.Errorf("http-flv write: %w", werr)
		}
		if err != nil {
			if errors.Is(err, relay.ErrNoPublisher) || errors.Is(err, relay.ErrClosed) || errors.Is(err, flv.ErrUnsupportedCodec) {
				// End the chunked body cleanly: the stream is over.
				cw.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
				io.WriteString(v.conn, "0\r\n\r\n")
			}
			return err
		}
	}
}

// codecCheck checks the codec of each publisher's first video and first audio packet,
// for viewers that joined before the hub knew the stream's codecs (ServeHTTP answers
// 415 to the others). Owned by the viewer's handler goroutine.
type codecCheck struct {
	video, audio bool // this publisher's video / audio codec was checked
}

// check returns a *flv.CodecError if p shows a codec browsers cannot play. Only the
// first parsable packet of each kind per publisher is parsed, so the hot path pays
// two bool tests per packet.
func (c *codecCheck) check(p *relay.Packet) error {
	switch p.Kind {
	case relay.KindVideo:
		if c.video {
			return nil
		}
		v, err := flv.ParseVideo(p.Payload)
		if err != nil {
			return nil // not parsable: players skip it, so do we
		}
		c.video = true
		return flv.CheckVideo(v)
	case relay.KindAudio:
		if c.audio {
			return nil
		}
		a, err := flv.ParseAudio(p.Payload)
		if err != nil {
			return nil
		}
		c.audio = true
		return flv.CheckAudio(a)
	case relay.KindStreamStart, relay.KindStreamEnd:
		*c = codecCheck{} // the next publisher may use other codecs
	}
	return nil
}

// Close ends every viewer and waits for their goroutines until ctx is done.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	list := make([]*viewer, 0, len(h.viewers))
	for v := range h.viewers {
		list = append(list, v)
	}
	h.mu.Unlock()
	for _, v := range list {
		v.end(ErrHandlerClosed)
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("httpflv close: %w", context.Cause(ctx))
	}
}

var _ http.Handler = (*Handler)(nil)
