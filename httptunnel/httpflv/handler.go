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
	"github.com/mtrelay/mtrelay/relay/netio"
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
	// Access decides on every viewer (relay.ActionPlay, Protocol "http-flv", the
	// request's query and client address); a refusal is answered 403, a rename
	// serves the other stream. Nil allows everyone.
	Access relay.AccessController
	// AccessTimeout bounds one Access decision. Default 5s.
	AccessTimeout time.Duration
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
	if c.AccessTimeout <= 0 {
		c.AccessTimeout = 5 * time.Second
	}
	return c, nil
}

// Handler serves GET /{app}/{stream}.flv.
type Handler struct {
	cfg Config         // immutable after New
	log zerolog.Logger // immutable after New
	hub Hub            // immutable after New

	wg           sync.WaitGroup // viewers' handler and reader goroutines (a parked reader included)
	mu           sync.Mutex
	closed       bool                 // guarded by mu
	viewers      map[*viewer]struct{} // guarded by mu
	poller       netio.LazyPoller     // where viewers' readers park (parker)
	noPollerOnce sync.Once            // logs once that there is no poller
	count        atomic.Int64         // len(viewers), for Viewers
	nextID       atomic.Uint64        // viewer ids for logs
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
	raw    *netio.Conn             // immutable; conn's raw I/O on plain TCP, else nil
	cancel context.CancelCauseFunc // ends the viewer with a cause
	kick   func()                  // immutable; a lazy output's kick, else nil
}

func (v *viewer) end(cause error) {
	v.cancel(cause)
	var resume func()
	if v.raw != nil {
		resume = v.raw.Shut() // a parked reader is taken back before the close
	}
	v.conn.Close() // unblocks a Write and the reader
	if resume != nil {
		go resume()
	}
	if v.kick != nil {
		v.kick() // a lazy output sees the end and finishes the viewer
	}
}

// ServeHTTP streams one viewer until it ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := StreamKey(r.PathValue("app"), r.PathValue("file"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	if key, ok = h.authorize(w, r, key); !ok {
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
	// On plain TCP (Linux) a viewer that waits holds no goroutine: ServeHTTP returns
	// once the viewer is set up (net/http then frees its connection state), the output
	// runs only while there is work (output.run) and the reader waits parked on the
	// poller (watch). The request's context ends when ServeHTTP returns, so the
	// viewer's does not derive from its cancellation.
	raw := netio.New(conn)
	poller := h.parker()
	lazy := raw != nil && poller != nil && brw.Reader.Buffered() == 0
	base := r.Context()
	if lazy {
		base = context.WithoutCancel(base)
	}
	ctx, cancel := context.WithCancelCause(base)
	out := h.newOutput(conn, raw, lazy)
	v := &viewer{id: h.nextID.Add(1), conn: conn, raw: raw, cancel: cancel}
	if lazy {
		v.kick = out.kick
	}
	log := h.log.With().Uint64("conn", v.id).Str("stream", key).Str("remote", r.RemoteAddr).Logger()
	if !h.add(v) {
		conn.Close()
		cancel(ErrHandlerClosed)
		return
	}
	opts := relay.SubscribeOptions{
		Protocol:     Protocol,
		Remote:       r.RemoteAddr,
		OnEvict:      v.end,
		WriteThrough: out.hook(), // plain TCP: the publisher's goroutine writes (see output)
	}
	if lazy {
		opts.OnWake = out.kick
	}
	sub, err := h.hub.Subscribe(key, opts)
	if err != nil {
		v.end(err)
		h.remove(v)
		log.Debug().Err(err).Msg("subscribe failed")
		return
	}
	log.Debug().Msg("viewer joined")
	if lazy {
		h.wg.Add(2) // the output until the viewer ends (ended), and the reader (watch)
		out.ctx, out.sub = ctx, sub
		out.ended = func(err error) {
			h.ended(ctx, v, sub, err, log)
			h.wg.Done()
		}
		go out.run() // running was set by newOutput: kicks until now only marked work
		go h.watch(v, poller)
		return
	}

	// The reader notices a client that goes away while no media flows.
	h.wg.Go(func() {
		_, _ = io.Copy(io.Discard, brw.Reader)
		v.end(ErrClientGone)
	})
	err = h.stream(ctx, sub, out)
	h.ended(ctx, v, sub, err, log)
}

// ended finishes a viewer whose output stopped for err: it ends the viewer, logs why
// and unregisters it.
func (h *Handler) ended(ctx context.Context, v *viewer, sub *relay.Subscriber, err error, log zerolog.Logger) {
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
	sub.CloseReason(relay.EndReasonOf(err)) // why it ended, for Hub.SubscriberEnds
	h.remove(v)
}

// authorize asks Config.Access about a viewer of key and returns the key to serve
// (a hook may rename the stream). A refusal is answered 403 with the reason, and
// logged.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	if h.cfg.Access == nil {
		return key, true
	}
	newKey, _, err := relay.Decide(r.Context(), h.cfg.Access, h.cfg.AccessTimeout, relay.AccessRequest{
		Action: relay.ActionPlay, Key: key, Query: r.URL.RawQuery, Protocol: Protocol, Remote: r.RemoteAddr,
	})
	if err != nil {
		h.log.Warn().Str("stream", key).Str("remote", r.RemoteAddr).Err(err).Msg("viewer refused")
		http.Error(w, "http-flv: forbidden: "+relay.DenialReason(err), http.StatusForbidden)
		return key, false
	}
	return newKey, true
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
	conn     net.Conn
	raw      *netio.Conn // conn's raw writev (plain TCP on Linux: no sysmon wake-ups), else nil
	timeout  time.Duration
	deadline time.Time   // the write deadline set on conn
	head     [24]byte    // chunk-size line
	bufs     net.Buffers // head, payload buffers, CRLF; reused
	out      net.Buffers // writev consumes it
}

var crlf = []byte("\r\n")

// write sends one chunk made of the batch's buffers (and an optional prefix).
func (cw *chunkWriter) write(prefix []byte, b *flv.Batch) error {
	if !cw.prepare(prefix, b) {
		return nil
	}
	var err error
	if cw.raw != nil {
		_, err = cw.raw.Writev(cw.out)
	} else {
		_, err = cw.out.WriteTo(cw.conn)
	}
	cw.done(b)
	return err
}

// try makes one non-blocking attempt to send the batch as one chunk (plain TCP only)
// and returns what the socket did not take. Until that rest is written (finish), cw
// and b must not be reused.
func (cw *chunkWriter) try(b *flv.Batch) ([][]byte, error) {
	if !cw.prepare(nil, b) {
		return nil, nil
	}
	_, rest, err := cw.raw.TryWritev(cw.out)
	if rest == nil || err != nil {
		cw.done(b)
		return nil, err
	}
	return rest, nil
}

// finish writes the rest try left, waiting up to the write deadline, and frees the
// batch.
func (cw *chunkWriter) finish(rest [][]byte, b *flv.Batch) error {
	cw.touch()
	_, err := cw.raw.Writev(rest)
	cw.done(b)
	return err
}

// prepare frames the batch as one chunk in cw.out; false when there is nothing to send.
func (cw *chunkWriter) prepare(prefix []byte, b *flv.Batch) bool {
	size := len(prefix) + b.Len()
	if size == 0 {
		return false
	}
	hl := strconv.AppendInt(cw.head[:0], int64(size), 16)
	hl = append(hl, '\r', '\n')
	cw.bufs = append(cw.bufs[:0], hl)
	if len(prefix) > 0 {
		cw.bufs = append(cw.bufs, prefix)
	}
	cw.bufs = b.AppendBuffers(cw.bufs)
	cw.bufs = append(cw.bufs, crlf)
	cw.touch()
	cw.out = cw.bufs
	return true
}

// touch moves the deadline only when less than half of the timeout is left (a few
// times a second, not per write): a viewer is cut off after timeout/2 to timeout
// without progress.
func (cw *chunkWriter) touch() {
	if now := time.Now(); cw.deadline.Sub(now) < cw.timeout/2 {
		cw.deadline = now.Add(cw.timeout)
		cw.conn.SetWriteDeadline(cw.deadline)
	}
}

// done drops the references to the sent batch.
func (cw *chunkWriter) done(b *flv.Batch) {
	cw.out = nil
	clear(cw.bufs)
	b.Reset()
}

// output is a viewer's writing side: its chunk writer, FLV batch and codec check. The
// viewer's handler goroutine (stream) uses it and, on plain TCP, so does the
// publisher's goroutine (writeThrough, relay.SubscribeOptions.WriteThrough): when a
// packet is queued for an idle viewer, the publisher takes it and writes it with one
// non-blocking writev instead of waking the handler goroutine, as rtmp does for its
// players. One at a time, under mu; writeThrough only tries mu, never waits, and
// leaves what it cannot finish (a full socket buffer, an error, a codec the viewer
// cannot play) to stream, which it wakes.
type output struct {
	mu     sync.Mutex
	ready  bool          // guarded by mu: the head went out; writeThrough may write
	cw     chunkWriter   // guarded by mu
	b      flv.Batch     // guarded by mu
	cc     codecCheck    // guarded by mu
	frames []relay.Frame // guarded by mu: scratch for TryRead
	rest   [][]byte      // guarded by mu: what writeThrough could not write; stream writes it
	err    error         // guarded by mu: writeThrough's write error, or the codec error that ends the viewer

	// A lazy output (plain TCP) has no goroutine of its own while it has nothing to
	// do: kick starts run, which does what stream does, and returns (parks) as soon
	// as it finds no work, or finishes the viewer (ended).
	ctx    context.Context   // immutable once run starts: the viewer's
	sub    *relay.Subscriber // immutable once run starts
	ended  func(err error)   // immutable once run starts: finishes the viewer
	runner relay.Lazy        // a lazy output's run goroutine
}

func (h *Handler) newOutput(conn net.Conn, raw *netio.Conn, lazy bool) *output {
	o := &output{
		cw:     chunkWriter{conn: conn, raw: raw, timeout: h.cfg.WriteTimeout},
		frames: make([]relay.Frame, 0, h.cfg.BatchFrames),
	}
	o.runner.Run = o.run
	if lazy {
		// ServeHTTP starts the first run itself once the viewer is set up; until then
		// a kick only marks work.
		o.runner.Hold()
	}
	return o
}

// kick makes a lazy output look for work (relay.Lazy.Kick): it starts run unless run
// is active (which then looks again before it parks). It never blocks; it may be
// called with locks held (relay.SubscribeOptions.OnWake).
func (o *output) kick() { o.runner.Kick() }

// run is a lazy output's turn: it writes the response head on the first turn, then
// what is queued, and parks when nothing is left; when the viewer ends it finishes it.
func (o *output) run() {
	if err := o.loop(); err != errParked {
		o.ended(err) // the runner stays running: no kick starts run again
	}
}

// errParked is how loop tells run that it parked.
var errParked = errors.New("httpflv: output parked")

func (o *output) loop() error {
	for {
		o.runner.Round()
		if err := o.ctx.Err(); err != nil {
			return err
		}
		o.mu.Lock()
		if !o.ready {
			if err := o.writeHead(); err != nil {
				o.mu.Unlock()
				return err
			}
		}
		o.mu.Unlock()
		var rerr error
		if !o.sub.Idle() {
			// Returns at once with what is queued or the end; without a live
			// publisher, waits for one until the PlayWait deadline.
			rerr = o.sub.Wait(o.ctx)
			if err := o.ctx.Err(); err != nil {
				return err
			}
		}
		o.mu.Lock()
		err := o.flushLocked(o.sub, rerr)
		o.mu.Unlock()
		if err != nil {
			return err
		}
		// The viewer's end kicks (viewer.end); only the subscriber is left to look at.
		if o.runner.Park(o.sub.Idle) {
			return errParked
		}
	}
}

// writeHead sends the response head, then the FLV header, and lets
// writeThrough write from then on. mu must be held.
func (o *output) writeHead() error {
	o.cw.conn.SetWriteDeadline(time.Now().Add(o.cw.timeout))
	if _, err := io.WriteString(o.cw.conn, responseHead); err != nil {
		return err
	}
	if err := o.cw.write(flv.Header(true, true), &o.b); err != nil {
		return err
	}
	o.ready = true
	return nil
}

// hook returns writeThrough on plain TCP, else nil.
func (o *output) hook() func(*relay.Subscriber) {
	if o.cw.raw == nil {
		return nil
	}
	return o.writeThrough
}

// add appends frames to the batch and clears them; it returns the codec error that
// ends the viewer, after the frames before it. mu must be held.
func (o *output) add(frames []relay.Frame) error {
	defer clear(frames) // do not keep packets alive while waiting
	for _, f := range frames {
		p := f.Packet
		if cerr := o.cc.check(p); cerr != nil {
			// The viewer joined before the codec was known and got 200: send what
			// came before, then end the chunked body cleanly.
			return cerr
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
		_ = o.b.Add(typ, f.Timestamp, p.Payload) // payloads come from RTMP messages, < 16 MiB
	}
	return nil
}

func (o *output) writeThrough(sub *relay.Subscriber) {
	if !o.mu.TryLock() {
		return // stream holds the output and looks at the queue again before it waits
	}
	defer o.mu.Unlock()
	if !o.ready {
		return // stream sends the head, then takes what is queued
	}
	if o.rest != nil || o.err != nil {
		sub.Wake()
		return
	}
	frames, err := sub.TryRead(o.frames[:0])
	if err != nil || len(frames) == 0 {
		if err != nil {
			sub.Wake() // stream ends the viewer
		}
		return
	}
	if len(frames) == cap(frames) {
		sub.Wake() // there may be more: stream takes them
	}
	if cerr := o.add(frames); cerr != nil {
		o.err = cerr // stream writes the batch, then ends the body
		sub.Wake()
		return
	}
	rest, werr := o.cw.try(&o.b)
	switch {
	case werr != nil:
		o.err = fmt.Errorf("http-flv write: %w", werr)
		sub.Wake()
	case rest != nil:
		o.rest = rest // aliases cw and b, which stay untouched until stream wrote it
		sub.Wake()
	}
}

// stream writes the response until the viewer ends; it returns why.
func (h *Handler) stream(ctx context.Context, sub *relay.Subscriber, o *output) error {
	o.mu.Lock()
	err := o.writeHead()
	o.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		err := sub.Wait(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.mu.Lock()
		err = o.flushLocked(sub, err)
		o.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// flushLocked writes what writeThrough left and what is queued, blocking; rerr is the
// subscriber's error from Wait. It returns why the viewer ends, or nil. mu must be
// held.
func (o *output) flushLocked(sub *relay.Subscriber, rerr error) error {
	if o.rest != nil {
		rest := o.rest
		o.rest = nil
		if werr := o.cw.finish(rest, &o.b); werr != nil {
			return fmt.Errorf("http-flv write: %w", werr)
		}
	}
	err := o.err
	if err != nil && !errors.Is(err, flv.ErrUnsupportedCodec) {
		return err // writeThrough's write error
	}
	if err == nil && rerr == nil {
		var frames []relay.Frame
		frames, err = sub.TryRead(o.frames[:0])
		if err == nil {
			err = o.add(frames)
		}
		o.frames = frames[:0]
	} else if err == nil {
		err = rerr
	}
	if werr := o.cw.write(nil, &o.b); werr != nil {
		return fmt.Errorf("http-flv write: %w", werr)
	}
	if err != nil {
		if errors.Is(err, relay.ErrNoPublisher) || errors.Is(err, relay.ErrClosed) || errors.Is(err, flv.ErrUnsupportedCodec) {
			// End the chunked body cleanly: the stream is over.
			o.cw.conn.SetWriteDeadline(time.Now().Add(o.cw.timeout))
			io.WriteString(o.cw.conn, "0\r\n\r\n")
		}
		return err
	}
	return nil
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

// watch discards what a viewer sends (nothing, normally) and ends the viewer when it
// hangs up. Between reads it parks v on p, so a watching viewer holds no goroutine;
// input, the hang-up or end (netio.Conn.Shut) runs it again. It holds one count of
// h.wg from ServeHTTP until the viewer ends.
func (h *Handler) watch(v *viewer, p *netio.Poller) {
	var buf [256]byte
	for {
		if v.raw.Park(p, func() { h.watch(v, p) }) {
			return
		}
		if _, err := v.raw.Read(buf[:]); err != nil {
			v.end(ErrClientGone)
			h.wg.Done()
			return
		}
	}
}

// parker returns the poller viewers' readers park on, starting it on first use; nil
// when there is none (not Linux) or h is closed.
func (h *Handler) parker() *netio.Poller {
	p, err := h.poller.Get()
	if err != nil {
		h.noPollerOnce.Do(func() { h.log.Debug().Err(err).Msg("viewers keep their goroutines: no poller") })
	}
	return p
}

// Close ends every viewer and waits for their goroutines until ctx is done.
func (h *Handler) Close(ctx context.Context) error {
	defer h.poller.Close() // after the viewers ended (each one's end took its reader back)
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
